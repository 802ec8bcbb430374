"""Finding, parsing and strictly validating profile files.

Every problem is a :class:`ProfileError` naming the file, the key path and what
was expected; nothing is started from a profile that did not load cleanly.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import stat
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from mcpbox import paths
from mcpbox._text import is_control
from mcpbox.errors import ProfileError
from mcpbox.profile.model import (
    DEFAULT_SECCOMP,
    DEFAULT_USER,
    ENTRY_NAME_RE,
    SECRETS_DIR,
    SERVER_REQUEST_KINDS,
    ArgRule,
    Build,
    Destination,
    LogSettings,
    Mount,
    MountMode,
    NameFilter,
    Network,
    Policy,
    Profile,
    Resources,
    SecretRef,
    ServerRequests,
    ToolRules,
    Tools,
)

MAX_PROFILE_BYTES = 256 * 1024
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
USER_RE = re.compile(r"^(\d+)(?::(\d+))?\Z")
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._/:@+-]*\Z", re.IGNORECASE)
# Build specs reach pip's and npm's argv and a Dockerfile: a name, extras and version clauses only,
# never a leading "-" (an option), a quote, a URL or a path.
_PEP440 = r"(?:===?|[<>!~]=|[<>]) *[A-Za-z0-9.*+!_-]+"
PYPI_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]*(?:\[[A-Za-z0-9,._-]+\])? *(?:{_PEP440}(?: *, *{_PEP440})*)?")
NPM_RE = re.compile(r"(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*(?:@[A-Za-z0-9.*+^~<>=|_ -]+)?")
# Debian policy names; a trailing -, + or . would make apt read the argument as an action or a pattern.
DEB_RE = re.compile(r"[a-z0-9][a-z0-9+.-]*[a-z0-9]")
MAX_DEBS = 32
# Names a POSIX shell owns or resets before the server starts, and the shim's own: a secret there would be lost.
SHELL_NAMES = frozenset(
    {"_", "PATH", "PWD", "OLDPWD", "PPID", "SHLVL", "IFS", "HOME", "OPTIND", "OPTARG", "ENV", "LINENO"}
)
AGE_RE = re.compile(r"^(\d{1,5})\s*([dw])\Z")
MAX_SECRETS = 64
MIN_MEMORY = 16 * 1024 * 1024
MIN_PIDS = 8
# Container paths a mount must never cover: the kernel's views and our own tmpfs root.
FORBIDDEN_TARGETS = ("/proc", "/sys", "/dev")
# Keys of the design that later versions enforce. Accepting them now and doing
# nothing would be a silent loss of safety, so they are refused by name.
NOT_YET_ENFORCED: dict[str, str] = {}
TOP_KEYS = {
    "name", "description", "image", "build", "command", "env", "secrets", "network",
    "mounts", "resources", "seccomp", "user", "tools", "prompts", "mcp_resources", "policy", "log",
}  # fmt: skip
POLICY_BOOLS = (
    "pin_tools",
    "block_suspicious",
    "strict_arguments",
    "sanitize_output",
    "redact_tokens",
    "wrap_untrusted",
)
MAX_PATTERNS = 256
MAX_PATTERN_CHARS = 1024


@dataclass(frozen=True)
class ProfileRef:
    """A profile file that `profile list` shows, before it is loaded."""

    name: str
    path: Path
    origin: str  # "user" | "builtin"
    shadowed: bool = False  # a user profile of the same name wins


def _docker_socket_paths() -> list[Path]:
    """Every place a Docker (or containerd) control socket is commonly found."""
    candidates = [
        Path("/var/run/docker.sock"),
        Path("/run/docker.sock"),
        Path("/run/containerd/containerd.sock"),
        Path.home() / ".docker/run/docker.sock",
        Path(f"/run/user/{os.getuid()}/docker.sock"),
    ]
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        candidates.append(Path(host.removeprefix("unix://")))
    resolved = []
    for candidate in candidates:
        resolved.append(candidate)
        if candidate.exists():
            resolved.append(candidate.resolve())
    return resolved


class _Reader:
    """Typed access to one mapping of the YAML document, with its key path for errors."""

    def __init__(self, file: Path | None, data: Any, where: str) -> None:
        self.file = file
        self.where = where
        if not isinstance(data, Mapping):
            self.fail(where or "(top level)", "a mapping of keys", data)
        self.data: Mapping[str, Any] = data

    def fail(self, key: str, expected: str, got: Any = None, *, why: str = "") -> NoReturn:
        got_text = "" if got is None else f", got {_describe(got)}"
        problem = why or f"expected {expected}{got_text}"
        raise ProfileError(
            f"{self.file or '<profile>'}: {key}: {problem}.",
            f"Fix the profile and check it with `mcpbox profile validate {self.file or 'FILE'}`.",
        )

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def check_keys(self, allowed: set[str]) -> None:
        for name in self.data:
            if not isinstance(name, str):
                self.fail(self.where or "(top level)", "string keys", name)
            full = self.key(name)
            if full in NOT_YET_ENFORCED:
                self.fail(
                    full,
                    "",
                    why=f"{NOT_YET_ENFORCED[full]} are not enforced by this version of mcpbox, "
                    "and a profile must not ask for a protection it would not get; remove the key",
                )
            if name not in allowed:
                self.fail(
                    full,
                    f"one of the known keys ({', '.join(sorted(allowed))})",
                    why=(f"unknown key; the known keys here are {', '.join(sorted(allowed))}"),
                )

    def get(self, name: str) -> Any:
        return self.data.get(name)

    def string(
        self,
        name: str,
        *,
        default: str | None = None,
        pattern: re.Pattern[str] | None = None,
        expected: str = "a string",
    ) -> str | None:
        value = self.data.get(name)
        if value is None:
            return default
        # fullmatch: `$` alone would let a trailing newline through (into argv, a Dockerfile line).
        if not isinstance(value, str) or not value or (pattern is not None and not pattern.fullmatch(value)):
            self.fail(self.key(name), expected, value)
        return value

    def sub(self, name: str) -> _Reader | None:
        value = self.data.get(name)
        return None if value is None else _Reader(self.file, value, self.key(name))


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"{value!r}" if len(value) < 60 else f"a {len(value)}-character string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def parse_size(text: Any) -> int | None:
    """``512m``, ``1g``, ``64MiB`` or a plain number of bytes; ``None`` if unreadable."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text if text > 0 else None
    if not isinstance(text, str) or not (match := SIZE_RE.match(text)):
        return None
    number, unit, suffix = match.groups()
    if suffix.lower() not in ("", "b", "ib") or (suffix.lower() == "ib" and not unit):
        return None
    scale = 1024 ** " kmgt".index(unit.lower() or " ")
    amount = float(number) * scale
    if not amount < 2**63:  # also catches inf from a thousand-digit number
        return None
    value = int(amount)
    return value if value > 0 else None


