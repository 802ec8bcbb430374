"""`mcpbox logs list | show | tail | search | stats`: reading session logs.

Each command parses its options, makes one call into :mod:`mcpbox.logs.view` (or
:mod:`mcpbox.logs.follow`), and renders: a table or lines for people, ``--json`` for programs.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from mcpbox._text import printable
from mcpbox.cli.output import Styled, emit_block, emit_json, emit_jsonl, emit_line, emit_table, emit_text
from mcpbox.errors import UsageError

if TYPE_CHECKING:
    from mcpbox.logs.view import Row, Session

JSON = typer.Option(False, "--json", help="Machine-readable output.")
PROFILE = typer.Option(None, "--profile", "-p", help="Only sessions of this profile.")
SINCE_HELP = "an ISO date or time (2026-11-25, 2026-11-25T09:00) or an age (30m, 2h, 7d)"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `mcpbox logs` group."""
    app.command("list")(list_)
    app.command("show")(show)
    app.command("tail")(tail)
    app.command("search")(search)
    app.command("stats")(stats)


def _when(value: str | None, option: str, *, end_of_day: bool = False) -> float | None:
    from mcpbox.logs.view import parse_when

    return None if value is None else parse_when(value, option=option, end_of_day=end_of_day)


def _session_cells(session: Session) -> list[Any]:
    from mcpbox.logs.view import cell, span, stamp

    s = session.summary
    exit_tone = "good" if session.running else "warn" if not s.ended else "bad" if s.exit_code else None
    return [
        cell(s.session, 64),
        cell(s.profile or "-", 64),
        stamp(s.start),
        span(session.duration_s),
        s.messages,
        s.tool_calls,
        Styled(str(s.blocked), "bad" if s.blocked else None),
        Styled(session.exit_text, exit_tone),
    ]


def _row_cells(row: Row) -> list[Any]:
    cells: list[Any] = row.cells()
    cells[6] = Styled(cells[6], row.tone)
    return cells


def list_(
    profile: str | None = PROFILE,
    since: str | None = typer.Option(None, "--since", help=f"Only sessions started since: {SINCE_HELP}."),
    as_json: bool = JSON,
) -> None:
    """Sessions, oldest first (the newest is last): when, how long, how much, how they ended."""
    from mcpbox.logs.verify import all_logs
    from mcpbox.logs.view import sessions

    found = sessions(all_logs(), profile=profile, since=_when(since, "--since"))
    if as_json:
        emit_json({"sessions": [session.as_dict() for session in found]})
        return
    if not found:
        emit_text("no sessions" + (" match" if profile or since else " yet: `mcpbox run PROFILE` starts one"))
        return
    headers = ["SESSION", "PROFILE", "START", "DURATION", "MESSAGES", "TOOL CALLS", "BLOCKED", "EXIT"]
    emit_table(headers, [_session_cells(session) for session in found], wrap=["PROFILE"])


def show(
    session: str = typer.Argument(..., help="A session id (or a unique prefix), or a log file."),
    full: bool = typer.Option(False, "--full", help="Also print each message or text line in full."),
    as_json: bool = JSON,
) -> None:
    """A session's timeline: each record with its direction, method or tool, timing and verdict."""
    from mcpbox.logs.timeline import calls, read_records
    from mcpbox.logs.verify import find_log
    from mcpbox.logs.view import ROW_HEADERS, ROW_WIDTHS, Timeline, cell, load_session, payload_text, span, stamp

    path = find_log(session)
    records = list(read_records(path))
    found = load_session(path, records)
    if as_json:
        emit_json(
            {
                "session": found.as_dict(),
                "calls": [call.as_dict() for call in calls(records)],
                "records": records,
            }
        )
        return
    s = found.summary
    emit_text(
        f"session {cell(s.session, 64)}  profile {cell(s.profile or '-', 64)}  started {stamp(s.start)}  "
        f"lasted {span(found.duration_s)}  {s.messages} messages, {s.tool_calls} tool calls, {s.blocked} blocked  "
        f"{found.status}" + (f" (exit {s.exit_code})" if s.ended else "")
    )
    rows = Timeline().rows(records)
    if not full:
        emit_table(ROW_HEADERS, [_row_cells(row) for row in rows], wrap=["WHAT", "DETAIL"])
        return
    for row in rows:
        emit_line(_row_cells(row), ROW_WIDTHS)
        payload = payload_text(row.record)
        if payload is not None:
            emit_block(payload)


