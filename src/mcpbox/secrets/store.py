"""Secret values live in the OS keyring and nowhere else; this module is the only way in.

Only a keyring that protects what it stores is accepted: macOS Keychain, Windows
Credential Locker, the Secret Service (GNOME Keyring, KeePassXC...) or KWallet.
A plaintext file, a null or a failing backend is refused by name, because a
tool that quietly writes tokens to ``~/.local/share`` would be worse than the
client config it replaces.

The keyring API cannot enumerate entries or say when one was set, so mcpbox
keeps an index of entry *names* and set times (never values) in its state dir.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mcpbox import paths
from mcpbox.errors import KeyringError, SecretError, SecretMissingError, UsageError
from mcpbox.profile.model import ENTRY_NAME_RE, SecretRef

SERVICE = "mcpbox"
MIN_CHARS = 8  # shorter values cannot be masked without mangling ordinary text
MAX_BYTES = 32 * 1024  # an environment string must stay far below the kernel's 128 KiB
# Backends that keep values encrypted or in an OS-guarded store. Anything else is refused.
SECURE_BACKENDS = frozenset(
    {
        "keyring.backends.SecretService.Keyring",
        "keyring.backends.libsecret.Keyring",
        "keyring.backends.kwallet.DBusKeyring",
        "keyring.backends.kwallet.DBusKeyringKWallet4",
        "keyring.backends.macOS.Keyring",
        "keyring.backends.Windows.WinVaultKeyring",
    }
)
GET_A_KEYRING = (
    "Use your desktop's keyring: on Linux run a Secret Service such as GNOME Keyring "
    "(headless: `dbus-run-session -- sh -c 'echo -n PASSWORD | gnome-keyring-daemon --unlock --components=secrets; "
    "exec $SHELL'`); macOS Keychain and Windows Credential Locker work as they are. "
    "Remove any PYTHON_KEYRING_BACKEND or keyringrc.cfg that selects a plaintext, null or fail backend."
)
T = TypeVar("T")


def backend_name(backend: Any) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


def _chained(backend: Any) -> list[Any]:
    """The backends a chainer consults in turn, highest priority first."""
    inner = getattr(backend, "backends", None)
    return list(inner) if backend_name(backend) == "keyring.backends.chainer.ChainerBackend" and inner else [backend]


def find_session_bus() -> None:
    """Point D-Bus clients at the user's session bus when the environment does not say where it is.

    MCP clients start servers with a minimal environment (the official SDK passes HOME, PATH,
    SHELL, TERM, USER and LOGNAME), so DBUS_SESSION_BUS_ADDRESS is usually gone, and the Secret
    Service library does not look further. systemd and dbus-broker put the bus at
    $XDG_RUNTIME_DIR/bus (/run/user/UID/bus): libdbus's own fallback, taken here only if that
    socket exists and belongs to this user.
    """
    if not sys.platform.startswith("linux") or os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    bus = Path(runtime) / "bus"
    try:
        info = bus.stat()
    except OSError:
        return
    if stat.S_ISSOCK(info.st_mode) and info.st_uid == os.getuid():
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={bus}"


def secure_backend() -> Any:
    """The keyring backend to use, or a :class:`KeyringError` that says how to get a real one."""
    find_session_bus()
    try:
        import keyring  # noqa: PLC0415 - ~50 ms with its backends; only secret commands and secret runs pay

        backend = keyring.get_keyring()
    except Exception as exc:  # third-party backends raise anything while loading
        raise KeyringError(f"the OS keyring could not be loaded ({type(exc).__name__}: {exc}).", GET_A_KEYRING) from exc
    chain = _chained(backend)
    # A chainer reads from whichever backend answers first, so it is never used as a whole:
    # only its best secure member is, and a plaintext file beside it is never read or written.
    for member in chain:
        if backend_name(member) in SECURE_BACKENDS:
            return member
    why = "; ".join(f"{backend_name(b)} {_weakness(backend_name(b))}" for b in chain)
    raise KeyringError(f"no secure OS keyring is available ({why}); mcpbox keeps no tokens there.", GET_A_KEYRING)


def _weakness(name: str) -> str:
    if name.startswith("keyring.backends.fail"):
        return "means no OS keyring was found"
    if name.startswith("keyring.backends.null"):
        return "discards every value"
    if "Plaintext" in name or "file" in name.lower():
        return "keeps values in a file that any process of yours can read"
    return "is not a keyring mcpbox knows to protect its values"


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except SecretError:
        raise
    except Exception as exc:  # keyring, secretstorage, jeepney and OS errors alike
        raise KeyringError(
            f"the OS keyring failed while {action} ({type(exc).__name__}: {exc or 'no detail'}).",
            "Check that the keyring is running and unlocked (on Linux: a Secret Service on the session D-Bus), "
            "then try again.",
        ) from exc


def check_entry_name(entry: str) -> str:
    if not ENTRY_NAME_RE.match(entry):
        raise UsageError(
            f"{entry!r} is not a valid secret name.",
            "Use letters, digits, '.', '_' and '-', starting with a letter or digit (at most 128).",
        )
    return entry


def check_value(entry: str, value: str) -> bytes:
    """The bytes a server would receive; refuses values that could not be injected or masked."""
    data = value.encode("utf-8", "surrogateescape")
    problem = ""
    if "\0" in value:
        problem = "contains a NUL byte, which no environment variable can hold"
    elif len(value.strip()) < MIN_CHARS:
        problem = f"is shorter than {MIN_CHARS} characters, too short to mask in logs and output"
    elif len(data) > MAX_BYTES:
        problem = f"is {len(data)} bytes, more than the {MAX_BYTES} an environment variable may carry here"
    if problem:
        raise SecretError(
            f"the value of secret {entry!r} {problem}.", f"Set a real token with `mcpbox secret set {entry}`."
        )
    return data


@dataclass(frozen=True)
class Resolved:
    """A secret ready for injection. ``repr`` never shows the value."""

    ref: SecretRef
    value: bytes

    def __repr__(self) -> str:
        return f"Resolved({self.ref.var} <- {self.ref.entry}, {len(self.value)} bytes)"


class SecretStore:
    """The keyring entries under service ``mcpbox``, and the index of when each was set."""

    def __init__(self, backend: Any | None = None, index: Path | None = None) -> None:
        self.backend = backend if backend is not None else secure_backend()
        self.index_path = index if index is not None else paths.state_dir() / "secrets.json"

    def _call(self, action: str, call: Callable[[], T]) -> T:
        with _translated(action):
            return call()

    def get(self, entry: str) -> str | None:
        value = self._call(f"reading {entry!r}", lambda: self.backend.get_password(SERVICE, entry))
        return value if isinstance(value, str) else None

    def set(self, entry: str, value: str) -> bool:
        """Store (or rotate) ``entry``; True if it replaced an earlier value."""
        check_entry_name(entry)
        check_value(entry, value)
        existed = self.get(entry) is not None
        self._call(f"storing {entry!r}", lambda: self.backend.set_password(SERVICE, entry, value))
        if self.get(entry) != value:  # a backend that accepts and drops values must not look like success
            raise KeyringError(f"the keyring accepted {entry!r} but does not return it.", GET_A_KEYRING)
        self._update_index(entry, time.time())
        return existed

    def get_own(self, entry: str) -> str | None:
        """One of mcpbox's own entries (names start with "_", which `secret set` refuses)."""
        assert entry.startswith("_")  # noqa: S101 - a user's entry must go through get()
        return self.get(entry)

    def set_own(self, entry: str, value: str) -> None:
        """Store one of mcpbox's own entries: not in the index, so `secret list` never offers it."""
        assert entry.startswith("_")  # noqa: S101 - a user's entry must go through set()
        self._call(f"storing {entry!r}", lambda: self.backend.set_password(SERVICE, entry, value))
        if self.get(entry) != value:
            raise KeyringError(f"the keyring accepted {entry!r} but does not return it.", GET_A_KEYRING)

    def delete(self, entry: str) -> bool:
        """Remove ``entry``; False if it was not there."""
        present = self.get(entry) is not None
        if present:
            self._call(f"deleting {entry!r}", lambda: self.backend.delete_password(SERVICE, entry))
        known = entry in self.set_times()
        self._update_index(entry, None)
        return present or known

    def set_times(self) -> dict[str, float]:
        """Entry name -> when mcpbox last set it (seconds since the epoch)."""
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # the index is advisory: an unreadable one only loses ages, never values
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            return {}
        return {
            name: float(info["set_at"])
            for name, info in entries.items()
            if isinstance(info, dict) and isinstance(info.get("set_at"), int | float)
        }

    def _update_index(self, entry: str, set_at: float | None) -> None:
        times = self.set_times()
        if set_at is None:
            times.pop(entry, None)
        else:
            times[entry] = set_at
        paths.ensure_private_dir(self.index_path.parent)
        body = json.dumps({"version": 1, "entries": {k: {"set_at": v} for k, v in sorted(times.items())}}, indent=1)
        tmp = self.index_path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body + "\n")
        tmp.replace(self.index_path)  # atomic: a crash leaves the old index or the new one

    def resolve(self, refs: Sequence[SecretRef]) -> list[Resolved]:
        """Every value ``refs`` name, or one error naming every missing entry and how to set it."""
        found: list[Resolved] = []
        missing: list[SecretRef] = []
        for ref in refs:
            value = self.get(ref.entry)
            if value is None:
                missing.append(ref)
            else:
                found.append(Resolved(ref, check_value(ref.entry, value)))
        if missing:
            names = ", ".join(f"{ref.entry!r} (for {ref.var})" for ref in missing)
            commands = "; ".join(f"`mcpbox secret set {ref.entry}`" for ref in missing)
            raise SecretMissingError(
                f"the OS keyring has no secret {names}, which this profile needs; no sandbox was started.",
                f"Store it with {commands} (the value is read from stdin or a hidden prompt), then restart the server.",
            )
        return found


@dataclass(frozen=True)
class Overdue:
    ref: SecretRef
    age_days: float | None  # None: not set through mcpbox, so its age is unknown

    def describe(self) -> str:
        limit = f"rotate_after is {self.ref.rotate_after_days}d"
        if self.age_days is None:
            return f"secret {self.ref.entry!r}: age unknown (not set with mcpbox), {limit}"
        return f"secret {self.ref.entry!r} was set {self.age_days:.0f} days ago, {limit}"


def overdue(refs: Sequence[SecretRef], set_times: dict[str, float], now: float | None = None) -> list[Overdue]:
    """The secrets in ``refs`` older than their ``rotate_after``."""
    now = time.time() if now is None else now
    late: list[Overdue] = []
    for ref in refs:
        if ref.rotate_after_days is None:
            continue
        set_at = set_times.get(ref.entry)
        if set_at is None:
            late.append(Overdue(ref, None))
        elif (age := (now - set_at) / 86400) > ref.rotate_after_days:
            late.append(Overdue(ref, age))
    return late