def _strict_yaml(text: str, file: Path | None) -> Any:
    import yaml  # noqa: PLC0415 - yaml costs ~20 ms; only profile loading needs it

    loader_base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictLoader(loader_base):  # type: ignore[misc]
        """SafeLoader that refuses duplicate keys: a second `mode:` must not win silently."""

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise ProfileError(
                    f"{file or '<profile>'}: line {key_node.start_mark.line + 1}: a key must be a plain scalar.",
                    "Write keys as plain words.",
                )
            if key in seen:
                raise ProfileError(
                    f"{file or '<profile>'}: line {key_node.start_mark.line + 1}: duplicate key {key!r}.",
                    "Keep one of them.",
                )
            seen.add(key)
        return dict(loader_base.construct_mapping(loader, node, deep=deep))

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader derives from SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(f"{file or '<profile>'}: {where}: not valid YAML ({problem}).", "Fix the syntax.") from exc


def _mounts(reader: _Reader, base: Path) -> tuple[Mount, ...]:
    raw = reader.get("mounts")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        reader.fail("mounts", "a list of {source, target, mode} mappings", raw)
    sockets = _docker_socket_paths()
    guarded = _guarded_places()  # once per profile, like the sockets: a profile may list many mounts
    mounts: list[Mount] = []
    for index, item in enumerate(raw):
        mount = _mount(_Reader(reader.file, item, f"mounts[{index}]"), base, sockets, guarded)
        if any(m.target == mount.target for m in mounts):
            reader.fail(f"mounts[{index}].target", "", why=f"{mount.target} is already the target of another mount")
        mounts.append(mount)
    return tuple(mounts)


# Where a user's credentials live, under the home folder: a mount that is, holds or lies in one needs
# `credentials: true` on it, said by a person (a profile from `client install` is made from a config,
# and a project's .mcp.json is somebody else's text; a folder swapped for a symlink later is caught
# too, since the check runs at every load).
CREDENTIAL_PATHS = (
    ".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".netrc", ".pgpass", ".git-credentials",
    ".npmrc", ".pypirc", ".config/pip", ".config/gcloud", ".config/gh", ".local/share/keyrings",
    ".password-store", ".mozilla", ".config/google-chrome", ".config/chromium", ".claude", ".claude.json",
    ".config/Claude", ".cursor", ".codeium", ".config/Code", ".vscode",
)  # fmt: skip


