"""`mcpbox logs list | show | tail | search | stats` on real sessions: `mcpbox run` with the hostile
server in its sandbox, driven byte by byte (RawClient) and by the official SDK client."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import queue
import shutil
import struct
import subprocess
import tempfile
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import MCPBOX, Home, RawClient, hostile_profile, read_log, sdk_client

pytestmark = pytest.mark.docker

# The client asks the server to echo terminal escapes and rich markup back: they end up in the
# log (the request, and the server's answer as received), and must never reach a terminal raw.
NEEDLE = "needle-7f3a"
HOSTILE = f"{NEEDLE} [red]markup[/red] :smile: \x1b]52;c;ZXZpbA==\x07 \x1b[2J\x1b[31mred"


@dataclass
class Sessions:
    home: Home
    alpha: str  # RawClient: an echo, a denied call, one answered with an error
    beta: str  # SDK client: two echoes, an add, stderr lines
    alpha_records: list[dict[str, Any]]
    beta_records: list[dict[str, Any]]


def mcpbox(home: Home, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MCPBOX, *args], env=home.full_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def as_json(home: Home, *args: str) -> Any:
    result = mcpbox(home, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def new_log(home: Home, before: set[Path], timeout: float = 20.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = set(home.session_logs()) - before
        if fresh:
            return fresh.pop()
        time.sleep(0.05)
    raise AssertionError("no session log appeared")


async def _beta_session(home: Home) -> None:
    with anyio.fail_after(60):
        async with sdk_client("beta", home, mode="legacy", cache=None) as client:
            await client.list_tools()
            assert not (await client.call_tool("echo", {"text": "one"})).is_error
            assert not (await client.call_tool("echo", {"text": "two"})).is_error
            assert not (await client.call_tool("add", {"a": 2, "b": 3})).is_error
            assert not (await client.call_tool("stderr", {"lines": 2})).is_error


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory, docker_api: Any) -> Iterator[Sessions]:
    runtime = Path(tempfile.mkdtemp(prefix="mbx-"))
    home = Home(tmp_path_factory.mktemp("viewer") / "home", runtime)
    hostile_profile(home, "alpha", tools={"deny": ["write_file"]})
    hostile_profile(home, "beta")
    client = RawClient("alpha", home)
    try:
        client.initialize()
        client.request(1, "tools/list")
        assert client.call_tool(2, "echo", {"text": HOSTILE})["result"]["isError"] is False
        assert client.call_tool(3, "write_file", {"path": "/data/x", "content": "y"})["result"]["isError"] is True
        assert "error" in client.call_tool(4, "rug_pull", {"tool": "no_such_tool"})  # a JSON-RPC error
        client.close_stdin()
        assert client.wait() == 0
    finally:
        client.kill()
    (alpha,) = home.session_logs()
    anyio.run(_beta_session, home)
    (beta,) = set(home.session_logs()) - {alpha}
    yield Sessions(home, alpha.stem, beta.stem, read_log(alpha), read_log(beta))
    shutil.rmtree(runtime, ignore_errors=True)


# ---- list ---------------------------------------------------------------------


def test_list_shows_each_session_with_its_counts_newest_last(sessions: Sessions) -> None:
    listed = as_json(sessions.home, "logs", "list")["sessions"]
    assert [s["session"] for s in listed] == [sessions.alpha, sessions.beta]
    alpha, beta = listed
    assert (alpha["profile"], beta["profile"]) == ("alpha", "beta")
    assert (alpha["tool_calls"], alpha["blocked"]) == (3, 1)
    assert (beta["tool_calls"], beta["blocked"]) == (4, 0)
    for entry in listed:
        assert entry["status"] == "ended" and entry["exit_code"] == 0
        assert entry["duration_s"] is not None and entry["duration_s"] > 0
        assert entry["messages"] > 2 * entry["tool_calls"]  # each call and its answer, and the handshake
    # messages: every JSON-RPC message in the log, a rewritten one once.
    alpha_messages = [r for r in sessions.alpha_records if r["dir"] in ("c2s", "s2c") and r.get("kind") != "text"]
    assert alpha["messages"] == len([r for r in alpha_messages if r.get("verdict") not in ("sent", "released")])


def test_list_filters_by_profile_and_since(sessions: Sessions) -> None:
    home = sessions.home
    assert [s["session"] for s in as_json(home, "logs", "list", "--profile", "beta")["sessions"]] == [sessions.beta]
    assert len(as_json(home, "logs", "list", "--since", "1h")["sessions"]) == 2
    assert as_json(home, "logs", "list", "--since", "2999-01-01")["sessions"] == []
    bad = mcpbox(home, "logs", "list", "--since", "last tuesday")
    assert bad.returncode == 2
    assert "'last tuesday'" in bad.stderr and "2026-11-25T09:00" in bad.stderr and "30m" in bad.stderr


def test_list_is_plain_aligned_text_when_piped(sessions: Sessions) -> None:
    result = mcpbox(sessions.home, "logs", "list")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["SESSION", "PROFILE", "START", "DURATION", "MESSAGES", "TOOL", "CALLS", "BLOCKED", "EXIT"]
    assert [row.split()[0] for row in rows] == [sessions.alpha, sessions.beta]
    assert rows[0].split()[1] == "alpha" and rows[0].split()[-2:] == ["1", "0"]  # blocked, exit code
    assert header.index("PROFILE") == rows[0].index("alpha")  # aligned
    assert "\x1b" not in result.stdout and "─" not in result.stdout


# ---- show ---------------------------------------------------------------------


def test_show_json_has_the_summary_the_calls_and_the_records(sessions: Sessions) -> None:
    shown = as_json(sessions.home, "logs", "show", sessions.alpha[:-1])  # a unique prefix is enough
    assert shown["session"]["session"] == sessions.alpha
    assert shown["session"]["blocked"] == 1
    assert [r["seq"] for r in shown["records"]] == [r["seq"] for r in sessions.alpha_records]
    tools = {c["tool"]: c for c in shown["calls"] if c["method"] == "tools/call"}
    assert set(tools) == {"echo", "write_file", "rug_pull"}
    assert tools["echo"]["verdict"] == "forward" and tools["echo"]["response_verdict"] == "rewrite"
    assert tools["write_file"]["blocked"] and tools["write_file"]["rule"] == "tools.allow/deny"
    assert tools["rug_pull"]["failed"] and tools["rug_pull"]["error"]["message"]
    for call in shown["calls"]:
        assert call["duration_ms"] is not None and call["duration_ms"] >= 0, call
    assert tools["echo"]["duration_ms"] > 0


def test_show_is_a_timeline_of_directions_calls_and_verdicts(sessions: Sessions) -> None:
    result = mcpbox(sessions.home, "logs", "show", sessions.alpha)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"session {sessions.alpha}  profile alpha")
    assert lines[1].split() == ["TIME", "SEQ", "DIRECTION", "WHAT", "MS", "SIZE", "VERDICT", "DETAIL"]
    denied = next(line for line in lines if "tools/call write_file" in line and "client→server" in line)
    assert "block" in denied and "tools.allow/deny" in denied
    assert any("tools/call rug_pull (error)" in line for line in lines)
    assert any("server→client" in line and "initialize (response)" in line for line in lines)
    assert any(line.split()[2:4] == ["event", "end"] for line in lines[2:])
    assert NEEDLE not in result.stdout  # payloads only with --full
    full = mcpbox(sessions.home, "logs", "show", sessions.alpha, "--full")
    assert f'"text": "{NEEDLE} [red]markup[/red] :smile: \\u001b]52;c;ZXZpbA==\\u0007' in full.stdout
    assert "\x1b" not in full.stdout and "\x07" not in full.stdout


def test_show_in_a_terminal_is_drawn_by_rich_and_the_logged_escapes_stay_inert(sessions: Sessions) -> None:
    for extra in ([], ["--full"]):
        out = _in_a_terminal(sessions.home, "logs", "show", sessions.alpha, *extra)
        assert "tools/call write_file" in out
        assert "\x1b[" in out  # rich's colours: this is the terminal rendering
        for raw in ("\x1b]52", "\x1b[2J", "\x07"):
            assert raw not in out
        if extra:
            assert "[red]markup[/red] :smile: \\u001b]52;c;ZXZpbA==" in out
            assert "\x1b[31m" not in out  # the logged SGR is escaped, never sent
        else:
            assert "─" in out  # the table's rule


def _in_a_terminal(home: Home, *args: str) -> str:
    """Run mcpbox with a pseudo-terminal (200 columns) as its stdout; what it wrote there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = home.full_env()
    env.pop("NO_COLOR", None)
    env.pop("COLUMNS", None)
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen([MCPBOX, *args], stdout=slave, stderr=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    with contextlib.suppress(OSError):  # EIO: the child closed the terminal
        while data := os.read(master, 65536):
            chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=30) == 0
    return b"".join(chunks).decode()


