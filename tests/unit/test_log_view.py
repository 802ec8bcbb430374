"""The log viewer's library: --since parsing, percentiles, timelines, search, stats, following a
live log, and rendering hostile text inert. Logs are written by the real SessionLog writer."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mcpbox.cli.output import Styled, write_line, write_table
from mcpbox.errors import UsageError
from mcpbox.logs.follow import ENDED, GONE, Follow, LogReader
from mcpbox.logs.timeline import calls, read_records, summarize
from mcpbox.logs.view import (
    ROW_HEADERS,
    Filters,
    Timeline,
    cell,
    load_session,
    newest_log,
    parse_when,
    payload_text,
    percentile,
    search,
    sessions,
    stats,
)
from mcpbox.logs.writer import SessionLog

NOW = 1_795_000_000.0
# What a hostile server can put in a log: rich markup, an emoji code, OSC 52 (write the clipboard),
# a screen clear, a C1 CSI, a bidi override and a zero-width space.
HOSTILE = (
    "[red]x[/red] [link=https://e.vil]y[/link] :smile: \x1b]52;c;ZXZpbA==\x07 \x1b[2J \x1b[31mred \x9b31m \u202e \u200b"
)


def _message(log: SessionLog, direction: str, obj: dict[str, Any], **kwargs: Any) -> None:
    kind = "request" if "method" in obj and "id" in obj else "notification" if "method" in obj else "response"
    raw = json.dumps(obj).encode()
    log.message(direction, raw, kind=kind, method=obj.get("method"), ident=obj.get("id"), **kwargs)


def _call(ident: int, tool: str, **arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}


def _result(ident: int, text: str, *, error: bool = False) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "result": {"content": [{"type": "text", "text": text}], "isError": error}}


def write_session(
    directory: Path, name: str, profile: str, *, tool_text: str = "hi", end: bool = True, pid: int | None = None
) -> Path:
    """A small session: an allowed call, a blocked one, one answered with an error, a rewritten answer, stderr."""
    log = SessionLog(directory / f"{name}.jsonl")
    log.event("start", session=name, profile=profile, image="img", pid=pid if pid is not None else 999_999_999)
    _message(log, "c2s", _call(1, "echo", text=tool_text))
    _message(log, "s2c", _result(1, tool_text))
    _message(log, "c2s", _call(2, "write_file", path="/x"), verdict="block", rule="tools.allow/deny", reason="denied")
    _message(log, "s2c", _result(2, "mcpbox refused"), verdict="mcpbox", rule="tools.allow/deny")
    _message(log, "c2s", _call(3, "add", a=1))
    _message(log, "s2c", _result(3, "missing b", error=True))
    _message(log, "c2s", _call(4, "echo", text="styled"))
    _message(log, "s2c", _result(4, "\x1b[31mstyled"), verdict="rewrite", rule="output", reason="output: ansi")
    _message(log, "s2c", _result(4, "styled"), verdict="sent", rule="output")
    log.text("stderr", f"server says {tool_text}\n".encode(), verdict="forward", reason="server stderr")
    if end:
        log.event("end", exit_code=0, reason="client closed stdin")
    log.close()
    return log.path


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "sessions"


# ---- --since / --until ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30m", 1800), ("2h", 7200), ("7d", 7 * 86400), ("90s", 90), ("2w", 14 * 86400), ("1.5h", 5400)],
)
def test_an_age_counts_back_from_now(value: str, seconds: float) -> None:
    assert parse_when(value, now=NOW) == NOW - seconds


def test_an_iso_date_or_time_is_local_unless_it_names_a_zone() -> None:
    assert parse_when("2026-11-25") == datetime(2026, 11, 25).timestamp()
    assert parse_when("2026-11-25T09:00") == datetime(2026, 11, 25, 9, 0).timestamp()
    assert parse_when("2026-11-25 09:00:30") == datetime(2026, 11, 25, 9, 0, 30).timestamp()
    assert parse_when("2026-11-25T09:00Z") == datetime(2026, 11, 25, 9, tzinfo=UTC).timestamp()
    assert parse_when("2026-11-25T09:00+02:00") == datetime(2026, 11, 25, 7, tzinfo=UTC).timestamp()


def test_until_a_bare_date_includes_that_day() -> None:
    day = datetime(2026, 11, 25)
    assert parse_when("2026-11-25", end_of_day=True) == (day + timedelta(days=1)).timestamp()
    assert parse_when("2026-11-25T09:00", end_of_day=True) == datetime(2026, 11, 25, 9).timestamp()


@pytest.mark.parametrize("value", ["3x", "yesterday", "", "-2h", "2026-13-01", "2h ago", "h"])
def test_a_bad_when_is_a_usage_error_naming_it_and_the_accepted_forms(value: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_when(value, option="--until")
    assert f"--until {value!r}" in caught.value.message
    assert "2026-11-25T09:00" in caught.value.remedy
    assert "30m" in caught.value.remedy and "7d" in caught.value.remedy
    assert caught.value.exit_code == 2


# ---- percentiles ---------------------------------------------------------------


def test_percentiles_interpolate_between_the_nearest_values() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([40.0, 10.0, 30.0, 20.0], 50) == 25.0  # order does not matter
    hundred = [float(n) for n in range(1, 101)]
    assert percentile(hundred, 50) == 50.5
    assert percentile(hundred, 95) == 95.05
    assert percentile(hundred, 0) == 1.0
    assert percentile(hundred, 100) == 100.0
    with pytest.raises(ValueError, match="outside"):
        percentile(hundred, 101)


# ---- timeline, sessions ------------------------------------------------------------


def test_an_answers_second_record_joins_its_call_and_is_not_a_second_message(logs: Path) -> None:
    path = write_session(logs, "s1", "alpha")
    records = list(read_records(path))
    found = {call.id: call for call in calls(records)}
    sent = next(r for r in records if r.get("verdict") == "sent")
    assert sent["seq"] in found[4].records
    assert found[4].response_verdict == "rewrite"
    assert found[2].blocked and found[3].failed and not found[1].failed
    summary = summarize(path, records)
    assert summary.messages == 8  # four requests, four answers: the "sent" record is the rewritten answer
    assert (summary.tool_calls, summary.blocked) == (4, 1)


def test_rows_name_each_answer_after_its_request(logs: Path) -> None:
    rows = Timeline().rows(read_records(write_session(logs, "s1", "alpha")))
    by_seq = {row.seq: row for row in rows}
    assert by_seq[2].what == "tools/call echo" and by_seq[2].direction == "client→server"
    assert by_seq[3].what == "tools/call echo (response)" and by_seq[3].duration_ms is not None
    assert by_seq[4].verdict == "block" and by_seq[4].detail == "tools.allow/deny: denied" and by_seq[4].tone == "bad"
    assert by_seq[7].what == "tools/call add (error)"
    assert by_seq[10].verdict == "sent" and by_seq[10].duration_ms is None  # the time is on the first answer
    assert by_seq[11].direction == "stderr" and by_seq[11].what == "server says hi"
    assert rows[-1].what == "end" and "exit_code=0" in rows[-1].detail
    assert len(rows[0].cells()) == len(ROW_HEADERS)


def test_a_session_whose_writer_is_gone_has_no_end_record_and_a_live_one_is_running(logs: Path) -> None:
    ended = load_session(write_session(logs, "a", "alpha"))
    assert (ended.status, ended.exit_text) == ("ended", "0")
    dead = load_session(write_session(logs, "b", "alpha", end=False))
    assert (dead.status, dead.exit_text, dead.running) == ("no end record", "no end record", False)
    live = load_session(write_session(logs, "c", "alpha", end=False, pid=os.getpid()))
    assert (live.status, live.exit_text) == ("running", "running")
    assert live.as_dict()["status"] == "running"


def test_sessions_filter_by_profile_and_start_and_list_the_newest_last(logs: Path) -> None:
    first = write_session(logs, "zz-first", "alpha")
    time.sleep(0.05)
    cut = time.time()
    time.sleep(0.05)
    second = write_session(logs, "aa-second", "beta")
    third = write_session(logs, "mm-third", "alpha")
    every = [first, second, third]
    assert [s.summary.path for s in sessions(every)] == [first, second, third]  # by start, not by name
    assert [s.summary.path for s in sessions(every, profile="alpha")] == [first, third]
    assert [s.summary.path for s in sessions(every, since=cut)] == [second, third]
    assert newest_log(every) == third


# ---- search, stats --------------------------------------------------------------


def test_search_filters_by_tool_method_verdict_text_and_time(logs: Path) -> None:
    one = write_session(logs, "one", "alpha", tool_text="Needle")
    two = write_session(logs, "two", "beta")
    both = [one, two]

    def seqs(filters: Filters, **kwargs: Any) -> list[tuple[str, int]]:
        return [(m.session, m.row.seq) for m in search(both, filters, **kwargs)]

    assert seqs(Filters(tool="write_file")) == [("one", 4), ("one", 5), ("two", 4), ("two", 5)]
    assert seqs(Filters(tool="write_*"), profile="beta") == [("two", 4), ("two", 5)]
    assert seqs(Filters(verdict="blocked")) == [("one", 4), ("two", 4)]
    assert seqs(Filters(verdict="sent")) == [("one", 10), ("two", 10)]
    assert seqs(Filters(text="needle")) == [("one", 2), ("one", 3), ("one", 11)]  # message, answer, stderr
    assert seqs(Filters(text="DENIED")) == [("one", 4), ("two", 4)]  # a reason
    assert len(seqs(Filters(method="tools/call"))) == 2 * 9  # requests and their answers
    assert seqs(Filters(tool="add", verdict="forward")) == [("one", 6), ("one", 7), ("two", 6), ("two", 7)]
    assert seqs(Filters(since=time.time() + 60)) == []
    assert seqs(Filters(until=time.time() - 3600)) == []


def test_stats_per_profile_and_tool(logs: Path) -> None:
    paths = [write_session(logs, "one", "alpha"), write_session(logs, "two", "alpha"), write_session(logs, "x", "b")]
    table = {(s.profile, s.tool): s for s in stats(paths)}
    echo = table[("alpha", "echo")]
    assert (echo.calls, echo.errors, echo.blocked, echo.unanswered) == (4, 0, 0, 0)
    assert echo.p50_ms is not None and echo.p95_ms is not None and echo.p50_ms <= echo.p95_ms
    denied = table[("alpha", "write_file")]
    assert (denied.calls, denied.blocked, denied.p50_ms) == (2, 2, None)  # refusals take no time
    assert table[("alpha", "add")].errors == 2
    assert {s.profile for s in stats(paths, profile="b")} == {"b"}
    assert stats(paths, since=time.time() + 60) == []
    assert set(echo.as_dict()) == {"profile", "tool", "calls", "errors", "blocked", "unanswered", "p50_ms", "p95_ms"}


# ---- following a live log ---------------------------------------------------------


def test_a_line_still_being_written_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_bytes(b'{"seq":1,"dir":"event","event":"start"}\n{"seq":2,"dir":"std')
    reader = LogReader(path)
    assert [r["seq"] for r in reader.read()] == [1]
    assert reader.read() == []
    with path.open("ab") as handle:
        handle.write(b'err","kind":"text","text":"x"}\n')
    assert [(r["seq"], r["text"]) for r in reader.read()] == [(2, "x")]


def test_follow_prints_the_last_records_then_new_ones_until_the_end_record(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    log = SessionLog(path)
    log.event("start", session="live", profile="p", pid=999_999_999)
    for n in range(5):
        log.text("stderr", f"line {n}\n".encode(), verdict="forward", reason="server stderr")
    polls = 0

    def sleep(_: float) -> None:  # each poll, the session writes a little more
        nonlocal polls
        polls += 1
        if polls == 1:
            log.text("stderr", b"late line\n", verdict="forward", reason="server stderr")
        elif polls == 2:
            log.event("end", exit_code=0, reason="done")
            log.close()

    follow = Follow(path, last=2, sleep=sleep)
    texts = [r.get("text", r.get("event")) for r in follow]
    assert texts == ["line 3", "line 4", "late line", "end"]
    assert follow.outcome == ENDED


def test_follow_stops_when_the_writer_died_without_an_end_record(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    path = tmp_path / "dead.jsonl"
    log = SessionLog(path)
    log.event("start", session="dead", profile="p", pid=int(gone.stdout))
    log.close()
    ticks = iter(range(0, 1000))
    follow = Follow(path, last=5, sleep=lambda _: None, clock=lambda: float(next(ticks)))
    assert [r.get("event") for r in follow] == ["start"]
    assert follow.outcome == GONE


# ---- hostile text stays inert -------------------------------------------------------


def _hostile_log(directory: Path) -> Path:
    log = SessionLog(directory / "evil.jsonl")
    log.event("start", session="evil", profile=HOSTILE, pid=999_999_999)
    _message(log, "c2s", _call(1, HOSTILE, text=HOSTILE), verdict="block", rule="arguments", reason=HOSTILE)
    _message(log, "s2c", _result(1, HOSTILE), verdict="mcpbox", rule="arguments")
    log.text("stderr", HOSTILE.encode(), verdict="forward", reason="server stderr")
    log.close()
    return log.path


def _assert_inert(text: str) -> None:
    for dangerous in ("\x1b]52", "\x1b[2J", "\x1b[31m", "\x9b", "\x07", "\u202e", "\u200b"):
        assert dangerous not in text
    assert "[red]x[/red]" in text  # shown as the server wrote it, not as markup
    assert ":smile:" in text
    assert "\\u001b]52;c;ZXZpbA==\\u0007" in text  # the escape is visible, for a person to see


def test_hostile_text_in_a_log_is_shown_inert_in_rows_and_payloads(logs: Path) -> None:
    records = list(read_records(_hostile_log(logs)))
    for row in Timeline().rows(records):
        for value in row.cells():
            assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value), value
    request = Timeline().rows(records)[1]
    _assert_inert(request.what + request.detail)
    payload = payload_text(records[1])
    assert payload is not None
    _assert_inert(payload)
    _assert_inert(cell(HOSTILE))


@pytest.mark.parametrize("rich", [True, False])
def test_hostile_text_reaches_neither_a_terminal_nor_a_pipe_raw(logs: Path, rich: bool) -> None:
    records = list(read_records(_hostile_log(logs)))
    rows = Timeline().rows(records)
    out = io.StringIO()
    table = [[*row.cells()[:6], Styled(row.verdict, row.tone), row.detail] for row in rows]
    write_table(out, ROW_HEADERS, table, rich=rich, title=cell(HOSTILE), width=1000)
    for row in rows:
        write_line(out, [Styled(row.what, "bad"), row.detail], rich=rich, width=1000)
    _assert_inert(_without_own_colours(out.getvalue(), rich))


@pytest.mark.parametrize("rich", [True, False])
def test_the_output_layer_itself_passes_no_control_character_or_markup(rich: bool) -> None:
    """Even a cell that skipped the view's escaping cannot drive the terminal or be read as markup."""
    out = io.StringIO()
    write_table(out, ["A", "B"], [[HOSTILE, Styled(HOSTILE, "warn")]], rich=rich, title=HOSTILE, width=1000)
    write_line(out, [HOSTILE, Styled(HOSTILE, "good")], rich=rich, width=1000)
    text = _without_own_colours(out.getvalue(), rich)
    assert not any((ord(c) < 32 and c != "\n") or 127 <= ord(c) < 160 for c in text)
    assert text.count("[red]x[/red] [link=https://e.vil]y[/link] :smile: \\x1b]52;c;ZXZpbA==\\x07") == 5


def _without_own_colours(text: str, rich: bool) -> str:
    """The text with rich's colour codes taken out, after checking they are all rich's own."""
    if rich:
        # The only escapes are rich's own colours (select graphic rendition), and none is red alone:
        # "bad" is bold red (1;31); a bare 31 would be the server's [red] or \x1b[31m taking effect.
        colours = re.findall(r"\x1b\[([0-9;]*)m", text)
        assert colours and "31" not in colours
        assert "\x1b]8;" not in text  # no hyperlink made of [link=...]
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        assert "😄" not in text
    assert "\x1b" not in text
    return text