# The same on macOS, under ~/Library; and what desktop clients keep under XDG_CONFIG_HOME.
MAC_CREDENTIAL_PATHS = (
    "Library/Keychains", "Library/Cookies", "Library/Application Support/Claude",
    "Library/Application Support/Code", "Library/Application Support/Google", "Library/Application Support/Firefox",
    "Library/Application Support/Cursor",
)  # fmt: skip
XDG_CREDENTIAL_PATHS = ("Claude", "Code", "Code - Insiders", "gh", "gcloud", "pip", "chromium", "google-chrome")
# Agent sockets' folders (under XDG_RUNTIME_DIR): a server there could sign with the user's keys.
RUNTIME_CREDENTIAL_PATHS = ("keyring", "gnupg", "gcr", "ssh-agent", "openssh_agent", "bus")


def _guarded_places() -> list[Path]:
    home = Path.home()
    places = [home / name for name in CREDENTIAL_PATHS + MAC_CREDENTIAL_PATHS]
    places += [paths.config_dir(), paths.state_dir()]
    if xdg := os.environ.get("XDG_CONFIG_HOME"):
        places += [Path(xdg) / name for name in XDG_CREDENTIAL_PATHS]
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
    places += [runtime / name for name in RUNTIME_CREDENTIAL_PATHS]
    if agent := os.environ.get("SSH_AUTH_SOCK"):
        places.append(Path(agent).parent)
    # Each as written and as resolved: ~/.ssh is often a symlink into a dotfiles folder.
    return [place for written in places for place in (written.absolute(), written.resolve())]


def _fold(path: Path) -> Path:
    """Case- and normalisation-blind: macOS and Windows disks see ~/.SSH and a decomposed é as the same."""
    return Path(unicodedata.normalize("NFD", str(path)).casefold())


def _credentials_in(real: Path, guarded: list[Path]) -> Path | None:
    """The credential place (of ``guarded``) ``real`` is, holds or lies in, or None."""
    folded = _fold(real)
    for place in guarded:
        secret = _fold(place)
        if folded == secret or folded in secret.parents or secret in folded.parents:
            return place
    return None


def _mount(entry: _Reader, base: Path, sockets: list[Path], guarded: list[Path]) -> Mount:
    entry.check_keys({"source", "volume", "target", "mode", "credentials"})
    if entry.get("credentials") is not None and not isinstance(entry.get("credentials"), bool):
        entry.fail(entry.key("credentials"), "true or false", entry.get("credentials"))
    source_text = entry.string("source", expected="a host path")
    volume = entry.string("volume", pattern=NAME_RE, expected="a volume name of a-z, 0-9 and -, not starting with -")
    target = entry.string("target", expected="an absolute path in the container")
    mode = entry.string("mode", default="ro")
    if (source_text is None) == (volume is None):
        entry.fail(entry.key("source"), "", why="give exactly one of source: (a host path) or volume: (a name)")
    if target is None:
        entry.fail(entry.key("target"), "an absolute path in the container", why="is required")
    if mode not in ("ro", "rw"):
        entry.fail(entry.key("mode"), "ro or rw", mode)
    access: MountMode = "rw" if mode == "rw" else "ro"
    if volume is not None:
        if access != "rw":
            # A volume holds only what the server wrote into it: read-only, it would stay empty.
            entry.fail(entry.key("mode"), "", why="a volume is the server's own storage: give it mode: rw")
        return Mount(source=None, target=_target(entry, target), mode=access, volume=volume)
    assert source_text is not None  # noqa: S101 - checked above: exactly one of the two
    source = Path(source_text).expanduser()
    source = source if source.is_absolute() else base / source
    if not source.exists():
        return Mount(source=source, target=_target(entry, target), mode=access, missing=entry.key("source"))
    real = source.resolve()
    credentials = _check_source(entry, source, real, sockets, guarded)
    return Mount(source=real, target=_target(entry, target), mode=access, credentials=credentials)


def _check_source(entry: _Reader, source: Path, real: Path, sockets: list[Path], guarded: list[Path]) -> bool:
    """What a host folder may never be, or only when the profile says so; whether it holds credentials."""
    if real == Path("/"):
        entry.fail(entry.key("source"), "", why="mounting the host's root filesystem is never allowed")
    for sock in sockets:
        if real == sock or real in sock.parents:
            entry.fail(
                entry.key("source"),
                "",
                why=f"{source} exposes the container engine's control socket {sock}, "
                "which is root on the host; it is never mounted",
            )
    if stat.S_ISSOCK(real.stat().st_mode):
        entry.fail(entry.key("source"), "", why=f"{source} is a socket; sockets to host services are never mounted")
    if (secret := _credentials_in(real, guarded)) is not None and entry.get("credentials") is not True:
        entry.fail(
            entry.key("source"),
            "",
            why=f"{source} is, holds or lies in {secret}, where credentials live; if the server truly "
            "needs it, say so with credentials: true on this mount",
        )
    return secret is not None


