"""What the `mcpbox logs` reading commands show: sessions, timelines, searches and statistics.

Everything here works on :mod:`mcpbox.logs.timeline`'s records and calls and returns plain
values; the CLI only renders them. Text that came from a server or a client (tool names,
reasons, stderr, payloads) is untrusted: it leaves this module through :func:`cell` or
:func:`payload_text`, which write invisible and control characters as escapes.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from mcpbox._text import visible
from mcpbox.errors import SessionNotFoundError, UsageError
from mcpbox.logs.timeline import BLOCKED, Call, CallTracker, SessionSummary, calls, read_records, summarize

DIRECTIONS = {"c2s": "client→server", "s2c": "server→client", "event": "event", "stderr": "stderr"}
CHAIN_FIELDS = frozenset({"seq", "t", "prev", "dir", "event"})  # an event's other fields are its details
WHEN_FORMS = "an ISO date or time (2026-11-25, 2026-11-25T09:00, optionally with a zone) or an age (30m, 2h, 7d, 2w)"
_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# A file's mtime comes from the kernel's coarse clock, a tick or so behind time.time(): a log
# is only skipped for --since when it was last written well before.
MTIME_SLACK = 1.0
CELL_WIDTH = 200  # a table cell from a log is cut here: `show --full` and `--json` have all of it


# ---- reading the command line -------------------------------------------------


def parse_when(value: str, *, option: str = "--since", end_of_day: bool = False, now: float | None = None) -> float:
    """A moment as Unix time: an ISO date or time (local unless it names a zone), or an age before now.

    With ``end_of_day`` a bare date means the end of that day, so that ``--until 2026-11-25``
    includes the 25th.
    """
    text = value.strip()
    age = _AGE.fullmatch(text.lower())
    if age:
        return (time.time() if now is None else now) - float(age[1]) * _UNITS[age[2]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {value!r} is neither a date/time nor an age.", f"Give {WHEN_FORMS}.") from None
    if end_of_day and "T" not in text and " " not in text and len(text) <= 10:
        moment += timedelta(days=1)
    # A naive time is the person's local time, which is what timestamp() assumes.
    return moment.timestamp()


# ---- sessions ------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """One session log as `logs list` shows it."""

    summary: SessionSummary
    running: bool

    @property
    def status(self) -> str:
        return "ended" if self.summary.ended else "running" if self.running else "no end record"

    @property
    def exit_text(self) -> str:
        """The EXIT column: the exit code, ``running``, or ``no end record``."""
        if self.summary.ended:
            return "-" if self.summary.exit_code is None else str(self.summary.exit_code)
        return self.status

    @property
    def duration_s(self) -> float | None:
        """Start to end; for a running session, start to now."""
        if self.running and self.summary.start is not None:
            return round(time.time() - self.summary.start, 3)
        return self.summary.duration_s

    def as_dict(self) -> dict[str, Any]:
        return {**self.summary.as_dict(), "duration_s": self.duration_s, "status": self.status}


def load_session(path: Path, records: Iterable[dict[str, Any]] | None = None) -> Session:
    summary = summarize(path, records)
    return Session(summary, summary.running)


def sessions(logs: Iterable[Path], *, profile: str | None = None, since: float | None = None) -> list[Session]:
    """The sessions of ``profile`` started at or after ``since``, oldest first (the newest is last,
    next to the prompt, as in a shell's history)."""
    found: list[Session] = []
    for path in logs:
        if since is not None and _mtime(path) < since - MTIME_SLACK:
            continue  # last written before `since`: it cannot have started after it
        session = load_session(path)
        summary = session.summary
        if profile is not None and summary.profile != profile:
            continue
        if since is not None and (summary.start is None or summary.start < since):
            continue
        found.append(session)
    return sorted(found, key=lambda s: (s.summary.start or 0.0, s.summary.session))


def newest_log(logs: Iterable[Path]) -> Path:
    """The session that started last (by its first record, not the file's mtime: a long session
    still being written is not newer than one started after it)."""
    candidates = list(logs)
    if not candidates:
        raise SessionNotFoundError("there are no session logs yet.", "Start a session with `mcpbox run PROFILE`.")
    return max(candidates, key=lambda path: (_first_time(path), path.name))


def _first_time(path: Path) -> float:
    try:
        with path.open("rb") as handle:
            first = json.loads(handle.readline())
        return float(first["t"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# ---- one line per record -------------------------------------------------------


def cell(value: Any, width: int = CELL_WIDTH) -> str:
    """Untrusted text as one inert line: invisible characters and line breaks as escapes, cut at ``width``."""
    text = visible(str(value)).replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def payload_text(record: dict[str, Any]) -> str | None:
    """A record's payload for `show --full`: the message pretty-printed, or the text line; inert."""
    if isinstance(record.get("msg"), dict | list):
        # ensure_ascii=False keeps people's own languages readable; visible() still escapes what hides.
        return visible(json.dumps(record["msg"], indent=2, ensure_ascii=False))
    if isinstance(record.get("text"), str):
        return visible(record["text"])
    return None


@dataclass(frozen=True)
class Row:
    """One record of a timeline, in words."""

    seq: int
    t: float | None
    direction: str  # client→server, server→client, event, stderr
    what: str  # method and tool, a response's request, an event's name, a text line
    duration_ms: float | None  # on an answer's first record: how long after its request it came
    verdict: str
    detail: str  # rule and reason of a verdict other than forward; an event's fields
    size: int | None
    record: dict[str, Any] = field(repr=False)

    @property
    def tone(self) -> str | None:
        """How the verdict should look: ``bad`` (refused), ``warn`` (changed or held), or plain."""
        if self.verdict in BLOCKED:
            return "bad"
        if self.verdict in ("rewrite", "sent", "hold", "ask", "released", "mcpbox"):
            return "warn"
        return None

    def cells(self) -> list[str]:
        """The columns of :data:`ROW_HEADERS`."""
        return [
            clock(self.t),
            str(self.seq),
            self.direction,
            self.what,
            "" if self.duration_ms is None else f"{self.duration_ms:.1f}",
            "" if self.size is None else str(self.size),
            self.verdict,
            self.detail,
        ]


ROW_HEADERS = ["TIME", "SEQ", "DIRECTION", "WHAT", "MS", "SIZE", "VERDICT", "DETAIL"]
ROW_WIDTHS = [12, 4, 13, 36, 8, 6, 8]  # for rows printed one by one (`tail`); the detail runs on


class Timeline:
    """Turns records into rows one at a time, so a live log (`tail -f`) reads like a finished one."""

    def __init__(self) -> None:
        self.tracker = CallTracker()

    def row(self, record: dict[str, Any]) -> Row:
        return self.feed(record)[0]

    def feed(self, record: dict[str, Any]) -> tuple[Row, Call | None]:
        """The record's row, and the call it is part of (if any)."""
        call = self.tracker.feed(record)
        direction = str(record.get("dir", "?"))
        verdict = str(record.get("verdict", ""))
        size, t, seq = record.get("size"), record.get("t"), record.get("seq")
        size = size if isinstance(size, int) else None
        t = float(t) if isinstance(t, int | float) else None
        seq = seq if isinstance(seq, int) else 0
        detail = _verdict_detail(record)
        duration = None
        if direction == "event":
            what = cell(record.get("event", "?"), 40)
            detail = _event_detail(record)
        elif record.get("kind") == "text" or direction == "stderr":
            what = cell(record.get("text", "(not logged)"))
        elif record.get("kind") == "response":
            what, duration = _response_what(record, call)
        elif record.get("kind") == "batch":
            what = "batch"
        else:
            what = cell(call.label if call is not None else record.get("method", "?"))
        shown = DIRECTIONS.get(direction, cell(direction))
        return Row(seq, t, shown, what, duration, cell(verdict, 40), detail, size, record), call

    def rows(self, records: Iterable[dict[str, Any]]) -> list[Row]:
        return [self.row(record) for record in records]


def _response_what(record: dict[str, Any], call: Call | None) -> tuple[str, float | None]:
    if call is None:
        return f"response to unknown id {cell(json.dumps(record.get('id')), 40)}", None
    outcome = "error" if call.failed else "response"
    first = record.get("seq") == call.response_seq
    return f"{cell(call.label)} ({outcome})", call.duration_ms if first else None


def _verdict_detail(record: dict[str, Any]) -> str:
    verdict, rule, reason = record.get("verdict"), record.get("rule"), record.get("reason")
    if verdict in (None, "forward") or (rule is None and reason is None):
        return ""
    return cell(": ".join(str(part) for part in (rule, reason) if part is not None))


def _event_detail(record: dict[str, Any]) -> str:
    parts = []
    for key, value in record.items():
        if key in CHAIN_FIELDS:
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={cell(shown, 64)}")
    return cell(" ".join(parts))


def clock(t: float | None, *, date: bool = False) -> str:
    """Local time of day, to the millisecond (with the date, for rows from several sessions)."""
    if t is None:
        return "-"
    moment = datetime.fromtimestamp(t)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f" if date else "%H:%M:%S.%f")[:-3]


def stamp(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def span(seconds: float | None) -> str:
    """A duration as a person reads it: 0.4s, 12.3s, 4m05s, 2h07m."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


# ---- search --------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What `logs search` matches; every filter given must hold. ``tool`` and ``method`` take globs."""

    tool: str | None = None
    method: str | None = None
    verdict: str | None = None  # a verdict, or "blocked" for any refusal
    text: str | None = None  # case-insensitive, in the record's message, text, reason (an event's fields)
    since: float | None = None
    until: float | None = None  # exclusive

    def match(self, record: dict[str, Any], call: Call | None) -> bool:
        t = record.get("t")
        if self.since is not None and not (isinstance(t, int | float) and t >= self.since):
            return False
        if self.until is not None and not (isinstance(t, int | float) and t < self.until):
            return False
        if self.verdict is not None:
            verdict = record.get("verdict")
            if not (verdict == self.verdict or (self.verdict == "blocked" and verdict in BLOCKED)):
                return False
        # A response has no method or tool of its own: it has its request's.
        if self.method is not None:
            method = record.get("method", call.method if call is not None else None)
            if not isinstance(method, str) or not fnmatchcase(method, self.method):
                return False
        if self.tool is not None:
            tool = call.tool if call is not None else record.get("tool") if record.get("dir") == "event" else None
            if not isinstance(tool, str) or not fnmatchcase(tool, self.tool):
                return False
        return self.text is None or self.text.casefold() in searchable(record).casefold()


def searchable(record: dict[str, Any]) -> str:
    """The text `--text` looks in: the message, the text line and the reason (an event: its fields)."""
    if record.get("dir") == "event":
        return json.dumps({k: v for k, v in record.items() if k not in CHAIN_FIELDS - {"event"}}, ensure_ascii=False)
    parts = [str(record.get(key, "")) for key in ("text", "reason")]
    if "msg" in record:
        parts.append(json.dumps(record["msg"], ensure_ascii=False))
    return "\n".join(parts)


@dataclass(frozen=True)
class Match:
    session: str
    profile: str | None
    row: Row

    def as_dict(self) -> dict[str, Any]:
        return {"session": self.session, "profile": self.profile, "record": self.row.record}


def search(logs: Iterable[Path], filters: Filters, *, profile: str | None = None) -> Iterator[Match]:
    """Matching records, session by session (oldest session first), in log order."""
    for path in sorted(logs, key=lambda p: (_first_time(p), p.name)):
        if filters.since is not None and _mtime(path) < filters.since - MTIME_SLACK:
            continue
        records = list(read_records(path))
        summary = summarize(path, records)
        if profile is not None and summary.profile != profile:
            continue
        timeline = Timeline()
        for record in records:
            row, call = timeline.feed(record)
            if filters.match(record, call):
                yield Match(summary.session, summary.profile, row)


# ---- statistics ----------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), interpolating between the two nearest values (as numpy and
    `statistics.quantiles(method="inclusive")` do); None for no values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 3)


@dataclass
class ToolStats:
    """The tool calls of one profile to one tool."""

    profile: str | None
    tool: str
    calls: int = 0
    errors: int = 0  # reached the server and came back as an error (blocked calls are not counted here)
    blocked: int = 0
    unanswered: int = 0  # reached the server, no answer in the log
    durations: list[float] = field(default_factory=list, repr=False)  # ms, of calls that reached the server

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.durations, 50)

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.durations, 95)

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "tool": self.tool,
            "calls": self.calls,
            "errors": self.errors,
            "blocked": self.blocked,
            "unanswered": self.unanswered,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
        }


def stats(logs: Iterable[Path], *, profile: str | None = None, since: float | None = None) -> list[ToolStats]:
    """Per profile and tool, the client's tool calls made at or after ``since``. Durations count only
    calls the server answered: a refusal by mcpbox takes no time and would pull the figures down."""
    table: dict[tuple[str, str], ToolStats] = {}
    for path in logs:
        if since is not None and _mtime(path) < since - MTIME_SLACK:
            continue
        records = list(read_records(path))
        summary = summarize(path, records)
        if profile is not None and summary.profile != profile:
            continue
        for call in calls(records):
            if call.direction != "c2s" or call.method != "tools/call" or (since is not None and call.t < since):
                continue
            tool = call.tool or "?"
            entry = table.setdefault((summary.profile or "", tool), ToolStats(summary.profile, tool))
            entry.calls += 1
            if call.blocked:
                entry.blocked += 1
            elif call.duration_ms is None:
                entry.unanswered += 1
            else:
                entry.durations.append(call.duration_ms)
                entry.errors += 1 if call.failed else 0
    return [table[key] for key in sorted(table)]
