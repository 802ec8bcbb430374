"""Checking a session log's hash chain: which record, if any, is not as it was written.

Each record carries ``prev``, the SHA-256 of the exact bytes of the record
before it (the first one carries :data:`GENESIS`), and ``seq`` counts from 1.
Changing a byte, removing, inserting or moving a record breaks the chain at
the record after the change, and that is the record named. What the chain
alone cannot show: a cut-off tail, or a log rewritten from some record on with
fresh hashes, by someone who can write the file. Signing the chain head
(issue #6) is what closes that gap.
"""

from __future__ import annotations

import glob
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from mcpbox import paths
from mcpbox.errors import SessionNotFoundError
from mcpbox.logs.writer import GENESIS

MAX_LINE = 64 * 1024 * 1024


@dataclass(frozen=True)
class Report:
    path: Path
    records: int
    problem: str | None = None  # None: the chain holds
    bad_seq: int | None = None  # the record at which it breaks (the line number when seq is unreadable)
    ended: bool = False  # the session's own "end" record is there

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, object]:
        return {
            "session": self.path.stem,
            "path": str(self.path),
            "records": self.records,
            "ok": self.ok,
            "problem": self.problem,
            "bad_record": self.bad_seq,
            "ended": self.ended,
        }


def verify_file(path: Path) -> Report:
    """Walk the chain of one log file; the first break is reported, with the record it is at."""
    prev, count, ended = GENESIS, 0, False
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                return Report(path, count, f"line {number} is cut off mid-record (the file was truncated)", number)
            try:
                record = json.loads(line)
            except ValueError:
                return Report(path, count, f"line {number} is not a JSON record (it was edited)", number)
            seq = record.get("seq") if isinstance(record, dict) else None
            if seq != number:
                what = f"has seq {seq!r} where {number} belongs" if seq is not None else "has no seq"
                return Report(path, count, f"line {number} {what}: records were removed, added or moved", number)
            if record.get("prev") != prev:
                return Report(
                    path,
                    count,
                    f"record {number} does not follow the record before it: record {number - 1} was changed, "
                    "or records around it were removed, added or moved",
                    number,
                )
            prev = hashlib.sha256(line).hexdigest()
            count = number
            ended = ended or (record.get("dir") == "event" and record.get("event") == "end")
    return Report(path, count, ended=ended)


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