def _target(entry: _Reader, target: str) -> str:
    # normpath keeps a leading "//" (POSIX allows it a meaning), which would slip "//sys" past the checks.
    norm = "/" + os.path.normpath(target).lstrip("/") if target.startswith("/") else target
    if (
        not norm.startswith("/")
        or norm == "/"
        or any(norm == bad or norm.startswith(bad + "/") for bad in FORBIDDEN_TARGETS)
    ):
        entry.fail(entry.key("target"), "an absolute container path other than /, /proc, /sys or /dev", target)
    if norm == SECRETS_DIR or norm.startswith(SECRETS_DIR + "/"):
        # Secret files live in a private tmpfs there: a mount would put them on disk, or hide them.
        entry.fail(entry.key("target"), "", why=f"{SECRETS_DIR} is where mcpbox puts secret files; mount elsewhere")
    return norm


def _resources(reader: _Reader) -> Resources:
    sub = reader.sub("resources")
    if sub is None:
        return Resources()
    sub.check_keys({"memory", "cpus", "pids"})
    defaults = Resources()
    memory = defaults.memory
    if sub.get("memory") is not None:
        parsed = parse_size(sub.get("memory"))
        if parsed is None or parsed < MIN_MEMORY:
            sub.fail(sub.key("memory"), "a size of at least 16m such as 256m or 1g", sub.get("memory"))
        memory = parsed
    cpus = (
        sub.get(
            "cpus",
        )
        if sub.get("cpus") is not None
        else defaults.cpus
    )
    if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not 0.01 <= cpus <= 1024:
        sub.fail(sub.key("cpus"), "a number of CPUs between 0.01 and 1024", cpus)
    pids = sub.get("pids") if sub.get("pids") is not None else defaults.pids
    if isinstance(pids, bool) or not isinstance(pids, int) or not MIN_PIDS <= pids <= 65536:
        sub.fail(sub.key("pids"), f"a whole number of processes between {MIN_PIDS} and 65536", pids)
    return Resources(memory=memory, cpus=float(cpus), pids=pids)


def _seccomp(reader: _Reader, base: Path) -> str:
    value = reader.string("seccomp", default=DEFAULT_SECCOMP, expected="a profile name in seccomp/ or a path")
    assert value is not None  # noqa: S101 - a default was given
    if value == "unconfined":
        reader.fail("seccomp", "", why="running without seccomp is never allowed; use default or a custom file")
    if "/" not in value and not value.endswith(".json"):
        if not (paths.seccomp_dir() / f"{value}.json").is_file():
            known = sorted(p.stem for p in paths.seccomp_dir().glob("*.json"))
            reader.fail("seccomp", f"one of {', '.join(known) or 'default'} or a path to a JSON file", value)
        return value
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        json.loads(read_bounded(path, 1 << 20))
    except (OSError, ValueError, ProfileError) as exc:
        reader.fail("seccomp", "a readable JSON seccomp profile", why=f"cannot read {path} as JSON ({exc})")
    return str(path.resolve())


def _user(reader: _Reader) -> str:
    user = reader.string("user", default=DEFAULT_USER, pattern=USER_RE, expected='a numeric "uid:gid"')
    assert user is not None  # noqa: S101 - a default was given
    match = USER_RE.match(user)
    assert match is not None  # noqa: S101 - checked by string()
    uid, gid = match.group(1), match.group(2)
    if int(uid) == 0 or (gid is not None and int(gid) == 0):
        reader.fail("user", "", why="root (uid or gid 0) is never allowed; use an unprivileged id such as 65534:65534")
    return user if gid is not None else f"{uid}:{uid}"


def _command(reader: _Reader) -> tuple[str, ...] | None:
    raw = reader.get("command")
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(a, str) for a in raw):
        reader.fail("command", "a non-empty list of strings (the argv in the container)", raw)
    return tuple(raw)


def _env(reader: _Reader) -> tuple[tuple[str, str], ...]:
    sub = reader.sub("env")
    if sub is None:
        return ()
    pairs = []
    for name, value in sub.data.items():
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            sub.fail(sub.where, "environment variable names like TZ or LOG_LEVEL", name)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            sub.fail(sub.key(name), "a plain string or number", value)
        pairs.append((name, str(value)))
    return tuple(pairs)