def tail(
    session: str | None = typer.Argument(None, help="A session id, prefix or log file; default: the newest session."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing records as they are written."),
    lines: int = typer.Option(10, "--lines", "-n", help="How many of the last records to print first."),
    as_json: bool = typer.Option(False, "--json", help="One JSON record per line (JSONL)."),
) -> None:
    """The last records of a session; with -f, follow it until its end record (or Ctrl-C)."""
    from mcpbox.logs.follow import GONE, Follow
    from mcpbox.logs.timeline import read_records
    from mcpbox.logs.verify import all_logs, find_log
    from mcpbox.logs.view import ROW_WIDTHS, Timeline, newest_log

    if lines < 0:
        raise UsageError(f"-n {lines} is negative.", "Give how many records to print, 0 or more.")
    path = find_log(session) if session is not None else newest_log(all_logs())
    if session is None:
        print(printable(f"mcpbox: session {path.stem}"), file=sys.stderr)
    timeline = Timeline()

    def emit(record: dict[str, Any]) -> None:
        row = timeline.row(record)
        if as_json:
            emit_jsonl(record)
        else:
            emit_line(_row_cells(row), ROW_WIDTHS)

    if not follow:
        # Every record goes through the timeline, so that a response shown knows its request.
        rows = timeline.rows(read_records(path))
        for row in rows[-lines:] if lines else []:
            if as_json:
                emit_jsonl(row.record)
            else:
                emit_line(_row_cells(row), ROW_WIDTHS)
        return
    stream = Follow(path, last=lines)
    for record in stream:
        emit(record)
    if stream.outcome == GONE:
        gone = f"mcpbox: session {path.stem} stopped without an end record (its process is gone)"
        print(printable(gone), file=sys.stderr)


def search(  # noqa: PLR0917 - typer passes each option as a parameter
    tool: str | None = typer.Option(None, "--tool", help="Records of calls to this tool (a glob: 'escape_*')."),
    method: str | None = typer.Option(None, "--method", help="Records of this method, responses included (a glob)."),
    verdict: str | None = typer.Option(None, "--verdict", help="This verdict (block, rewrite...), or 'blocked'."),
    text: str | None = typer.Option(None, "--text", help="Case-insensitive, in the message, text line or reason."),
    since: str | None = typer.Option(None, "--since", help=f"Records written since: {SINCE_HELP}."),
    until: str | None = typer.Option(None, "--until", help="Records written before this (a date: to its end)."),
    session: str | None = typer.Option(None, "--session", help="Only this session (an id, prefix or log file)."),
    profile: str | None = PROFILE,
    as_json: bool = JSON,
) -> None:
    """Records across sessions that match every filter given, oldest first."""
    from mcpbox.logs.verify import all_logs, find_log
    from mcpbox.logs.view import Filters, cell, clock
    from mcpbox.logs.view import search as find

    filters = Filters(
        tool=tool,
        method=method,
        verdict=verdict,
        text=text,
        since=_when(since, "--since"),
        until=_when(until, "--until", end_of_day=True),
    )
    logs = [find_log(session)] if session is not None else all_logs()
    matches = list(find(logs, filters, profile=profile))
    if as_json:
        emit_json({"matches": [match.as_dict() for match in matches]})
        return
    if not matches:
        emit_text("no records match")
        return
    headers = ["SESSION", "PROFILE", "TIME", "SEQ", "DIRECTION", "WHAT", "VERDICT", "DETAIL"]
    rows = [
        [
            cell(m.session, 64),
            cell(m.profile or "-", 64),
            clock(m.row.t, date=True),
            m.row.seq,
            m.row.direction,
            m.row.what,
            Styled(m.row.verdict, m.row.tone),
            m.row.detail,
        ]
        for m in matches
    ]
    emit_table(headers, rows, wrap=["PROFILE", "WHAT", "DETAIL"])


def stats(
    profile: str | None = PROFILE,
    since: str | None = typer.Option(None, "--since", help=f"Only calls made since: {SINCE_HELP}."),
    as_json: bool = JSON,
) -> None:
    """Tool calls per profile and tool: how many, errors, blocked, and p50/p95 time to answer."""
    from mcpbox.logs.verify import all_logs
    from mcpbox.logs.view import cell
    from mcpbox.logs.view import stats as tool_stats

    table = tool_stats(all_logs(), profile=profile, since=_when(since, "--since"))
    if as_json:
        emit_json({"stats": [entry.as_dict() for entry in table]})
        return
    if not table:
        emit_text("no tool calls" + (" match" if profile or since else " logged yet"))
        return

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = [
        [
            cell(entry.profile or "-", 64),
            cell(entry.tool, 64),
            entry.calls,
            Styled(str(entry.errors), "warn" if entry.errors else None),
            Styled(str(entry.blocked), "bad" if entry.blocked else None),
            ms(entry.p50_ms),
            ms(entry.p95_ms),
        ]
        for entry in table
    ]
    emit_table(["PROFILE", "TOOL", "CALLS", "ERRORS", "BLOCKED", "P50 MS", "P95 MS"], rows, wrap=["PROFILE", "TOOL"])
