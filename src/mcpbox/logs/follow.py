"""Reading a session log while its session writes it: `mcpbox logs tail -f`.

The writer appends each record with one ``write(2)``, but a reader can still catch a line
half written (a large message, a full disk's partial writes): a line is only taken once its
newline is there. Polling, not inotify: it works the same on every system and file system,
and a log gains at most a few records a second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mcpbox.logs.timeline import process_alive

POLL = 0.2  # seconds between looks at a quiet log
LIVENESS_EVERY = 2.0  # seconds between checks that a quiet log's writer is still alive
CLOSING_GRACE = 1.0  # seconds to wait after the end record for what closes a log (its final seal)

ENDED = "end"  # the session's end record arrived
GONE = "gone"  # the process writing the log died without writing its end record


class LogReader:
    """The whole records appended to a log since the last call; a partial last line waits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # b"" when the data ended with a newline
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # not a record: `logs verify` is what reports it
            if isinstance(record, dict):
                records.append(record)
        return records


def _is_end(record: dict[str, Any]) -> bool:
    return record.get("dir") == "event" and record.get("event") == "end"


def _is_final_seal(record: dict[str, Any]) -> bool:
    return record.get("dir") == "event" and record.get("event") == "seal" and record.get("final") is True


class Follow:
    """The last ``last`` records of a log, then each new one as it is appended, until the session ends.

    Iterate it for records; afterwards ``outcome`` says why it stopped (:data:`ENDED` or :data:`GONE`).
    A log that has already ended yields its last records and stops.
    """

    def __init__(
        self,
        path: Path,
        *,
        last: int = 10,
        poll: float = POLL,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = LogReader(path)
        self.last = last
        self.poll = poll
        self.sleep = sleep
        self.clock = clock
        self.outcome: str | None = None
        self._pid: int | None = None
        self._started: float | None = None
        self._unsigned = False  # the log says it carries no seals: no final one will come

    def __iter__(self) -> Iterator[dict[str, Any]]:
        backlog = self.reader.read()
        for record in backlog:
            self._note_start(record)
        yield from backlog[-self.last :] if self.last > 0 else []
        if any(_is_end(record) for record in backlog):
            yield from self._closing(final_seen=any(_is_final_seal(r) for r in backlog))
            return
        checked = self.clock()
        while True:
            self.sleep(self.poll)
            fresh = self.reader.read()
            for index, record in enumerate(fresh):
                self._note_start(record)
                yield record
                if _is_end(record):
                    rest = fresh[index + 1 :]
                    yield from rest
                    for late in rest:
                        self._note_start(late)
                    yield from self._closing(final_seen=any(_is_final_seal(r) for r in rest))
                    return
            if fresh:
                checked = self.clock()
            elif self.clock() - checked >= LIVENESS_EVERY:
                checked = self.clock()
                if self._pid is not None and not process_alive(self._pid, self._started):
                    yield from self.reader.read()  # whatever it wrote just before it died
                    self.outcome = GONE
                    return

    def _closing(self, *, final_seen: bool) -> Iterator[dict[str, Any]]:
        """After the end record, the records that close a log (the final seal) come within moments:
        from a writer still alive, of a log that is signed."""
        self.outcome = ENDED
        if self._unsigned or self._pid is None or not process_alive(self._pid, self._started):
            return
        deadline = self.clock() + CLOSING_GRACE
        while not final_seen and self.clock() < deadline:
            self.sleep(self.poll)
            fresh = self.reader.read()
            yield from fresh
            final_seen = any(_is_final_seal(record) for record in fresh)

    def _note_start(self, record: dict[str, Any]) -> None:
        self._unsigned = self._unsigned or (record.get("dir") == "event" and record.get("event") == "unsigned")
        if self._pid is None and record.get("dir") == "event" and record.get("event") == "start":
            pid, t = record.get("pid"), record.get("t")
            self._pid = pid if isinstance(pid, int) else None
            self._started = float(t) if isinstance(t, int | float) else None