def _secrets(reader: _Reader, env: tuple[tuple[str, str], ...]) -> tuple[SecretRef, ...]:
    sub = reader.sub("secrets")
    if sub is None:
        return ()
    if len(sub.data) > MAX_SECRETS:
        sub.fail(sub.where, f"at most {MAX_SECRETS} secrets", why=f"{len(sub.data)} secrets is more than {MAX_SECRETS}")
    refs: list[SecretRef] = []
    for var, spec in sub.data.items():
        if not isinstance(var, str) or not ENV_NAME_RE.match(var):
            sub.fail(sub.where, "environment variable names like GITHUB_TOKEN", var)
        if var in SHELL_NAMES or var.lower().startswith("mcpbox_"):
            sub.fail(sub.key(var), "", why="the shell that hands secrets over owns this name; choose another variable")
        refs.append(_secret(sub, var, spec))
    taken = {name for name, _ in env}
    for ref in refs:
        names = (ref.var, f"{ref.var}_FILE") if ref.as_file else (ref.var,)
        for name in names:
            if name in taken:
                # Two sources for one variable: which one the server sees must not depend on ordering.
                sub.fail(sub.key(ref.var), "", why=f"{name} is already set by env: or by another secret")
            taken.add(name)
    return tuple(refs)


def _secret(sub: _Reader, var: str, spec: Any) -> SecretRef:
    entry_expected = "a keyring entry name (letters, digits, '.', '_', '-'; starting with a letter or digit)"
    if isinstance(spec, str):
        if not ENTRY_NAME_RE.match(spec):
            sub.fail(sub.key(var), entry_expected, spec)
        return SecretRef(var=var, entry=spec)
    if not isinstance(spec, Mapping):
        sub.fail(sub.key(var), "a keyring entry name or a mapping {entry, as, rotate_after}", spec)
    item = _Reader(sub.file, spec, sub.key(var))
    item.check_keys({"entry", "as", "rotate_after"})
    entry = item.string("entry", pattern=ENTRY_NAME_RE, expected=entry_expected)
    if entry is None:
        item.fail(item.key("entry"), entry_expected, why="is required")
    kind = item.string("as", default="env")
    if kind not in ("env", "file"):
        item.fail(item.key("as"), "env (the default) or file", kind)
    days: int | None = None
    raw_age = item.get("rotate_after")
    if raw_age is not None:
        match = AGE_RE.match(raw_age) if isinstance(raw_age, str) else None
        days = int(match.group(1)) * (7 if match.group(2) == "w" else 1) if match else 0
        if not 1 <= days <= 3650:
            item.fail(item.key("rotate_after"), "an age such as 90d or 12w (at most 10 years)", raw_age)
    return SecretRef(var=var, entry=entry, as_file=kind == "file", rotate_after_days=days)


MAX_DESTINATIONS = 256
RESOLVER_UID = 5353  # the egress container's resolver (mcpbox.sandbox.egress.RESOLVER_UID; a test keeps them equal)
LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
DOCKER_NETWORK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")


def _network(reader: _Reader, user: str) -> Network:
    value = reader.get("network")
    if value is None or value == "none":
        return Network()
    if user.partition(":")[0] == str(RESOLVER_UID):
        reader.fail(
            "user",
            "",
            why=f"uid {RESOLVER_UID} is the allow-list resolver's own (its traffic passes the DNS rules); use another",
        )
    if not isinstance(value, Mapping):
        reader.fail("network", "none, or a mapping with allow: [host:port, ...]", value)
    sub = _Reader(reader.file, value, "network")
    sub.check_keys({"allow", "dns", "docker_networks"})
    entries = _string_list(sub, "allow", "a list of host:port entries")
    if not entries:
        sub.fail(sub.key("allow"), "", why="an empty allow-list allows nothing; say network: none instead")
    if len(entries) > MAX_DESTINATIONS:
        sub.fail(sub.key("allow"), f"at most {MAX_DESTINATIONS} entries", f"{len(entries)} entries")
    allow = tuple(_destination(sub, f"{sub.key('allow')}[{i}]", entry) for i, entry in enumerate(entries))
    dns: list[str] = []
    for i, server in enumerate(_string_list(sub, "dns", "a list of IP addresses")):
        try:
            dns.append(str(ipaddress.ip_address(server)))
        except ValueError:
            sub.fail(f"{sub.key('dns')}[{i}]", "an IP address (resolvers are reached by address)", server)
    networks = _string_list(sub, "docker_networks", "a list of Docker network names")
    for i, name in enumerate(networks):
        if not DOCKER_NETWORK_RE.match(name) or name in ("host", "none", "default"):
            why = "the host's own network is never joined" if name == "host" else ""
            sub.fail(f"{sub.key('docker_networks')}[{i}]", "the name of a Docker bridge network", name, why=why)
    return Network(allow=tuple(dict.fromkeys(allow)), dns=tuple(dns), docker_networks=tuple(networks))


def _string_list(reader: _Reader, name: str, expected: str) -> list[str]:
    value = reader.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        reader.fail(reader.key(name), expected, value)
    return list(value)


