"""One stdio server entry (``command``, ``args``, ``env``) as an mcpbox profile. Pure: nothing is written.

``npx -y pkg[@ver] args`` becomes ``build: {npm: pkg@ver}``, ``uvx pkg args`` and ``python -m mod args``
become ``build: {pypi: ...}``. Host paths in the arguments become read-only mounts at the same path, so
the arguments keep working unchanged. Environment values that look like credentials (by name or by
format) are returned separately, for the keyring; the rest goes to the profile's ``env``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mcpbox._text import visible
from mcpbox.errors import MCPBoxError, UsageError
from mcpbox.profile.load import NPM_RE, PYPI_RE
from mcpbox.profile.model import split_npm
from mcpbox.secrets.store import check_value

NAME_RE = re.compile(r"[^a-z0-9]+")
SECRET_NAME_RE = re.compile(r"TOKEN|KEY|SECRET|PASSW(?:OR)?D|AUTH|CREDENTIAL|COOKIE|SESSION", re.IGNORECASE)
SECRET_VALUE_RE = re.compile(
    r"^(?:gh[pousr]_|github_pat_|glpat-|sk-|sk_(?:live|test)_|xox[abposr]-|A(?:KIA|SIA)[A-Z0-9]{16}|AIza|eyJ|Bearer\s)"
)
NPX_FLAGS = frozenset({"-y", "--yes", "-q", "--quiet", "--silent"})
UVX_FLAGS = frozenset({"-q", "--quiet", "--offline"})
PYTHONS = re.compile(r"^python(?:3(?:\.\d+)?)?(?:\.exe)?\Z")
DOCKERS = frozenset({"docker", "podman", "nerdctl"})


class Untranslatable(UsageError):
    """An entry mcpbox leaves as it is; the message says why."""


@dataclass(frozen=True)
class Translation:
    profile: dict[str, Any]  # the profile document, as YAML will hold it
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # VAR -> (keyring entry, value)
    notes: tuple[str, ...] = ()  # guesses a person should check
    placeholder_image: bool = True

    @property
    def name(self) -> str:
        return str(self.profile["name"])


def profile_name(server: str, taken: set[str]) -> str:
    """``server`` in lowercase and dashes, with -2, -3... until no profile has that name."""
    base = NAME_RE.sub("-", server.lower()).strip("-")[:48].strip("-") or "server"
    if not base[0].isalnum():
        base = f"s-{base}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def looks_secret(var: str, value: str) -> bool:
    return bool(SECRET_NAME_RE.search(var) or SECRET_VALUE_RE.match(value.strip()))


def npm_bin(package: str) -> str:
    """The executable npx would run: a guess, since only the package's manifest says for sure."""
    if package.startswith("@modelcontextprotocol/server-"):
        return "mcp-" + package.rsplit("/", 1)[1]  # that scope's servers all install mcp-server-NAME
    return package.rsplit("/", 1)[-1]


