"""Rewrite a client's config so its stdio servers run under mcpbox, and put it back.

The first install of a file keeps its original bytes in mcpbox's private state dir (0600: the
original may hold tokens in plain text, as the client kept them); `uninstall` writes those bytes
back and forgets them. Only the rewritten entries' text changes: the rest of the file, its key
order, indentation and final newline stay as they were, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

import yaml

from mcpbox import paths
from mcpbox._text import visible
from mcpbox.clients.configs import ConfigFile, KeyPath, Place, config_files, sandboxed_profile, server_entries
from mcpbox.clients.translate import Translation, profile_name, translate
from mcpbox.errors import MCPBoxError, UsageError

_WS = re.compile(r"[ \t\n\r]*")


class ClientConfigError(UsageError):
    """A client config mcpbox cannot read or safely rewrite."""


@dataclass
class Outcome:
    """What happened to one server entry."""

    file: Path
    server: str
    action: str  # "sandboxed", "already", "left"
    profile: str | None = None
    reason: str = ""
    secrets: list[str] = field(default_factory=list)  # keyring entries made
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "server": self.server,
            "action": self.action,
            "profile": self.profile,
            "reason": self.reason,
            "secrets": self.secrets,
            "notes": list(self.notes),
        }


def mcpbox_executable() -> str:
    """The absolute path a client should start: this very mcpbox, not whichever is first on PATH."""
    argv0 = Path(sys.argv[0])
    if argv0.name.startswith("mcpbox") and argv0.is_file():
        return str(argv0.absolute())  # not resolved: a pipx symlink survives upgrades
    beside = Path(sys.executable).parent / ("mcpbox.exe" if sys.platform == "win32" else "mcpbox")
    if beside.is_file():
        return str(beside)
    found = shutil.which("mcpbox")
    if found:
        return str(Path(found).absolute())
    raise UsageError("cannot find the mcpbox executable to write into the config.", "Install mcpbox with pip or pipx.")


def read_config(path: Path) -> tuple[bytes, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ClientConfigError(f"{path}: no such file.", "Is the client installed and set up?") from exc
    except OSError as exc:
        raise ClientConfigError(f"{path}: cannot read it ({exc}).", "Check its permissions.") from exc
    try:
        return raw, json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        # VS Code's settings.json allows comments; rewriting it as JSON would drop them.
        raise ClientConfigError(
            f"{path}: not plain JSON ({exc}); mcpbox rewrites only files it can keep intact.",
            "Remove comments and trailing commas, or move the servers to the client's mcp.json.",
        ) from exc


def value_spans(text: str) -> dict[KeyPath, tuple[int, int]]:
    """Start and end offset of every object member's value, by key path (text must be valid JSON)."""
    spans: dict[KeyPath, tuple[int, int]] = {}
    decoder = json.JSONDecoder()

    def skip(i: int) -> int:
        match = _WS.match(text, i)
        return match.end() if match else i

    def value(i: int, path: KeyPath) -> int:
        i = start = skip(i)
        if text[i] == "{" or text[i] == "[":
            closing, i = ("}" if text[i] == "{" else "]"), skip(i + 1)
            index = 0
            while text[i] != closing:
                if closing == "}":
                    key, i = scanstring(text, i + 1)
                    i = skip(i) + 1  # the colon
                    i = skip(value(i, (*path, key)))
                else:
                    i = skip(value(i, (*path, str(index))))
                    index += 1
                if text[i] == ",":
                    i = skip(i + 1)
            end = i + 1
        else:
            _, end = decoder.raw_decode(text, i)
        spans[path] = (start, end)
        return end

    value(0, ())
    return spans


def _indent_unit(text: str) -> str | int | None:
    match = re.search(r"\n([ \t]+)\S", text)
    if match is None:
        return None  # all on one line: keep it that way
    unit = match.group(1)
    return unit if "\t" in unit else len(unit)