def _destination(reader: _Reader, key: str, entry: str) -> Destination:
    """``name:port``, ``*.name:port``, ``IP:port``, ``CIDR:port``; IPv6 in brackets."""
    expected = "host:port, where host is a DNS name, *.name, an IP address or a CIDR network (IPv6 in [brackets])"
    if entry.startswith("["):
        host, sep, port_text = entry[1:].partition("]:")
    else:
        host, sep, port_text = entry.rpartition(":")
    if not sep or not host:
        reader.fail(key, expected, entry, why=f"{entry!r} has no port; every entry names one ({expected})")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        reader.fail(key, "a port from 1 to 65535 after the last ':'", entry)
    port = int(port_text)
    if "/" in host:
        try:
            network = ipaddress.ip_network(host, strict=True)
        except ValueError:
            reader.fail(key, f"{expected}; {host!r} is not a network with its host bits zero", entry)
        if network.prefixlen == 0:
            reader.fail(key, "", why=f"{entry!r} would allow every address; list the networks the server needs")
        return Destination("cidr", str(network), port, entry)
    if ":" in host and not entry.startswith("["):
        reader.fail(key, "", why=f"{entry!r}: an IPv6 address goes in brackets, as in [2001:db8::1]:443")
    try:
        return Destination("ip", str(ipaddress.ip_address(host)), port, entry)
    except ValueError:
        pass
    name = host.lower().rstrip(".")
    wildcard = name.startswith("*.")
    labels = name[2:].split(".") if wildcard else name.split(".")
    if not all(LABEL_RE.match(label) for label in labels) or labels[-1].isdigit():
        reader.fail(key, expected, entry)
    if len(labels) < 2:
        why = "a wildcard must sit below a registered name (*.example.com)" if wildcard else ""
        reader.fail(key, f"{expected}; a name needs at least two labels (example.com)", entry, why=why)
    return Destination("wildcard" if wildcard else "name", ".".join(labels), port, entry)


def _build(reader: _Reader) -> Build | None:
    sub = reader.sub("build")
    if sub is None:
        return None
    sub.check_keys({"pypi", "npm", "apt", "base"})
    base = sub.string("base", pattern=IMAGE_RE, expected="an image reference such as python:3.11-slim-bookworm")
    pypi = sub.string("pypi", pattern=PYPI_RE, expected="a pip requirement such as mcp-server-git==2026.10.19")
    npm = sub.string("npm", pattern=NPM_RE, expected="an npm spec such as @scope/pkg@1.2.3")
    if (pypi is None) == (npm is None):
        sub.fail(sub.where, "exactly one of pypi or npm")
    apt = sub.get("apt") or []
    if not isinstance(apt, list) or len(apt) > MAX_DEBS:
        sub.fail(sub.key("apt"), f"a list of at most {MAX_DEBS} Debian package names", apt)
    for item in apt:
        if not isinstance(item, str) or not DEB_RE.fullmatch(item):
            sub.fail(sub.key("apt"), "Debian package names such as git", item)
    return Build(pypi=pypi, npm=npm, apt=tuple(apt), base=base)


def _patterns(reader: _Reader, name: str) -> tuple[str, ...] | None:
    """A list of names or globs (``*``, ``?``, ``[...]``); ``None`` when the key is absent."""
    raw = reader.get(name)
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or len(raw) > MAX_PATTERNS:
        reader.fail(reader.key(name), f"a list of at most {MAX_PATTERNS} names or globs", raw)
    for item in raw:
        if not isinstance(item, str) or not item or len(item) > MAX_PATTERN_CHARS or any(map(is_control, item)):
            reader.fail(reader.key(name), "names or globs such as read_file or git_*", item)
    return tuple(raw)


def _name_filter(reader: _Reader, key: str) -> NameFilter:
    sub = reader.sub(key)
    if sub is None:
        return NameFilter()
    sub.check_keys({"allow", "deny"})
    return NameFilter(allow=_patterns(sub, "allow"), deny=_patterns(sub, "deny") or ())


def _tools(reader: _Reader) -> Tools:
    sub = reader.sub("tools")
    if sub is None:
        return Tools()
    sub.check_keys({"allow", "deny", "approve", "rules"})
    return Tools(
        allow=_patterns(sub, "allow"),
        deny=_patterns(sub, "deny") or (),
        approve=_patterns(sub, "approve") or (),
        rules=_tool_rules(sub),
    )


