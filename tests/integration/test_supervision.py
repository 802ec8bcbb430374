"""Every way a session ends leaves no sandbox behind, and no client hanging."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import MCPBOX, Home, RawClient, container_of, hostile_profile, labelled, read_log, wait_until_gone

pytestmark = pytest.mark.docker


def start(home: Home, raw_clients: list[RawClient], profile: str = "time", **kw: Any) -> RawClient:
    client = RawClient(profile, home, **kw)
    raw_clients.append(client)
    return client


def start_session(home: Home, raw_clients: list[RawClient], api: Any, profile: str = "time") -> tuple[RawClient, str]:
    """A running session, past its handshake, and its session id (from its sandbox's labels)."""
    client = start(home, raw_clients, profile)
    assert "result" in client.initialize()
    return client, container_of(api, client.proc.pid)["Labels"]["mcpbox.session"]


def test_client_closing_stdin_removes_the_sandbox(home: Home, docker_clean: Any, raw_clients: list[RawClient]) -> None:
    client, session = start_session(home, raw_clients, docker_clean)
    client.close_stdin()
    assert client.wait() == 0
    assert labelled(docker_clean, session) == []  # gone before mcpbox exits, not eventually


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_to_mcpbox_removes_the_sandbox(
    home: Home, docker_clean: Any, raw_clients: list[RawClient], sig: signal.Signals
) -> None:
    client, session = start_session(home, raw_clients, docker_clean)
    client.proc.send_signal(sig)
    assert client.wait() == 0
    assert labelled(docker_clean, session) == []
    (log,) = home.session_logs()
    assert any(r.get("event") == "shutdown" and sig.name in r["reason"] for r in read_log(log))


def test_a_server_that_ignores_stdin_eof_is_stopped_within_bounds(
    home: Home, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    hostile_profile(home, "stubborn", command=["--ignore-eof"])
    client, session = start_session(home, raw_clients, docker_clean, "stubborn")
    started = time.monotonic()
    client.close_stdin()
    assert client.wait(timeout=30) == 0
    assert time.monotonic() - started < 10
    assert labelled(docker_clean, session) == []


def _guardian_of(pid: int) -> psutil.Process:
    children = psutil.Process(pid).children()
    assert len(children) == 1, children
    return children[0]


def test_sigkilled_mcpbox_still_loses_its_sandbox(home: Home, docker_clean: Any, raw_clients: list[RawClient]) -> None:
    # A server that ignores EOF: only mcpbox's guardian can end it once mcpbox is gone.
    hostile_profile(home, "stubborn", command=["--ignore-eof"])
    client, session = start_session(home, raw_clients, docker_clean, "stubborn")
    client.proc.kill()
    client.wait()
    assert wait_until_gone(docker_clean, session, timeout=15) == []


def test_sigkill_of_mcpbox_and_its_guardian_is_cleaned_by_gc(
    home: Home, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    hostile_profile(home, "stubborn", command=["--ignore-eof"])
    client, session = start_session(home, raw_clients, docker_clean, "stubborn")
    guardian = _guardian_of(client.proc.pid)
    guardian.kill()
    client.proc.kill()
    client.wait()
    time.sleep(1.0)  # bounded: give the engine time; the container must still be there for gc to matter
    assert labelled(docker_clean, session), "the server ignores EOF, so only gc can remove it"
    result = subprocess.run(
        [MCPBOX, "gc", "--json"], capture_output=True, text=True, env=home.full_env(), check=True, timeout=60
    )
    assert session in [r["session"] for r in json.loads(result.stdout)]
    assert wait_until_gone(docker_clean, session) == []


def test_gc_leaves_live_sessions_alone(home: Home, docker_clean: Any, raw_clients: list[RawClient]) -> None:
    client, session = start_session(home, raw_clients, docker_clean)
    subprocess.run([MCPBOX, "gc"], capture_output=True, env=home.full_env(), check=True, timeout=60)
    assert labelled(docker_clean, session)
    assert "result" in client.request(5, "ping")
    ps = json.loads(
        subprocess.run(
            [MCPBOX, "ps", "--json"], capture_output=True, text=True, env=home.full_env(), check=True, timeout=60
        ).stdout
    )
    assert [p for p in ps if p["session"] == session and not p["orphan"]]
    client.close_stdin()
    assert client.wait() == 0


def test_server_crash_answers_pending_requests_and_exits_nonzero(
    home: Home, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    hostile_profile(home)
    client, session = start_session(home, raw_clients, docker_clean, "hostile")
    client.send({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "hang", "arguments": {}}})
    client.send({"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {"name": "crash", "arguments": {}}})
    answers = {m["id"]: m for m in (client.recv(timeout=20), client.recv(timeout=20))}
    assert set(answers) == {10, 11}
    for answer in answers.values():
        assert answer["error"]["code"] == -32011
        assert "exited with code 3" in answer["error"]["message"]
    assert client.wait() == 1
    lines = [ln for ln in client.stderr.decode().splitlines() if ln.startswith("mcpbox:") and "exited" in ln]
    assert len(lines) == 1
    assert "exited with code 3" in lines[0]
    assert wait_until_gone(docker_clean, session) == []


def test_mcpbox_stop_ends_a_session_with_errors_for_pending_requests(
    home: Home, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    hostile_profile(home)
    client, session = start_session(home, raw_clients, docker_clean, "hostile")
    client.send({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "hang", "arguments": {}}})
    time.sleep(0.5)  # bounded: let the request reach the server
    subprocess.run([MCPBOX, "stop", session[:15]], env=home.full_env(), check=True, timeout=60, capture_output=True)
    assert client.recv(timeout=15)["error"]["code"] == -32011
    assert client.wait() == 1
    assert labelled(docker_clean, session) == []


def _startup_error(home: Home, raw_clients: list[RawClient], profile: str, **kw: Any) -> tuple[dict[str, Any], str]:
    client = start(home, raw_clients, profile, **kw)
    # The SDK probes server/discover first, then falls back to initialize: both must hear why.
    discover = client.request(1, "server/discover", {"_meta": {}})
    init = client.request(
        2,
        "initialize",
        {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    )
    assert discover["error"]["message"] == init["error"]["message"]
    assert client.wait() != 0
    return init["error"], client.stderr.decode()


def test_missing_image_is_a_jsonrpc_error_naming_it(
    home: Home, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    home.write_profile("ghost", {"image": "mcpbox/does-not-exist:1"})
    error, stderr = _startup_error(home, raw_clients, "ghost")
    assert "image is not present" in error["message"]
    assert "mcpbox/does-not-exist:1" in error["message"]
    assert error["data"]["mcpbox"]["remedy"]
    assert "image is not present" in stderr
    assert labelled(docker_clean, profile="ghost") == []


def test_engine_down_is_a_jsonrpc_error(
    home: Home, docker_clean: Any, raw_clients: list[RawClient], tmp_path: Any
) -> None:
    error, _ = _startup_error(home, raw_clients, "time", env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert "cannot reach the Docker engine" in error["message"]
    assert "Start the Docker engine" in error["message"]


def test_invalid_profile_is_a_jsonrpc_error_and_starts_nothing(
    home: Home, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    home.write_profile("bad", {"image": "mcpbox/time:2026.10.19", "user": "0:0"})
    error, stderr = _startup_error(home, raw_clients, "bad")
    assert "bad.yaml: user: root" in error["message"]
    assert "user: root" in stderr
    assert labelled(docker_clean, profile="bad") == []
    # The exit code for bad input is 2.
    assert raw_clients[-1].proc.returncode == 2


def test_guardian_holds_none_of_the_clients_pipes(home: Home, docker_clean: Any, raw_clients: list[RawClient]) -> None:
    client = start(home, raw_clients)
    assert "result" in client.initialize()
    guardian = _guardian_of(client.proc.pid)
    held = {str(Path(f"/proc/{guardian.pid}/fd/{fd}").readlink()) for fd in (0, 1, 2)}
    assert held == {os.devnull}
    assert guardian.pid == os.getsid(guardian.pid), "the guardian leads its own session"
    client.close_stdin()
    assert client.wait() == 0


def test_cancelled_requests_are_not_answered_at_a_crash(
    home: Home, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    hostile_profile(home)
    client = start(home, raw_clients, "hostile")
    assert "result" in client.initialize()
    client.send({"jsonrpc": "2.0", "id": 30, "method": "tools/call", "params": {"name": "hang", "arguments": {}}})
    client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 30}})
    response = client.call_tool(31, "crash")
    assert response["error"]["code"] == -32011
    assert client.others == []  # nothing for the withdrawn request 30
    assert client.wait() == 1


def test_stdin_from_dev_null_or_a_file_ends_the_session(home: Home, docker_clean: Any, tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "file", "version": "1"},
                },
            }
        )
        + "\n"
    )
    for source in (os.devnull, str(requests)):
        with Path(source).open("rb") as stdin:
            result = subprocess.run(
                [MCPBOX, "run", "time"], stdin=stdin, capture_output=True, env=home.full_env(), timeout=60, check=False
            )
        assert result.returncode == 0, result.stderr
        if source != os.devnull:
            # An answer may or may not come before EOF ends the session; if one came, it is whole.
            for line in result.stdout.splitlines():
                assert json.loads(line)["id"] == 1
    assert wait_until_gone(docker_clean) == []


def test_client_leaving_while_the_server_does_not_read_still_ends_the_session(
    home: Home, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    # The server stops reading; the client floods it until mcpbox has to stop reading the
    # client (backpressure), then goes away. mcpbox must notice the hang-up and clean up.
    hostile_profile(home, command=["--ignore-eof"])
    client, session = start_session(home, raw_clients, docker_clean, "hostile")
    assert "result" in client.call_tool(40, "stop_reading")
    line = json.dumps({"jsonrpc": "2.0", "method": "notifications/x", "params": {"p": "y" * 60_000}}).encode() + b"\n"
    assert client.proc.stdin is not None
    fd = client.proc.stdin.fileno()
    os.set_blocking(fd, False)
    written, stalled_since, rest = 0, time.monotonic(), memoryview(line)
    while time.monotonic() - stalled_since < 1.5:  # until nothing more goes in for 1.5 s: everything is full
        try:
            n = os.write(fd, rest)  # a pipe may take part of a line: go on from there, or lines turn to garbage
        except BlockingIOError:
            time.sleep(0.05)
            continue
        written, stalled_since = written + n, time.monotonic()
        rest = rest[n:] or memoryview(line)
    assert written > 256 * 1024, "backpressure should only stop the flood once the buffers are full"
    client.proc.stdin.close()
    assert client.wait(timeout=30) == 0
    assert wait_until_gone(docker_clean, session) == []
