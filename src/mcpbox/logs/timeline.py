"""Reading session logs back: records, request→response pairs ("calls") and one summary per session.

The one place that knows how the writer's records fit together, so that the viewer commands,
the HTML report and the exports all tell the same story. Reading never needs the chain to
hold: a log that `verify` rejects can still be shown (verify is what says whether to trust it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The log's words for "this message did not go where it was sent": the policy's refusals
# (block, drop, reply) and the relay's own (rule "relay").
BLOCKED = frozenset({"block", "drop", "reply"})
REQUEST_SIDE = {"c2s": "s2c", "s2c": "c2s"}  # a request's answer comes back the other way
# A message's second record: what went on after a rewrite ("sent") or a person's approval ("released").
SECOND_RECORD = frozenset({"sent", "released"})


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Every whole record of a log, in order. A last line cut off mid-write (a crash, a live
    writer) and lines that are not JSON objects are skipped: `verify` is what reports them."""
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                return
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


@dataclass
class Call:
    """One JSON-RPC request and what became of it."""

    seq: int  # the request's record
    t: float
    direction: str  # "c2s": the client asked the server; "s2c": the server asked the client
    method: str
    id: Any
    verdict: str  # the policy's verdict on the request (forward, block, ask, hold, rewrite...)
    rule: str | None = None
    reason: str | None = None
    size: int = 0
    tool: str | None = None  # params.name of tools/call, prompts/get; uri of resources/read
    request: dict[str, Any] | None = None  # the message, when the log holds payloads
    response_seq: int | None = None
    response_t: float | None = None
    response_verdict: str | None = None  # "mcpbox": mcpbox answered in the server's place
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # the JSON-RPC error object of the answer, if it was one
    records: list[int] = field(default_factory=list)  # every record that belongs to this call

    @property
    def duration_ms(self) -> float | None:
        return None if self.response_t is None else round((self.response_t - self.t) * 1000, 3)

    @property
    def blocked(self) -> bool:
        return self.verdict in BLOCKED

    @property
    def failed(self) -> bool:
        """Answered with a JSON-RPC error, or a tool result flagged ``isError``."""
        if self.error is not None:
            return True
        result = (self.response or {}).get("result")
        return isinstance(result, dict) and result.get("isError") is True

    @property
    def label(self) -> str:
        return f"{self.method} {self.tool}" if self.tool else self.method

    def as_dict(self) -> dict[str, Any]:
        """The call without its payloads (those are in its records)."""
        return {
            "seq": self.seq,
            "t": self.t,
            "direction": self.direction,
            "method": self.method,
            "tool": self.tool,
            "id": self.id,
            "verdict": self.verdict,
            "rule": self.rule,
            "reason": self.reason,
            "size": self.size,
            "blocked": self.blocked,
            "answered": self.response_seq is not None,
            "response_seq": self.response_seq,
            "response_verdict": self.response_verdict,
            "duration_ms": self.duration_ms,
            "failed": self.failed,
            "error": self.error,
            "records": list(self.records),
        }


def _subject(method: str, msg: dict[str, Any] | None) -> str | None:
    params = msg.get("params") if isinstance(msg, dict) else None
    if not isinstance(params, dict):
        return None
    value = params.get("uri") if method.startswith("resources/") else params.get("name")
    return value if isinstance(value, str) else None