def _tool_rules(reader: _Reader) -> tuple[ToolRules, ...]:
    sub = reader.sub("rules")
    if sub is None:
        return ()
    found: list[ToolRules] = []
    for tool, arguments in sub.data.items():
        if not isinstance(tool, str) or not tool:
            sub.fail(sub.where, "tool names or globs as keys", tool)
        per_tool = _Reader(sub.file, arguments, sub.key(tool))
        rules: list[tuple[str, ArgRule]] = []
        for argument, spec in per_tool.data.items():
            if not isinstance(argument, str) or not argument:
                per_tool.fail(per_tool.where, "argument names as keys", argument)
            rules.append((argument, _arg_rule(_Reader(sub.file, spec, per_tool.key(argument)))))
        found.append(ToolRules(tool=tool, arguments=tuple(rules)))
    return tuple(found)


def _arg_rule(rule: _Reader) -> ArgRule:
    rule.check_keys({"glob", "regex", "enum"})
    if not rule.data:
        rule.fail(rule.where, "at least one of glob, regex or enum")
    globs = _patterns(rule, "glob") or ()
    for glob in globs:
        if not glob.startswith("/"):
            rule.fail(rule.key("glob"), "absolute path globs such as /data/**", glob)
    regex = rule.string("regex", expected="a regular expression")
    if regex is not None:
        try:
            re.compile(regex)
        except re.error as exc:
            rule.fail(
                rule.key("regex"),
                "a valid regular expression",
                why=f"{regex!r} is not a valid regular expression ({exc})",
            )
    enum_raw = rule.get("enum")
    enum: tuple[str | int | float | bool | None, ...] | None = None
    if enum_raw is not None:
        if not isinstance(enum_raw, list) or not enum_raw:
            rule.fail(rule.key("enum"), "a non-empty list of allowed values", enum_raw)
        for item in enum_raw:
            if item is not None and not isinstance(item, str | int | float | bool):
                rule.fail(rule.key("enum"), "plain values (strings, numbers, booleans)", item)
        enum = tuple(enum_raw)
    return ArgRule(glob=globs, regex=regex, enum=enum)


def _number(reader: _Reader, name: str, default: float, low: float, high: float, *, whole: bool) -> float:
    value = reader.get(name)
    if value is None:
        return default
    kind = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        reader.fail(reader.key(name), f"a {'whole ' if whole else ''}number from {low:g} to {high:g}", value)
    return float(value)


def _policy(reader: _Reader) -> Policy:
    sub = reader.sub("policy")
    if sub is None:
        return Policy()
    sub.check_keys(
        {
            "max_message_bytes", "calls_per_minute", "tool_calls_per_minute", "max_concurrent_calls",
            "max_argument_chars", "call_timeout", "approval_timeout", "server_requests", *POLICY_BOOLS,
        }
    )  # fmt: skip
    safe = Policy()
    size = safe.max_message_bytes
    if (raw := sub.get("max_message_bytes")) is not None:
        parsed = parse_size(raw)
        if parsed is None or not 1024 <= parsed <= 1024**3:
            sub.fail(sub.key("max_message_bytes"), "a size between 1k and 1g", raw)
        size = parsed
    flags: dict[str, bool] = {}
    for key in POLICY_BOOLS:
        value = sub.get(key)
        if value is not None and not isinstance(value, bool):
            sub.fail(sub.key(key), "true or false", value)
        flags[key] = getattr(safe, key) if value is None else value
    per_tool: list[tuple[str, int]] = []
    if (tools_sub := sub.sub("tool_calls_per_minute")) is not None:
        for tool in tools_sub.data:
            per_tool.append((str(tool), int(_number(tools_sub, str(tool), 0, 1, 100_000, whole=True))))
    return Policy(
        max_message_bytes=size,
        calls_per_minute=int(_number(sub, "calls_per_minute", safe.calls_per_minute, 1, 100_000, whole=True)),
        tool_calls_per_minute=tuple(per_tool),
        max_concurrent_calls=int(_number(sub, "max_concurrent_calls", safe.max_concurrent_calls, 1, 1024, whole=True)),
        max_argument_chars=int(
            _number(sub, "max_argument_chars", safe.max_argument_chars, 1, 64 * 1024 * 1024, whole=True)
        ),
        call_timeout=_number(sub, "call_timeout", safe.call_timeout, 1, 86_400, whole=False),
        approval_timeout=_number(sub, "approval_timeout", safe.approval_timeout, 1, 3_600, whole=False),
        server_requests=_server_requests(sub),
        **flags,
    )


def _server_requests(reader: _Reader) -> ServerRequests:
    sub = reader.sub("server_requests")
    if sub is None:
        return ServerRequests()
    sub.check_keys(set(SERVER_REQUEST_KINDS))
    modes: dict[str, Any] = {}
    for kind in SERVER_REQUEST_KINDS:
        value = sub.string(kind, default=getattr(ServerRequests(), kind))
        if value not in ("allow", "deny", "approve"):
            sub.fail(sub.key(kind), "allow, deny or approve", value)
        modes[kind] = value
    return ServerRequests(**modes)