# ---- tail ---------------------------------------------------------------------


def test_tail_prints_the_last_records_of_the_newest_session(sessions: Sessions) -> None:
    result = mcpbox(sessions.home, "logs", "tail", "-n", "4", "--json")
    assert result.returncode == 0, result.stderr
    assert sessions.beta in result.stderr  # the newest, named since it was not given
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["seq"] for r in records] == [r["seq"] for r in sessions.beta_records[-4:]]
    assert "end" in [r.get("event") for r in records]
    plain = mcpbox(sessions.home, "logs", "tail", sessions.alpha, "-n", "2")
    rows = plain.stdout.splitlines()
    assert len(rows) == 2 and rows[-1].split()[1] == str(sessions.alpha_records[-1]["seq"])
    assert mcpbox(sessions.home, "logs", "tail", sessions.alpha, "-n", "0").stdout == ""
    assert mcpbox(sessions.home, "logs", "tail", "-n", "-1").returncode == 2


def test_tail_follow_shows_a_live_session_and_exits_at_its_end(
    home: Home, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    hostile_profile(home, "live")
    before = set(home.session_logs())
    client = RawClient("live", home)
    raw_clients.append(client)
    client.initialize()
    log = new_log(home, before)
    tail = subprocess.Popen(
        [MCPBOX, "logs", "tail", "-f", "-n", "1", "--json", log.stem],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=home.full_env(),
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert tail.stdout is not None
        for line in tail.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:

        def until(predicate: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
            seen: list[dict[str, Any]] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with contextlib.suppress(queue.Empty):
                    seen.append(json.loads(lines.get(timeout=0.2)))
                    if predicate(seen[-1]):
                        return seen
            raise AssertionError(f"not seen within {timeout} s; got {seen}")

        assert len(until(lambda _: True)) == 1  # -n 1: the last record so far, then live
        assert client.call_tool(7, "echo", {"text": "live-marker"})["result"]["isError"] is False
        seen = until(lambda r: r.get("dir") == "s2c" and r.get("id") == 7)
        asked = [r for r in seen if r.get("method") == "tools/call"]
        assert asked and asked[-1]["msg"]["params"]["arguments"]["text"] == "live-marker"
        assert tail.poll() is None  # still following
        client.close_stdin()
        assert client.wait() == 0
        until(lambda r: r.get("event") == "end")
        assert tail.wait(timeout=15) == 0
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait(timeout=10)
        reader.join(timeout=5)
        for pipe in (tail.stdout, tail.stderr):
            if pipe is not None:
                pipe.close()


# ---- search -------------------------------------------------------------------


def test_search_finds_records_by_tool_verdict_text_and_time(sessions: Sessions) -> None:
    home = sessions.home

    def matches(*args: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = as_json(home, "logs", "search", *args)["matches"]
        return found

    echoes = matches("--tool", "echo")
    assert {m["session"] for m in echoes} == {sessions.alpha, sessions.beta}
    requests = [m["record"] for m in echoes if m["record"].get("method") == "tools/call"]
    assert len(requests) == 3 and all(r["msg"]["params"]["name"] == "echo" for r in requests)
    assert all(m["record"]["dir"] in ("c2s", "s2c") for m in echoes)  # requests and their answers only
    assert [m["profile"] for m in matches("--tool", "echo", "--profile", "beta")] == ["beta"] * 4
    blocked = matches("--verdict", "block")
    assert [(m["session"], m["record"]["msg"]["params"]["name"]) for m in blocked] == [(sessions.alpha, "write_file")]
    assert [m["record"]["seq"] for m in matches("--verdict", "blocked")] == [blocked[0]["record"]["seq"]]
    needle = matches("--text", NEEDLE.upper())
    assert needle and {m["session"] for m in needle} == {sessions.alpha}
    assert matches("--text", "hostile stderr line 1")[0]["record"]["dir"] == "stderr"
    assert matches("--method", "initialize", "--session", sessions.beta)[0]["session"] == sessions.beta
    assert len(matches("--method", "initialize")) == 4  # two requests, two responses
    assert matches("--tool", "write_file", "--profile", "beta") == []
    assert matches("--since", "2999-01-01") == []
    assert matches("--until", "2000-01-01") == []
    assert len(matches("--tool", "echo", "--since", "1d", "--until", "2999-01-01")) == len(echoes)


def test_search_is_a_plain_table_when_piped(sessions: Sessions) -> None:
    result = mcpbox(sessions.home, "logs", "search", "--verdict", "block")
    header, row = result.stdout.splitlines()
    assert header.split()[:3] == ["SESSION", "PROFILE", "TIME"]
    assert row.startswith(sessions.alpha) and "tools/call write_file" in row and "tools.allow/deny" in row
    none = mcpbox(sessions.home, "logs", "search", "--tool", "nothing_like_it")
    assert none.returncode == 0 and none.stdout == "no records match\n"


# ---- stats --------------------------------------------------------------------


def test_stats_per_profile_and_tool(sessions: Sessions) -> None:
    table = {(s["profile"], s["tool"]): s for s in as_json(sessions.home, "logs", "stats")["stats"]}
    assert set(table) == {
        ("alpha", "echo"),
        ("alpha", "write_file"),
        ("alpha", "rug_pull"),
        ("beta", "echo"),
        ("beta", "add"),
        ("beta", "stderr"),
    }
    echo = table[("beta", "echo")]
    assert (echo["calls"], echo["errors"], echo["blocked"]) == (2, 0, 0)
    assert 0 < echo["p50_ms"] <= echo["p95_ms"]
    denied = table[("alpha", "write_file")]
    assert (denied["calls"], denied["blocked"], denied["p50_ms"], denied["p95_ms"]) == (1, 1, None, None)
    assert table[("alpha", "rug_pull")]["errors"] == 1
    only_beta = as_json(sessions.home, "logs", "stats", "--profile", "beta")["stats"]
    assert {s["profile"] for s in only_beta} == {"beta"}
    assert as_json(sessions.home, "logs", "stats", "--since", "2999-01-01")["stats"] == []
    plain = mcpbox(sessions.home, "logs", "stats").stdout.splitlines()
    assert plain[0].split() == ["PROFILE", "TOOL", "CALLS", "ERRORS", "BLOCKED", "P50", "MS", "P95", "MS"]
    assert any(line.split()[:5] == ["alpha", "write_file", "1", "0", "1"] for line in plain[1:])
