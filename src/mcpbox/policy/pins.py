"""Pinned tool definitions: trust on first use, then every change waits for a person.

One JSON file per profile under ``$XDG_STATE_HOME/mcpbox/pins/``. It holds the
trusted definition of each tool (and the server's instructions), and the
changed, new or suspicious ones that `run` saw and withheld, so that
`mcpbox pins accept` can show the difference before trusting it. Several
sessions of one profile may run at once: every change is a locked
read-modify-write and an atomic replace, so no session's finding is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mcpbox import paths
from mcpbox.errors import PinError

FORMAT = 1
INSTRUCTIONS = "(instructions)"  # how listings name the server's instructions; never a key among tools
MAX_PIN_FILE = 64 * 1024 * 1024


def canonical(definition: object) -> bytes:
    return json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(definition: object) -> str:
    """The identity of a definition: everything the model reads, so ``_meta`` (plumbing that may
    legitimately vary per listing) is left out and nothing else is."""
    if isinstance(definition, dict):
        definition = {key: value for key, value in definition.items() if key != "_meta"}
    return hashlib.sha256(canonical(definition)).hexdigest()


@dataclass(frozen=True)
class Pin:
    digest: str
    definition: Any  # a tool object, or the instructions text
    at: float  # when it was pinned or seen


@dataclass(frozen=True)
class Pending(Pin):
    reason: str = "changed"  # changed | new | suspicious
    findings: tuple[str, ...] = ()


@dataclass(frozen=True)
class PinFile:
    profile: str
    tools: dict[str, Pin] = field(default_factory=dict)
    instructions: Pin | None = None
    pending: dict[str, Pending] = field(default_factory=dict)  # by tool name
    pending_instructions: Pending | None = None  # apart from tools: a tool may be called anything
    tools_pinned: bool = False  # a first complete listing was trusted: from now on, new means withheld

    def to_json(self) -> dict[str, Any]:
        def pin(p: Pin) -> dict[str, Any]:
            data: dict[str, Any] = {"sha256": p.digest, "definition": p.definition, "at": p.at}
            if isinstance(p, Pending):
                data.update(reason=p.reason, findings=list(p.findings))
            return data

        return {
            "format": FORMAT,
            "profile": self.profile,
            "tools_pinned": self.tools_pinned,
            "instructions": pin(self.instructions) if self.instructions else None,
            "tools": {name: pin(p) for name, p in sorted(self.tools.items())},
            "pending": {name: pin(p) for name, p in sorted(self.pending.items())},
            "pending_instructions": pin(self.pending_instructions) if self.pending_instructions else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> PinFile:
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("profile"), str):
            raise ValueError("not a mcpbox pin file of format 1")

        def pin(raw: Any, pending: bool = False) -> Pin:
            if not isinstance(raw, dict) or not isinstance(raw.get("sha256"), str):
                raise ValueError("a pin without sha256")  # noqa: TRY004 - as above
            if digest(raw.get("definition")) != raw["sha256"]:
                raise ValueError("a pinned definition does not match its sha256")
            at = float(raw.get("at", 0))
            if pending:
                findings = tuple(str(f) for f in raw.get("findings", ()))
                return Pending(raw["sha256"], raw.get("definition"), at, str(raw.get("reason", "changed")), findings)
            return Pin(raw["sha256"], raw.get("definition"), at)

        tools, pending = data.get("tools", {}), data.get("pending", {})
        if not isinstance(tools, dict) or not isinstance(pending, dict):
            raise ValueError("tools and pending must be maps")  # noqa: TRY004 - as above
        instructions, pending_instructions = data.get("instructions"), data.get("pending_instructions")
        return cls(
            profile=data["profile"],
            tools={str(name): pin(raw) for name, raw in tools.items()},
            instructions=pin(instructions) if instructions is not None else None,
            pending={str(name): pin(raw, pending=True) for name, raw in pending.items()},  # type: ignore[misc]
            tools_pinned=bool(data.get("tools_pinned")),
            pending_instructions=pin(pending_instructions, pending=True)  # type: ignore[arg-type]
            if pending_instructions is not None
            else None,
        )


class PinStore:
    """The pin file of one profile. Reads are cheap when nothing changed (one stat)."""

    def __init__(self, profile: str, directory: Path | None = None) -> None:
        self.profile = profile
        self.directory = directory or paths.pins_dir()
        self.path = self.directory / f"{profile}.json"
        self._cached: tuple[tuple[int, int, int], PinFile | None] | None = None

    def _stamp(self) -> tuple[int, int, int]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return (0, 0, 0)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load(self) -> PinFile | None:
        """The pin file, or ``None`` before the profile's first use. A file that cannot be
        trusted raises: pinning must never quietly start over as if nothing was pinned."""
        stamp = self._stamp()
        if self._cached is not None and self._cached[0] == stamp:
            return self._cached[1]
        loaded = self._read()
        self._cached = (stamp, loaded)
        return loaded

    def _read(self) -> PinFile | None:
        try:
            with self.path.open("rb") as handle:
                data = handle.read(MAX_PIN_FILE + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._broken(exc.strerror or str(exc)) from exc
        try:
            if len(data) > MAX_PIN_FILE:
                raise ValueError("larger than 64 MiB")  # noqa: TRY301 - reported like any unreadable file
            pins = PinFile.from_json(json.loads(data))
        except (ValueError, TypeError) as exc:
            raise self._broken(str(exc)) from exc
        if pins.profile != self.profile:
            raise self._broken(f"it belongs to profile {pins.profile!r}")
        return pins

    def _broken(self, why: str) -> PinError:
        return PinError(
            f"the pin file {self.path} cannot be trusted ({why}); every tool of profile {self.profile} is withheld.",
            f"Restore it, or run `mcpbox pins reset {self.profile}` to pin the tools again on the next run.",
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        paths.ensure_private_dir(self.directory)
        fd = os.open(self.directory / f".{self.profile}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update(self, change: Callable[[PinFile], PinFile | None]) -> PinFile:
        """Apply ``change`` to the current file under the lock; ``None`` from it means no write."""
        with self._locked():
            self._cached = None
            current = self.load() or PinFile(profile=self.profile)
            changed = change(current)
            if changed is None:
                return current
            tmp = self.directory / f".{self.profile}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(json.dumps(changed.to_json(), indent=1, ensure_ascii=False).encode())
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self.path)
            self._cached = None
            return changed

    def accept(
        self, names: list[str] | None = None, *, instructions: bool = False
    ) -> list[tuple[str, Pin | None, Pending]]:
        """Trust pending definitions: all of them when ``names`` is None, else the tools named (and
        the instructions if asked). Returns (name, old, new) of each; INSTRUCTIONS names the instructions."""
        accepted: list[tuple[str, Pin | None, Pending]] = []

        def change(pins: PinFile) -> PinFile | None:
            wanted = list(pins.pending) if names is None else names
            take_instructions = pins.pending_instructions is not None and (names is None or instructions)
            if instructions and pins.pending_instructions is None:
                raise PinError(
                    f"profile {self.profile} has no pending change of the server's instructions.",
                    f"Run `mcpbox pins list {self.profile}` to see what is pending.",
                )
            unknown = [name for name in wanted if name not in pins.pending]
            if unknown:
                raise PinError(
                    f"profile {self.profile} has no pending change for {', '.join(map(repr, unknown))}.",
                    f"Run `mcpbox pins list {self.profile}` to see what is pending.",
                )
            tools, pending = dict(pins.tools), dict(pins.pending)
            trusted = pins.instructions
            now = time.time()
            for name in wanted:
                new = pending.pop(name)
                accepted.append((name, tools.get(name), new))
                tools[name] = Pin(new.digest, new.definition, now)
            if take_instructions and pins.pending_instructions is not None:
                new = pins.pending_instructions
                accepted.append((INSTRUCTIONS, trusted, new))
                trusted = Pin(new.digest, new.definition, now)
            if not wanted and not take_instructions:
                return None
            return replace(
                pins,
                tools=tools,
                pending=pending,
                instructions=trusted,
                pending_instructions=None if take_instructions else pins.pending_instructions,
            )

        self.update(change)
        return accepted

    def reset(self) -> bool:
        """Forget everything pinned for the profile; the next run trusts on first use again."""
        with self._locked():
            self._cached = None
            try:
                self.path.unlink()
            except FileNotFoundError:
                return False
            return True


def all_stores() -> list[PinStore]:
    directory = paths.pins_dir()
    if not directory.is_dir():
        return []
    return [PinStore(path.stem, directory) for path in sorted(directory.glob("*.json"))]
