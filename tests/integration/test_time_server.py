"""The real mcp-server-time, sandboxed, driven by the official MCP SDK client through `mcpbox run`."""

from __future__ import annotations

import json
import stat
from typing import Any

import anyio
import pytest

from tests.conftest import Home, RawClient, container_of, read_log, sdk_client

pytestmark = pytest.mark.docker


async def _list_and_call(home: Home, mode: str) -> tuple[str, list[str], dict[str, Any]]:
    with anyio.fail_after(60):
        async with sdk_client("time", home, mode=mode) as client:
            tools = await client.list_tools()
            result = await client.call_tool("get_current_time", {"timezone": "UTC"})
            return client.session.protocol_version, [t.name for t in tools.tools], json.loads(result.content[0].text)


@pytest.mark.parametrize(("mode", "era"), [("auto", "2026-07-28"), ("legacy", "2025-11-25")])
def test_sdk_client_lists_and_calls_tools_through_the_sandbox(
    home: Home, docker_clean: Any, mode: str, era: str
) -> None:
    version, names, answer = anyio.run(_list_and_call, home, mode)
    assert version == era
    assert {"get_current_time", "convert_time"} <= set(names)
    assert answer["timezone"] == "UTC"
    assert answer["datetime"].endswith("+00:00")


def test_session_log_records_each_message_before_and_after(home: Home, docker_clean: Any) -> None:
    anyio.run(_list_and_call, home, "legacy")
    (log_path,) = home.session_logs()
    assert stat.S_IMODE(log_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_path.parent.stat().st_mode) == 0o700
    records = read_log(log_path)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    # Seals (or the note that there are none) come last, as the log is closed: the session's own events first.
    events = [r["event"] for r in records if r["dir"] == "event" and r["event"] not in ("seal", "unsigned")]
    assert events[0] == "start"
    assert "started" in events
    assert "shutdown" in events
    assert events[-3:] == ["relayed", "removed", "end"]
    relayed = next(r for r in records if r.get("event") == "relayed")
    assert relayed["to_server"] >= 3
    assert relayed["to_client"] >= 2
    methods = [(r["dir"], r.get("method")) for r in records if r.get("kind") == "request"]
    assert ("c2s", "initialize") in methods
    assert ("c2s", "tools/call") in methods
    call = next(r for r in records if r.get("method") == "tools/call")
    assert call["msg"]["params"]["name"] == "get_current_time"
    answers = [r for r in records if r["dir"] == "s2c" and r.get("id") == call["id"]]
    assert answers
    assert "datetime" in json.dumps(answers[0]["msg"])


def test_docker_inspect_shows_every_lockdown_setting(
    home: Home, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    client = RawClient("time", home)
    raw_clients.append(client)
    assert "result" in client.initialize()
    row = container_of(docker_clean, client.proc.pid)
    info = docker_clean.inspect_container(row["Id"])
    host, config = info["HostConfig"], info["Config"]
    seccomp = [o for o in host["SecurityOpt"] if o.startswith("seccomp=")]
    assert seccomp
    assert "unconfined" not in seccomp[0]
    assert json.loads(seccomp[0].removeprefix("seccomp="))["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "no-new-privileges:true" in host["SecurityOpt"] or "no-new-privileges" in host["SecurityOpt"]
    assert host["CapDrop"] == ["ALL"]
    assert not host.get("CapAdd")
    assert host["Privileged"] is False
    assert host["ReadonlyRootfs"] is True
    assert host["NetworkMode"] == "none"
    assert config["User"] == "65534:65534"
    assert host["Memory"] == 512 * 1024 * 1024
    assert host["MemorySwap"] == host["Memory"]
    assert host["PidsLimit"] == 128
    assert host["NanoCpus"] == 1_000_000_000
    assert host["Init"] is True
    assert host["IpcMode"] == "private"
    assert "noexec" in host["Tmpfs"]["/tmp"]
    assert not host.get("Devices")
    assert not host.get("Binds")
    assert not info.get("Mounts") or all(m["Destination"] == "/tmp" for m in info["Mounts"])
    assert host["LogConfig"]["Type"] == "none"
    assert config["Labels"]["mcpbox.profile"] == "time"
    assert config["Labels"]["mcpbox.parent_pid"] == str(client.proc.pid)
    assert config["Labels"]["mcpbox.session"]
    client.close_stdin()
    assert client.wait() == 0