def _log(reader: _Reader) -> LogSettings:
    sub = reader.sub("log")
    if sub is None:
        return LogSettings()
    sub.check_keys({"payloads", "sign", "keep_days"})
    payloads = sub.string("payloads", default="full")
    if payloads not in ("full", "metadata"):
        sub.fail(sub.key("payloads"), "full or metadata", payloads)
    sign = sub.get("sign")
    if sign is not None and not isinstance(sign, bool):
        sub.fail(sub.key("sign"), "true or false", sign)
    return LogSettings(
        payloads="metadata" if payloads == "metadata" else "full",
        sign=True if sign is None else sign,
        keep_days=int(_number(sub, "keep_days", LogSettings().keep_days, 1, 36_500, whole=True)),
    )


def parse_profile(data: Any, file: Path | None = None, *, default_name: str | None = None) -> Profile:
    """Validate an already-parsed YAML document into a :class:`Profile`."""
    reader = _Reader(file, data, "")
    reader.check_keys(TOP_KEYS)
    base = file.parent if file is not None else Path.cwd()
    name = reader.string(
        "name", default=default_name, pattern=NAME_RE, expected="a name of lowercase letters, digits and dashes"
    )
    if name is None:
        reader.fail("name", "a name of lowercase letters, digits and dashes", why="is required")
    image = reader.string("image", pattern=IMAGE_RE, expected="an image reference such as mcpbox/time:1.0")
    if image is None:
        reader.fail("image", "an image reference", why="is required")
    description = reader.string("description", default="") or ""
    if any(is_control(c) for c in description):
        reader.fail("description", "", why="control characters (terminal escapes) are not allowed")
    return Profile(
        name=name,
        image=image,
        source=file,
        description=description,
        command=_command(reader),
        env=(env := _env(reader)),
        secrets=_secrets(reader, env),
        mounts=_mounts(reader, base),
        network=_network(reader, _user(reader)),
        resources=_resources(reader),
        seccomp=_seccomp(reader, base),
        user=_user(reader),
        build=_build(reader),
        tools=_tools(reader),
        prompts=_name_filter(reader, "prompts"),
        mcp_resources=_name_filter(reader, "mcp_resources"),
        policy=_policy(reader),
        log=_log(reader),
    )


def read_bounded(path: Path, limit: int = MAX_PROFILE_BYTES) -> bytes:
    """A regular file's bytes, at most ``limit``: devices, FIFOs and huge files are refused."""
    # O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ProfileError(f"{path}: not a regular file.", "Point to a YAML or JSON file.")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ProfileError(f"{path}: larger than {limit} bytes.", "Check that this is the right file.")
    return data


def read_profile_file(path: Path) -> Profile:
    try:
        text = read_bounded(path).decode("utf-8")
    except FileNotFoundError as exc:
        raise ProfileError(f"{path}: no such profile file.", "Check the path.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(
            f"{path}: cannot read the profile ({exc}).", "Check the file's permissions and encoding."
        ) from exc
    return parse_profile(_strict_yaml(text, path), path, default_name=path.stem)


def _profile_files(directory: Path) -> Iterator[Path]:
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if path.suffix in (".yaml", ".yml") and path.is_file():
                yield path


def list_profiles() -> list[ProfileRef]:
    """User profiles first, then built-ins; a built-in hidden by a user profile is marked shadowed."""
    refs = [ProfileRef(p.stem, p, "user") for p in _profile_files(paths.user_profiles_dir())]
    user_names = {ref.name for ref in refs}
    refs += [
        ProfileRef(p.stem, p, "builtin", shadowed=p.stem in user_names)
        for p in _profile_files(paths.builtin_profiles_dir())
    ]
    return refs


def find_profile(name_or_path: str) -> Path:
    """A path if it looks like one, else the user's profile of that name, else the built-in one."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return Path(name_or_path).expanduser()
    if not NAME_RE.match(name_or_path):
        raise ProfileError(
            f"{name_or_path!r} is not a profile name or a path to a YAML file.",
            "Run `mcpbox profile list` to see the profiles.",
        )
    for directory in (paths.user_profiles_dir(), paths.builtin_profiles_dir()):
        for suffix in (".yaml", ".yml"):
            candidate = directory / f"{name_or_path}{suffix}"
            if candidate.is_file():
                return candidate
    raise ProfileError(
        f"no profile named {name_or_path!r} in {paths.user_profiles_dir()} or the built-ins.",
        "Run `mcpbox profile list` to see the profiles, or pass a path to a YAML file.",
    )


def load_profile(name_or_path: str) -> Profile:
    """Find and validate a profile by name or path; raises :class:`ProfileError`."""
    return read_profile_file(find_profile(name_or_path))