def _render(value: Any, unit: str | int | None, depth: int = 0) -> str:
    """JSON as people write configs by hand: objects one member a line, lists of scalars on one line."""
    if unit is None or not isinstance(value, dict | list) or not value:
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list) and not any(isinstance(v, dict | list) for v in value):
        return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value) + "]"
    step = unit if isinstance(unit, str) else " " * unit
    inner, outer = step * (depth + 1), step * depth
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_render(v, unit, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + outer + "}"
    return "[\n" + ",\n".join(inner + _render(v, unit, depth + 1) for v in value) + "\n" + outer + "]"


def replace_values(text: str, changes: dict[KeyPath, Any]) -> str:
    """``text`` with the values at ``changes``' key paths replaced, everything else untouched."""
    spans = value_spans(text)
    unit = _indent_unit(text)
    for key_path, new in sorted(changes.items(), key=lambda kv: spans[kv[0]][0], reverse=True):
        start, end = spans[key_path]
        line_start = text.rfind("\n", 0, start) + 1
        margin = re.match(r"[ \t]*", text[line_start:start])
        rendered = _render(new, unit).replace("\n", "\n" + (margin.group(0) if margin else ""))
        text = text[:start] + rendered + text[end:]
    return text


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` in one step: a crash leaves the old file or the new one, with the old mode."""
    target = path.resolve()
    tmp = target.with_name(f".{target.name}.mcpbox-{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode & 0o7777)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(mode & 0o7777)  # the umask narrowed it at creation
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _record_paths(config: ConfigFile) -> tuple[Path, Path]:
    key = hashlib.sha256(str(config.path.absolute()).encode()).hexdigest()[:16]
    folder = paths.state_dir() / "clients" / config.client
    return folder / f"{key}.json", folder / f"{key}.orig"


def read_record(config: ConfigFile) -> dict[str, Any] | None:
    record_path, _ = _record_paths(config)
    try:
        data = json.loads(record_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ClientConfigError(f"{record_path}: unreadable install record ({exc}).", "Remove it or fix it.") from exc
    return data if isinstance(data, dict) else None


def _write_private(path: Path, data: bytes) -> None:
    paths.ensure_private_dir(path.parent)
    write_atomic(path, data, 0o600)


def _taken_names() -> set[str]:
    """Profile names in use: existing profiles, and those any install record still refers to (their
    keyring entries, PROFILE.VAR, hold tokens that record's uninstall will need, even if the profile
    file was deleted since)."""
    from mcpbox.profile.load import list_profiles  # noqa: PLC0415 - pulls in yaml checks only when installing

    taken = {ref.name for ref in list_profiles()}
    for record_file in (paths.state_dir() / "clients").glob("*/*.json"):
        try:
            taken |= {Path(name).stem for name in json.loads(record_file.read_text(encoding="utf-8"))["profiles"]}
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: its own uninstall says so
    return taken


def _check_profile(translation: Translation, path: Path) -> None:
    from mcpbox.profile.load import parse_profile  # noqa: PLC0415 - see _taken_names

    parse_profile(translation.profile, path)  # what `mcpbox run` will accept, checked before anything is written


def _comment(text: str) -> str:
    """One YAML comment line. Its text comes from a config file (a server's name, say), which may be
    a project's own `.mcp.json`: a line break in it would start a profile key of its author's choosing."""
    return "# " + visible(text).replace("\n", "\\n") + "\n"


def write_profile(translation: Translation, path: Path, made_by: str) -> Path:
    """Write ``translation``'s profile to ``path``, which must not exist yet."""
    _check_profile(translation, path)
    head = _comment(f"Made by {made_by} from {translation.profile['description']}.")
    if translation.placeholder_image:
        head += _comment("`image` is a placeholder until `mcpbox build` makes it from `build`.")
    notes = "".join(_comment(f"Check: {note}.") for note in translation.notes)
    body = yaml.safe_dump(translation.profile, sort_keys=False, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as handle:  # never overwrite someone's profile
            handle.write(head + notes + body)
    except FileExistsError as exc:
        raise UsageError(f"{path} already exists.", "Choose another name, or remove that profile first.") from exc
    return path


def install_file(
    config: ConfigFile,
    *,
    only: str | None = None,
    images: dict[str, str] | None = None,
    store: Callable[[str, str], object] | None = None,
    executable: str | None = None,
) -> list[Outcome]:
    """Sandbox the stdio servers of one config file; returns one outcome per server considered."""
    raw, data = read_config(config.path)
    text = raw.decode("utf-8-sig")
    images = images or {}
    taken = _taken_names()
    outcomes: list[Outcome] = []
    planned: list[tuple[KeyPath, str, dict[str, Any], Translation]] = []
    for key_path, server, entry in server_entries(data, config.server_maps):
        if only is not None and server != only:
            continue
        if (already := sandboxed_profile(entry)) is not None:
            outcomes.append(Outcome(config.path, server, "already", already, "runs under mcpbox already"))
            continue
        name = profile_name(server, taken)
        try:
            translation = translate(server, entry, name=name, image=images.get(server), origin=str(config.path))
            _check_profile(translation, paths.user_profiles_dir() / f"{name}.yaml")
        except MCPBoxError as exc:
            outcomes.append(Outcome(config.path, server, "left", reason=exc.message))
            continue
        taken.add(name)
        planned.append((key_path, server, entry, translation))
    if not planned:
        return outcomes

    exe = executable or mcpbox_executable()
    if store is None and any(t.secrets for *_, t in planned):
        from mcpbox.secrets.store import SecretStore  # noqa: PLC0415 - loads the keyring

        store = SecretStore().set
    changes: dict[KeyPath, Any] = {}
    for key_path, server, entry, translation in planned:
        for entry_name, value in translation.secrets.values():
            assert store is not None  # noqa: S101 - set above whenever a translation has secrets
            store(entry_name, value)  # keyring first: if it fails, the config still holds the only copy
        write_profile(
            translation,
            paths.user_profiles_dir() / f"{translation.name}.yaml",
            f"`mcpbox client install {config.client}`",
        )
        rewritten = {k: v for k, v in entry.items() if k not in ("command", "args", "env")}
        changes[key_path] = {"command": exe, "args": ["run", translation.name], **rewritten}
        secrets = [ref for ref, _ in translation.secrets.values()]
        outcomes.append(Outcome(config.path, server, "sandboxed", translation.name, "", secrets, translation.notes))

    record = read_record(config) or {"path": str(config.path.absolute()), "profiles": [], "secrets": []}
    record_path, backup_path = _record_paths(config)
    backup = _keep_originals(backup_path, raw, record, planned, outcomes)
    # The record first: a backup whose markers no record maps back would make uninstall write them
    # into the config. Then the backup, then the config; a failure in between leaves what was.
    _write_private(record_path, json.dumps(record, indent=1).encode() + b"\n")
    _write_private(backup_path, backup)
    new = replace_values(text, changes).encode("utf-8")
    new = _bom(raw) + new
    write_atomic(config.path, new, config.path.stat().st_mode)
    done = [o for o in outcomes if o.action == "sandboxed"]
    record["profiles"] += [str(paths.user_profiles_dir() / f"{o.profile}.yaml") for o in done]
    record["secrets"] += [ref for o in done for ref in o.secrets]
    record["written_sha256"] = hashlib.sha256(new).hexdigest()
    _write_private(record_path, json.dumps(record, indent=1).encode() + b"\n")
    return outcomes


def _keep_originals(
    backup_path: Path,
    raw: bytes,
    record: dict[str, Any],
    planned: list[tuple[KeyPath, str, dict[str, Any], Translation]],
    outcomes: list[Outcome],
) -> bytes:
    """What uninstall needs, into ``record``, and the backup's new bytes (the caller writes both).

    The whole original file, kept once (later installs must not overwrite it), and each rewritten
    entry as it was, by key path, for a file the client changed since (Claude Code writes its own
    state into ~/.claude.json all the time). In both, each env value just moved to the keyring is
    replaced by a marker, at its own key path only (a short token such as "postgres" may be spelled
    elsewhere in the file too): the keyring is the only place on disk that holds it."""
    if backup_path.exists() and hashlib.sha256(raw).hexdigest() != record.get("written_sha256"):
        # Changed between two installs (a server added, say): the first original alone no longer
        # gives back what this file held, so uninstall restores entry by entry from now on.
        record["pristine"] = False
    record.setdefault("seal", os.urandom(8).hex())
    record.setdefault("sealed", [])
    record.setdefault("entries", [])
    backup = backup_path.read_bytes() if backup_path.exists() else raw
    moved = {
        (*key_path, "env", var): entry_name
        for key_path, _, _, translation in planned
        for var, (entry_name, _) in translation.secrets.items()
    }
    backup, missed = _seal_values(backup, moved, record)
    for key_path, _, entry, translation in planned:
        was = json.loads(json.dumps(entry))
        for var, (entry_name, _) in translation.secrets.items():
            was["env"][var] = _marker(record, entry_name, ascii_only=False)
        record["entries"].append(
            {"path": list(key_path), "profile": translation.name, "original": json.dumps(was, ensure_ascii=False)}
        )
    for outcome in outcomes:
        if set(outcome.secrets) & missed:
            note = "a token is spelled with unusual JSON escapes in the file, so the private backup still holds it"
            outcome.notes = (*outcome.notes, note)
    return backup


def _marker(record: dict[str, Any], entry: str, *, ascii_only: bool) -> str:
    """A new marker for the keyring entry ``entry``; fixed width, so none is the start of another."""
    marker = f"mcpbox-sealed-{record['seal']}-{len(record['sealed']):06d}"
    record["sealed"].append({"entry": entry, "marker": marker, "ascii": ascii_only})
    return marker


def _seal_values(data: bytes, moved: dict[KeyPath, str], record: dict[str, Any]) -> tuple[bytes, set[str]]:
    """``data`` (a JSON file) with the string at each key path of ``moved`` replaced by a marker for
    its keyring entry; the entries whose spelling there is not one unseal can write back."""
    bom = _bom(data)
    text = data[len(bom) :].decode("utf-8")
    parsed = json.loads(text)
    spans = value_spans(text)
    missed: set[str] = set()
    edits: list[tuple[int, int, str]] = []
    for key_path, entry in moved.items():
        if key_path not in spans:
            continue  # not in this (older) original: the server came later
        start, end = spans[key_path]
        value = _at(parsed, key_path)
        spelled = {json.dumps(value, ensure_ascii=flag): flag for flag in (False, True)}
        if not isinstance(value, str) or text[start:end] not in spelled:
            missed.add(entry)
            continue
        marker = _marker(record, entry, ascii_only=spelled[text[start:end]])
        edits.append((start, end, f'"{marker}"'))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return bom + text.encode("utf-8"), missed


def unseal(data: bytes, sealed: list[dict[str, Any]], load: Callable[[str], str | None], file: Path) -> bytes:
    """The original bytes back: each marker replaced by its token, read from the keyring."""
    for item in sealed:
        if str(item["marker"]).encode() not in data:
            continue
        value = load(str(item["entry"]))
        if value is None:
            raise ClientConfigError(
                f"the keyring entry {item['entry']!r}, which holds a token from {file}, is gone, so the "
                "original file cannot be put back as it was.",
                f"Store the token again with `mcpbox secret set {item['entry']}`, then run uninstall again.",
            )
        form = json.dumps(value, ensure_ascii=bool(item["ascii"]))[1:-1].encode()
        data = data.replace(str(item["marker"]).encode(), form)
    return data


def _restore_entries(
    path: Path, entries: list[dict[str, Any]], unsealed: Callable[[bytes], bytes]
) -> tuple[bytes, list[str]]:
    """The current file with each entry mcpbox rewrote (and that still runs its profile) put back as it
    was before (``unsealed`` puts its tokens back); everything else as the client left it. Also the
    servers left alone."""
    raw, data = read_config(path)
    changes: dict[KeyPath, Any] = {}
    left: list[str] = []
    for item in entries:
        key_path = tuple(item["path"])
        # Still there and still mcpbox's (sandboxed_profile of a missing entry is None).
        if sandboxed_profile(_at(data, key_path)) == item["profile"]:
            changes[key_path] = json.loads(unsealed(str(item["original"]).encode()))
        else:
            left.append(key_path[-1])
    text = replace_values(raw.decode("utf-8-sig"), changes)
    return _bom(raw) + text.encode("utf-8"), left


def _bom(data: bytes) -> bytes:
    """The UTF-8 byte-order mark ``data`` starts with (Windows editors write one), kept on rewrite."""
    return b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""


def _at(data: Any, key_path: KeyPath) -> Any:
    for key in key_path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def existing_files(client: str, place: Place | None = None) -> list[ConfigFile]:
    return [config for config in config_files(client, place) if config.path.is_file()]


def install(
    client: str,
    *,
    only: str | None = None,
    images: dict[str, str] | None = None,
    place: Place | None = None,
    store: Callable[[str, str], object] | None = None,
    executable: str | None = None,
) -> list[Outcome]:
    files = existing_files(client, place)
    if not files:
        where = ", ".join(str(c.path) for c in config_files(client, place))
        raise ClientConfigError(f"no {client} config found (looked at {where}).", "Add a server in the client first.")
    outcomes: list[Outcome] = []
    for config in files:
        try:
            outcomes += install_file(config, only=only, images=images, store=store, executable=executable)
        except ClientConfigError as error:
            # One file mcpbox cannot keep intact (VS Code's settings.json with comments, say) must not
            # stop the others: it is left as it is, and said so.
            outcomes.append(Outcome(config.path, "(every server in it)", "left", reason=error.message))
    if only is not None and not any(o.server == only for o in outcomes):
        raise UsageError(f"{client} has no server named {only!r}.", f"Run `mcpbox client status {client}`.")
    return outcomes


@dataclass
class Restored:
    file: Path
    profiles: list[str]
    secrets: list[str]
    # Set when the file had changed since install: only mcpbox's entries were put back, by key path,
    # and the client's other changes kept; the entries the user had changed again are left, by name.
    entries_only: bool = False
    left: list[str] = field(default_factory=list)


def uninstall(
    client: str,
    *,
    place: Place | None = None,
    force: bool = False,
    load: Callable[[str], str | None] | None = None,
) -> list[Restored]:
    """Put back every file of ``client`` that install rewrote, byte for byte (tokens from the keyring)."""
    restored: list[Restored] = []
    for config in config_files(client, place):
        record = read_record(config)
        record_path, backup_path = _record_paths(config)
        if record is None or not backup_path.is_file():
            continue
        if load is None and record.get("sealed"):
            from mcpbox.secrets.store import SecretStore  # noqa: PLC0415 - loads the keyring

            load = SecretStore().get
        restored.append(_restore_file(config, record, backup_path, force=force, load=load))
        backup_path.unlink()
        record_path.unlink()
    if not restored:
        raise UsageError(f"mcpbox has not rewritten any {client} config.", "Nothing to undo.")
    return restored


def _restore_file(
    config: ConfigFile,
    record: dict[str, Any],
    backup_path: Path,
    *,
    force: bool,
    load: Callable[[str], str | None] | None,
) -> Restored:
    """Write back one file: the whole original when nothing changed it since mcpbox did (or with
    ``force``), else each entry mcpbox rewrote, as it was."""
    changed = config.path.exists() and hashlib.sha256(config.path.read_bytes()).hexdigest() != record.get(
        "written_sha256"
    )
    by_entry = (changed or not record.get("pristine", True)) and not force and config.path.exists()
    sealed = list(record.get("sealed", []))

    def unsealed(data: bytes) -> bytes:
        return unseal(data, sealed, load, config.path) if load is not None else data

    done = Restored(config.path, list(record.get("profiles", [])), list(record.get("secrets", [])))
    mode = config.path.stat().st_mode if config.path.exists() else 0o600
    if by_entry:
        done.entries_only = True
        original, done.left = _restore_entries(config.path, record["entries"], unsealed)
    else:
        original = unsealed(backup_path.read_bytes())
    write_atomic(config.path, original, mode)
    return done


@dataclass
class ServerStatus:
    client: str
    file: Path
    server: str
    kind: str  # "stdio" or "remote"
    profile: str | None  # set when it runs under mcpbox

    def as_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "file": str(self.file),
            "server": self.server,
            "kind": self.kind,
            "sandboxed": self.profile is not None,
            "profile": self.profile,
        }


def status(client: str, place: Place | None = None) -> list[ServerStatus]:
    rows: list[ServerStatus] = []
    for config in existing_files(client, place):
        _, data = read_config(config.path)
        for _, server, entry in server_entries(data, config.server_maps):
            kind = "stdio" if isinstance(entry, dict) and "command" in entry and "url" not in entry else "remote"
            rows.append(ServerStatus(client, config.path, server, kind, sandboxed_profile(entry)))
    return rows