class CallTracker:
    """Pairs requests with their answers one record at a time: what :func:`calls` does over a
    whole log, and what a live view (``mcpbox logs tail -f``) does as records arrive."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._open: dict[tuple[str, str], Call] = {}  # (request direction, id as JSON) -> call
        # Answered calls, for an answer's second record ("sent" after a rewrite, "released" after
        # a hold): it belongs to the same call. Replaced when the id is used again.
        self._answered: dict[tuple[str, str], Call] = {}

    def feed(self, record: dict[str, Any]) -> Call | None:
        """Take the next record; the call it belongs to, if it is part of one."""
        direction, kind = record.get("dir"), record.get("kind")
        if direction not in REQUEST_SIDE or "id" not in record:
            return None
        key_id = json.dumps(record["id"])
        msg = record.get("msg") if isinstance(record.get("msg"), dict) else None
        if kind == "request":
            key = (direction, key_id)
            current = self._open.get(key)
            if current is not None:
                current.records.append(record.get("seq", 0))
                return current
            method = str(record.get("method", "?"))
            call = Call(
                seq=record.get("seq", 0),
                t=float(record.get("t", 0.0)),
                direction=direction,
                method=method,
                id=record["id"],
                verdict=str(record.get("verdict", "forward")),
                rule=record.get("rule"),
                reason=record.get("reason"),
                size=int(record.get("size", 0)),
                tool=_subject(method, msg),
                request=msg,
                records=[record.get("seq", 0)],
            )
            self._open[key] = call
            self._answered.pop(key, None)
            self.calls.append(call)
            return call
        if kind != "response":
            return None
        key = (REQUEST_SIDE[direction], key_id)
        answered = self._open.pop(key, None)
        if answered is None:
            again = self._answered.get(key)
            if again is not None and record.get("verdict") in SECOND_RECORD:
                again.records.append(record.get("seq", 0))
            return again if again is not None and record.get("verdict") in SECOND_RECORD else None
        self._answered[key] = answered
        answered.response_seq = record.get("seq")
        answered.response_t = float(record.get("t", 0.0))
        answered.response_verdict = record.get("verdict")
        answered.response = msg
        error = msg.get("error") if msg is not None else None
        answered.error = error if isinstance(error, dict) else None
        if msg is None and record.get("verdict") == "mcpbox" and answered.blocked:
            answered.error = {"message": answered.reason or "refused by mcpbox"}
        answered.records.append(record.get("seq", 0))
        return answered


def calls(records: Iterable[dict[str, Any]]) -> list[Call]:
    """Pair each request with its answer, in the order the requests were made.

    A request can have several records on its way (judged, held, released, rewritten and
    sent): the first one names the verdict, the later ones join its ``records``.
    """
    tracker = CallTracker()
    for record in records:
        tracker.feed(record)
    return tracker.calls


@dataclass
class SessionSummary:
    session: str
    path: Path
    profile: str | None = None
    image: str | None = None
    start: float | None = None
    end: float | None = None  # time of the last record
    ended: bool = False  # the session's own "end" record is there
    exit_code: int | None = None
    end_reason: str | None = None
    messages: int = 0  # JSON-RPC messages, both ways
    tool_calls: int = 0
    blocked: int = 0  # messages the policy or the relay did not let through
    records: int = 0
    pid: int | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.start is None or self.end is None else round(self.end - self.start, 3)

    @property
    def running(self) -> bool:
        """No end record yet, and the mcpbox process that wrote the start record is alive."""
        return not self.ended and self.pid is not None and process_alive(self.pid, self.start)

    @property
    def status(self) -> str:
        """``ended`` (see ``exit_code``), ``running``, or ``no end record`` (it died, or the log was cut)."""
        return "ended" if self.ended else "running" if self.running else "no end record"

    def as_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "path": str(self.path),
            "profile": self.profile,
            "image": self.image,
            "start": self.start,
            "end": self.end,
            "duration_s": self.duration_s,
            "ended": self.ended,
            "exit_code": self.exit_code,
            "end_reason": self.end_reason,
            "messages": self.messages,
            "tool_calls": self.tool_calls,
            "blocked": self.blocked,
            "records": self.records,
        }


def summarize(path: Path, records: Iterable[dict[str, Any]] | None = None) -> SessionSummary:
    """One pass over a log: who, when, how much, how it ended."""
    summary = SessionSummary(session=path.stem, path=path)
    for record in read_records(path) if records is None else records:
        summary.records += 1
        t = record.get("t")
        if isinstance(t, int | float):
            summary.start = t if summary.start is None else summary.start
            summary.end = t
        direction = record.get("dir")
        if direction == "event":
            event = record.get("event")
            if event == "start":
                summary.session = str(record.get("session", summary.session))
                summary.profile = record.get("profile")
                summary.image = record.get("image")
                summary.pid = record.get("pid") if isinstance(record.get("pid"), int) else None
            elif event == "end":
                summary.ended = True
                summary.exit_code = record.get("exit_code")
                summary.end_reason = record.get("reason")
            continue
        if direction not in REQUEST_SIDE or record.get("kind") in (None, "text"):
            continue
        # "sent" and "released" are a message's second record (after a rewrite or an approval), not a new one.
        if record.get("verdict") in SECOND_RECORD:
            continue
        summary.messages += 1
        if record.get("verdict") in BLOCKED:
            summary.blocked += 1
        if direction == "c2s" and record.get("kind") == "request" and record.get("method") == "tools/call":
            summary.tool_calls += 1
    return summary


def process_alive(pid: int, started: float | None = None) -> bool:
    """Is ``pid`` a live process, and not a later one that reused the number after ``started``?"""
    import psutil  # noqa: PLC0415 - only the questions about live sessions need it

    try:
        created = psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    # A second of slack: create_time is derived from boot time and clock ticks, not exact.
    return started is None or created <= started + 1.0