def _command(command: str, args: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """(build spec, argv in the container, notes) for a launcher mcpbox knows."""
    spec, argv, notes = _launcher(command, args)
    [(kind, text)] = spec.items()
    if not (PYPI_RE if kind == "pypi" else NPM_RE).fullmatch(text):
        raise Untranslatable(f"{text!r} is not a {kind} registry package with a version mcpbox can build offline.")
    return spec, argv, notes


def _launcher(command: str, args: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
    exe = PurePosixPath(command.replace("\\", "/")).name
    if exe.lower() in ("cmd", "cmd.exe") and len(args) >= 2 and args[0].lower() == "/c":
        # Windows configs wrap npx in `cmd /c`: one wrapper, not a tower of them.
        command, args = args[1], args[2:]
        exe = PurePosixPath(command.replace("\\", "/")).name
        if exe.lower() in ("cmd", "cmd.exe"):
            raise Untranslatable("it nests `cmd /c` in `cmd /c`, which mcpbox does not unwrap.")
    if exe in ("npx", "npx.cmd"):
        return _npx(args)
    if exe in ("uvx", "uvx.exe") or (exe in ("uv", "uv.exe") and args[:2] == ["tool", "run"]):
        return _uvx(list(args[2:] if exe.startswith("uv.") or exe == "uv" else args))
    if PYTHONS.match(exe) and len(args) >= 2 and args[0] == "-m":
        module = args[1]
        package = module.split(".")[0].replace("_", "-")
        note = f"the PyPI package {package!r} is guessed from the module name; check it"
        return {"pypi": package}, ["python", "-m", module, *args[2:]], [note]
    if exe in DOCKERS:
        raise Untranslatable(f"it already runs in a container through {exe}; mcpbox does not wrap an engine.")
    raise Untranslatable(f"mcpbox knows how to package npx, uvx and `python -m` servers, not {exe!r}.")


def _npx(args: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
    rest = list(args)
    given = ""  # `npx -p PKG BIN args`: the package, and BIN is the command
    while rest and (rest[0] in NPX_FLAGS or rest[0] in ("-p", "--package") or rest[0].startswith("--package=")):
        flag = rest.pop(0)
        if flag in NPX_FLAGS:
            continue
        if given or (flag in ("-p", "--package") and not rest):
            raise Untranslatable("npx names more than one package (or none after -p).")
        given = rest.pop(0) if flag in ("-p", "--package") else flag.split("=", 1)[1]
    if not rest or rest[0].startswith("-"):
        raise Untranslatable(f"npx option {rest[0] if rest else '(none)'!r} is not one mcpbox translates.")
    package, version = split_npm(given or rest[0])
    spec = f"{package}@{version}" if version else package
    if given:  # the executable is named: no guess
        return {"npm": spec}, rest, []
    binary = npm_bin(package)
    notes = [] if binary.startswith("mcp-server-") else [f"the executable {binary!r} is npx's default; check it"]
    return {"npm": spec}, [binary, *rest[1:]], notes


def _uvx(rest: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
    package = ""
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag == "--from" and rest:
            package = rest.pop(0)
        elif flag.startswith("--from="):
            package = flag.split("=", 1)[1]
        elif flag not in UVX_FLAGS:
            raise Untranslatable(f"uvx option {flag!r} is not one mcpbox translates.")
    if not rest:
        raise Untranslatable("uvx names no package.")
    tool = rest[0]
    if not package:
        package, _, version = tool.partition("@")  # uvx pkg@1.2 runs pkg's script pkg
        tool = package
        package = f"{package}=={version}" if version and version != "latest" else package
    return {"pypi": package}, [tool, *rest[1:]], []


def _host_path(arg: str) -> tuple[str, Path | None]:
    """``arg`` with a leading ``~`` expanded, and the host path it names (also after ``--opt=``)."""
    prefix, value = "", arg
    if arg.startswith("-") and "=" in arg:
        prefix, value = arg.split("=", 1)
        prefix += "="
    if value == "~" or value.startswith("~/"):
        value = str(Path(value).expanduser())
    if value.startswith("/") and not value.startswith("//"):
        return prefix + value, Path(value)
    return prefix + value, None


def _mounts(argv: list[str], notes: list[str]) -> list[dict[str, str]]:
    """Read-only mounts for the host paths in ``argv`` (whose ``~`` are expanded in place)."""
    mounts: list[dict[str, str]] = []
    for i, arg in enumerate(argv):
        argv[i], path = _host_path(arg)
        if path is None or any(m["source"] == str(path) for m in mounts):
            continue
        if path.exists():  # credential folders are refused by the profile loader (CREDENTIAL_PATHS)
            mounts.append({"source": str(path), "target": str(path), "mode": "ro"})
        else:
            notes.append(f"{path} does not exist here, so it is not mounted")
    return mounts


def _split_env(env: dict[str, str], name: str) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """(plain variables, VAR -> (keyring entry, value) for those that look like credentials)."""
    plain: dict[str, str] = {}
    secrets: dict[str, tuple[str, str]] = {}
    for var, value in env.items():
        if looks_secret(var, value):
            try:
                check_value(var, value)
            except MCPBoxError as exc:
                raise Untranslatable(f"env {var} looks like a secret the keyring cannot hold: {exc.message}") from exc
            secrets[var] = (f"{name}.{var}", value)
        else:
            plain[var] = value
    return plain, secrets


def translate(server: str, entry: Any, *, name: str, image: str | None = None, origin: str = "") -> Translation:
    """The profile for ``entry``, or :class:`Untranslatable` saying why there is none."""
    if not isinstance(entry, dict):
        raise Untranslatable("the entry is not a JSON object.")
    if "url" in entry or "serverUrl" in entry or entry.get("type") in ("sse", "http", "streamable-http"):
        raise Untranslatable("it is a remote server (url); mcpbox sandboxes local stdio servers.")
    command, args, env = entry.get("command"), entry.get("args", []), entry.get("env", {})
    if not isinstance(command, str) or not command:
        raise Untranslatable("it has no command.")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise Untranslatable("its args are not a list of strings.")
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise Untranslatable("its env is not a map of strings.")
    if "envFile" in entry:
        raise Untranslatable("it reads an envFile, which mcpbox does not import.")
    if any("${" in text for text in [command, *args, *env.values()]):
        raise Untranslatable("it uses the client's ${...} variables, which only the client can fill in.")
    if " " in command and not args and Path(command).name == command:
        command, *args = shlex.split(command)  # some configs put the whole command line in `command`
    build, argv, notes = _command(command, args)
    mounts = _mounts(argv, notes)
    plain, secrets = _split_env(env, name)

    profile: dict[str, Any] = {
        "name": name,
        # A server name is the config's text: invisible and bidi characters are shown as escapes.
        "description": visible(f"{server} (from {origin})" if origin else server).replace("\n", "\\n"),
        # Until `mcpbox build` makes it, the image is a placeholder named for the profile.
        "image": image or f"mcpbox/{name}:latest",
        "build": build,
        "command": argv,
    }
    if plain:
        profile["env"] = plain
    if secrets:
        profile["secrets"] = {var: ref for var, (ref, _) in secrets.items()}
    if mounts:
        profile["mounts"] = mounts
    return Translation(profile, secrets, tuple(notes), placeholder_image=image is None)


def entry_from_command_line(line: str) -> dict[str, Any]:
    """``"npx -y pkg args"`` as a client config entry."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise Untranslatable(f"the command line cannot be split ({exc}).") from exc
    if not argv:
        raise Untranslatable("the command line is empty.")
    return {"command": argv[0], "args": argv[1:]}
