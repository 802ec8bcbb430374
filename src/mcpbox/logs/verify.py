"""Checking a session log's hash chain: which record, if any, is not as it was written.

Each record carries ``prev``, the SHA-256 of the exact bytes of the record
before it (the first one carries :data:`GENESIS`), and ``seq`` counts from 1.
Changing a byte, removing, inserting or moving a record breaks the chain at
the record after the change, and that is the record named. What the chain
alone cannot show: a cut-off tail, or a log rewritten from some record on with
fresh hashes, by someone who can write the file. Seals close that gap: records
signed with the Ed25519 key in the OS keyring (:mod:`mcpbox.logs.signing`),
every few seconds and at the end, so a cut-off tail shows as a log that ends
without its final seal, and a rewrite needs the private key.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from mcpbox import paths
from mcpbox.errors import SessionNotFoundError
from mcpbox.logs.signing import Verifier, seal_message
from mcpbox.logs.timeline import process_alive
from mcpbox.logs.writer import GENESIS

MAX_LINE = 64 * 1024 * 1024
STAMP = re.compile(rb'\{"seq":\d+,"t":([0-9]+\.[0-9]+),')  # a record's time exactly as the writer wrote it


# A log's standing, from best to worst. Only "sealed" and "open" mean every record so far is vouched for.
SEALED = "sealed"  # intact, every seal good, ends with the final seal
OPEN = "open"  # intact, and its session is still running: the tail since the last seal is being written
UNSEALED = "unsealed"  # intact, but it ends without a final seal: killed, crashed, or its tail cut off
UNSIGNED = "unsigned"  # intact, but signing was off or no secure keyring was there (the log says which)
UNCHECKED = "unchecked"  # intact, but sealed by a key not at hand: the seals could not be checked
ALTERED = "altered"  # the chain breaks or a seal is forged
GOOD = frozenset({SEALED, OPEN})


@dataclass(frozen=True)
class Report:
    path: Path
    records: int
    problem: str | None = None  # None: the chain holds
    bad_seq: int | None = None  # the record at which it breaks (the line number when seq is unreadable)
    ended: bool = False  # the session's own "end" record is there
    status: str = UNSEALED
    detail: str = ""  # what the status means for this log, in words
    signed_through: int | None = None  # the last record a good seal covers
    signed_at: float | None = None  # when that seal was made
    key: str | None = None  # the key id of the seals

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, object]:
        return {
            "session": self.path.stem,
            "path": str(self.path),
            "records": self.records,
            "ok": self.ok,
            "status": self.status,
            "detail": self.detail,
            "problem": self.problem,
            "bad_record": self.bad_seq,
            "ended": self.ended,
            "signed_through": self.signed_through,
            "signed_at": self.signed_at,
            "key": self.key,
        }


@dataclass
class _Walk:
    """What the walk has seen so far."""

    path: Path
    verifier: Verifier | None
    session: str
    count: int = 0
    ended: bool = False
    final: bool = False  # the last record read is the final seal
    after_final: bool = False
    signed_through: int | None = None
    signed_at: float | None = None
    key: str | None = None
    unknown_key: str | None = None
    unsigned: str | None = None  # the reason the log gives for carrying no seals

    def broken(self, problem: str, seq: int) -> Report:
        return Report(
            self.path, self.count, problem, seq, self.ended, ALTERED, problem, self.signed_through, self.signed_at
        )

    def seal(self, record: dict[str, object], line: bytes, number: int, prev: str) -> Report | None:
        key, sig, stamp = record.get("key"), record.get("sig"), STAMP.match(line)
        if not isinstance(key, str) or not isinstance(sig, str) or stamp is None:
            return self.broken(f"record {number} is a seal without a key, signature or time", number)
        final = record.get("final") is True
        message = seal_message(self.session, number, prev, stamp.group(1).decode(), final=final)
        good = None if self.verifier is None else self.verifier.check(key, sig, message)
        if good is False:
            return self.broken(
                f"record {number} is a seal whose signature does not match: the records before it were "
                "changed and re-hashed, or the seal was forged",
                number,
            )
        if good is None:
            self.unknown_key = key
        else:
            self.signed_through, self.key = number, key
            t = record.get("t")
            self.signed_at = float(t) if isinstance(t, int | float) else None
        self.final = final
        return None


def verify_file(path: Path, verifier: Verifier | None = None) -> Report:
    """Walk the chain of one log file and check its seals; the first break is reported, with its record.

    Without a ``verifier`` (no key at hand) only the chain is checked and a sealed log is
    reported as ``unchecked``."""
    prev = GENESIS
    walk = _Walk(path, verifier, path.stem)
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                return walk.broken(f"line {number} is cut off mid-record (the file was truncated)", number)
            try:
                record = json.loads(line)
            except ValueError:
                return walk.broken(f"line {number} is not a JSON record (it was edited)", number)
            seq = record.get("seq") if isinstance(record, dict) else None
            if seq != number:
                what = f"has seq {seq!r} where {number} belongs" if seq is not None else "has no seq"
                return walk.broken(f"line {number} {what}: records were removed, added or moved", number)
            if record.get("prev") != prev:
                return walk.broken(
                    f"record {number} does not follow the record before it: record {number - 1} was changed, "
                    "or records around it were removed, added or moved",
                    number,
                )
            if walk.final:
                return walk.broken(f"record {number} comes after the session's final seal: it was added later", number)
            event = record.get("event") if record.get("dir") == "event" else None
            if number == 1 and event == "start" and isinstance(record.get("session"), str):
                walk.session = record["session"]  # the id the seals name, whatever the file is called now
            if event == "seal" and (broken := walk.seal(record, line, number, prev)) is not None:
                return broken
            if event == "unsigned" and walk.unsigned is None:
                walk.unsigned = str(record.get("reason", "no reason given"))
            walk.ended = walk.ended or event == "end"
            prev = hashlib.sha256(line).hexdigest()
            walk.count = number
    return _standing(walk)


def _standing(walk: _Walk) -> Report:
    """The status of a log whose chain holds."""
    through = walk.signed_through
    if walk.unknown_key is not None and through is None:
        status = UNCHECKED
        detail = (
            f"sealed by key {walk.unknown_key}, which is not at hand: pass its public key with --pubkey FILE"
            if walk.verifier is not None
            else "seals not checked: no log key at hand (pass --pubkey FILE, or run where the OS keyring has it)"
        )
    elif walk.final and walk.unknown_key is None:
        status, detail = SEALED, f"sealed at its end; {walk.count} records, chain and every seal good"
    elif walk.unsigned is not None and through is None:
        status, detail = UNSIGNED, f"not signed: {walk.unsigned}"
    else:
        tail = walk.count - (through or 0)
        status = OPEN if running(walk.path) else UNSEALED
        what = "still being written" if status == OPEN else "ended without seal"
        if through is None:
            detail = f"{what}: no record is signed (the key is looked up a second after the sandbox starts)"
        else:
            detail = f"{what}: signed through record {through}"
            detail += f"; the {tail} record(s) after it are not signed" if tail else ""
        if walk.unknown_key is not None:
            detail += f"; some seals are by key {walk.unknown_key}, not at hand"
    return Report(walk.path, walk.count, None, None, walk.ended, status, detail, through, walk.signed_at, walk.key)


def running(path: Path) -> bool:
    """Is the session that writes ``path`` still running? Its start record names the process."""
    try:
        with path.open("rb") as handle:
            first = json.loads(handle.readline())
        pid, started = int(first["pid"]), float(first["t"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return process_alive(pid, started)


def find_log(session: str) -> Path:
    """A session id, a unique prefix of one, or a path to a log file."""
    candidate = Path(session)
    if candidate.suffix == ".jsonl" and candidate.is_file():
        return candidate
    directory = paths.sessions_dir()
    matches = sorted(directory.glob(f"{glob.escape(session)}*.jsonl")) if directory.is_dir() and session else []
    if len(matches) == 1:
        return matches[0]
    why = "matches several sessions" if matches else "matches no session log"
    raise SessionNotFoundError(
        f"{session!r} {why} in {directory}.", "Give more of the session id; `ls` that folder to see them."
    )


def all_logs() -> list[Path]:
    directory = paths.sessions_dir()
    return sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
