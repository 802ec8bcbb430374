"""Protocol tests for the hostile MCP server (tests/images/hostile/server.py).

The server normally runs inside a locked-down container; here it runs as a
plain host subprocess so its protocol behaviour can be checked without
Docker.  Two kinds of client are used:

* the official MCP SDK ``Client`` over stdio, in ``auto`` mode (probe
  ``server/discover``, fall back to ``initialize``) and ``legacy`` mode, to
  prove both eras interoperate with the reference implementation;
* a raw line-oriented client for what the SDK would hide: parse errors,
  non-JSON-RPC noise, exact line sizes, crashes and hangs.

No escape probe that could change the host runs here (the host test runner
may well be root): only the read-only identity probes are exercised.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, types
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

SERVER = Path(__file__).resolve().parents[1] / "images" / "hostile" / "server.py"
MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"
TIMEOUT = 30.0

ESCAPE_TOOLS = {
    "escape_root",
    "escape_setuid",
    "escape_capabilities",
    "escape_no_new_privs",
    "escape_write_rootfs",
    "escape_write_path",
    "escape_exec_tmp",
    "escape_network",
    "escape_raw_socket",
    "escape_unshare",
    "escape_clone_namespace",
    "escape_mount",
    "escape_ptrace",
    "escape_keyctl",
    "escape_bpf",
    "escape_perf_event_open",
    "escape_userfaultfd",
    "escape_io_uring",
    "escape_process_vm_readv",
    "escape_init_module",
    "escape_kexec",
    "escape_docker_socket",
    "escape_devices",
    "escape_fork_bomb",
    "escape_memory",
    "escape_proc_info",
}
RELAY_TOOLS = {
    "echo",
    "echo_raw",
    "stop_reading",
    "forge_response",
    "noise",
    "giant",
    "split_write",
    "notify",
    "ask_client",
    "stderr",
    "crash",
    "hang",
    "sleep",
    "bad_utf8",
    "blank_lines",
    "emit_list_changed",
    "inspect",
}


# ---------------------------------------------------------------------------
# SDK client helpers
# ---------------------------------------------------------------------------


def server_params(era: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[str(SERVER), "--era", era])


def run_async(test: Callable[[], Awaitable[None]]) -> None:
    """Run one async test body on asyncio with a hard deadline."""

    async def bounded() -> None:
        with anyio.fail_after(TIMEOUT):
            await test()

    anyio.run(bounded)


async def sampling_callback(
    context: ClientRequestContext, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    assert params.max_tokens == 10
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="sampled"), model="test-model"
    )


async def list_roots_callback(context: ClientRequestContext) -> types.ListRootsResult:
    root = types.Root.model_validate({"uri": "file:///workspace", "name": "workspace"})
    return types.ListRootsResult(roots=[root])


async def elicitation_callback(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "mcpbox"})


def text_of(result: types.CallToolResult) -> str:
    assert not result.is_error
    assert len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def flatten(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(flatten(exc))
        else:
            leaves.append(exc)
    return leaves


# ---------------------------------------------------------------------------
# Both eras through the official SDK client
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("era", "mode", "expected_version"),
    [
        ("both", "auto", MODERN),
        ("modern", "auto", MODERN),
        ("handshake", "auto", HANDSHAKE),  # discover -> -32601 -> initialize fallback
        ("handshake", "legacy", HANDSHAKE),
        ("both", "legacy", HANDSHAKE),
    ],
)
def test_sdk_connects_lists_and_calls(era: str, mode: str, expected_version: str) -> None:
    async def body() -> None:
        async with Client(server_params(era), mode=mode) as client:
            assert client.protocol_version == expected_version
            assert client.server_info is not None
            assert client.server_info.name == "hostile"
            assert client.server_capabilities.tools is not None
            assert client.server_capabilities.tools.list_changed is True

            listing = await client.list_tools()
            names = {tool.name for tool in listing.tools}
            assert names == ESCAPE_TOOLS | RELAY_TOOLS
            for tool in listing.tools:
                assert tool.input_schema["type"] == "object"
                assert isinstance(tool.input_schema["properties"], dict)

            result = await client.call_tool("echo", {"text": "héllo \u2603"})
            assert text_of(result) == "héllo \u2603"

    run_async(body)


def test_legacy_client_is_refused_by_modern_only_server() -> None:
    async def body() -> None:
        with pytest.raises(BaseExceptionGroup) as caught:
            async with Client(server_params("modern"), mode="legacy"):
                pytest.fail("the initialize handshake should have been refused")
        errors = [exc for exc in flatten(caught.value) if isinstance(exc, MCPError)]
        assert [error.code for error in errors] == [-32022]
        assert errors[0].error.data == {"supported": [MODERN], "requested": HANDSHAKE}

    run_async(body)


@pytest.mark.parametrize(
    ("era", "mode", "via"),
    [
        ("both", "auto", "input_required"),  # 2026-07-28: no server-to-client requests
        ("handshake", "auto", "rpc"),
        ("handshake", "legacy", "rpc"),
    ],
)
def test_ask_client_answers_come_back(era: str, mode: str, via: str) -> None:
    async def body() -> None:
        async with Client(
            server_params(era),
            mode=mode,
            sampling_callback=sampling_callback,
            list_roots_callback=list_roots_callback,
            elicitation_callback=elicitation_callback,
        ) as client:
            result = await client.call_tool("ask_client", {"kinds": ["ping", "roots", "sampling", "elicitation"]})
            report = json.loads(text_of(result))
            assert report["via"] == via
            assert report["timed_out"] is False
            answers = report["answers"]
            assert answers["roots"]["result"]["roots"][0]["uri"] == "file:///workspace"
            assert answers["sampling"]["result"]["content"]["text"] == "sampled"
            assert answers["sampling"]["result"]["model"] == "test-model"
            assert answers["elicitation"]["result"] == {"action": "accept", "content": {"name": "mcpbox"}}
            if via == "rpc":
                assert answers["ping"] == {"result": {}}
            else:
                assert "skipped" in answers["ping"]

    run_async(body)


def test_server_requests_on_a_modern_connection_are_refused_by_the_sdk() -> None:
    """via=rpc forces JSON-RPC server->client requests the 2026 era forbids."""

    async def body() -> None:
        async with Client(server_params("both"), list_roots_callback=list_roots_callback) as client:
            assert client.protocol_version == MODERN
            result = await client.call_tool("ask_client", {"kinds": ["roots"], "via": "rpc"})
            answer = json.loads(text_of(result))["answers"]["roots"]
            assert answer["error"]["code"] == -32601

    run_async(body)


@pytest.mark.parametrize(("era", "mode"), [("both", "auto"), ("handshake", "legacy")])
def test_notify_delivers_log_messages_and_progress(era: str, mode: str) -> None:
    async def body() -> None:
        messages: list[Any] = []
        progress_seen: list[float] = []

        async def on_log(params: types.LoggingMessageNotificationParams) -> None:
            messages.append(params.data)

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            progress_seen.append(progress)

        async with Client(server_params(era), mode=mode, logging_callback=on_log) as client:
            result = await client.call_tool("notify", {"count": 3}, progress_callback=on_progress)
            assert text_of(result).startswith("sent 3 notifications")
            # Notifications are dispatched on their own tasks; give them a beat.
            with anyio.fail_after(5):
                while len(messages) < 3 or len(progress_seen) < 3:
                    await anyio.sleep(0.01)
        assert messages == ["n=0", "n=1", "n=2"]
        assert progress_seen == [1, 2, 3]

    run_async(body)


def test_identity_probes_report_json_findings() -> None:
    """Read-only probes only: the host runner may be root, so no value is asserted."""

    async def body() -> None:
        async with Client(server_params("both")) as client:
            for name in ("escape_root", "escape_capabilities", "escape_no_new_privs"):
                finding = json.loads(text_of(await client.call_tool(name, {})))
                assert set(finding) == {"escaped", "detail"}
                assert isinstance(finding["escaped"], bool)
                assert isinstance(finding["detail"], str)

    run_async(body)


# ---------------------------------------------------------------------------
# Raw wire behaviour
# ---------------------------------------------------------------------------


class RawServer:
    """The server as a subprocess, spoken to line by line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._buffer = b""
        self._next_id = 100

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(json.dumps(message).encode() + b"\n")

    def read_line(self, timeout: float = 10.0) -> bytes:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(remaining, 0))
            if not ready:
                raise TimeoutError("no line from the server")
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            if not chunk:
                raise EOFError("server closed stdout")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def read_message(self, timeout: float = 10.0) -> dict[str, Any]:
        message = json.loads(self.read_line(timeout))
        assert isinstance(message, dict)
        return message

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        response = self.read_message()
        assert response["id"] == self._next_id
        return response

    def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.request("tools/call", {"name": name, "arguments": arguments or {}})

    def close(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        if not self.proc.stdin.closed:
            with suppress(BrokenPipeError):  # the server may already be gone
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


@contextmanager
def raw_server(*args: str) -> Iterator[RawServer]:
    server = RawServer(*args)
    try:
        yield server
    finally:
        server.close()


def tool_text(response: dict[str, Any]) -> str:
    result = response["result"]
    assert result["isError"] is False
    text = result["content"][0]["text"]
    assert isinstance(text, str)
    return text


def modern_meta(version: str = MODERN) -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
    }


def test_malformed_input_gets_jsonrpc_errors_and_the_server_survives() -> None:
    with raw_server() as server:
        server.send_raw(b"this is not json\n")
        assert server.read_message() == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32700, "message": "Parse error"},
        }
        server.send_raw(b"\xff\xfe\n")
        assert server.read_message()["error"]["code"] == -32700
        server.send_raw(b"[1, 2]\n")
        batch = server.read_message()
        assert batch["id"] is None
        assert batch["error"]["code"] == -32600
        server.send_raw(b"\n   \n")  # blank lines are ignored, not answered
        assert server.request("no/such/method")["error"]["code"] == -32601
        assert server.request("ping") == {"jsonrpc": "2.0", "id": server._next_id, "result": {}}


def test_handshake_era_answers_initialize_and_rejects_discover() -> None:
    with raw_server("--era", "handshake") as server:
        init = server.request(
            "initialize",
            {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        )["result"]
        assert init["protocolVersion"] == "2024-11-05"
        assert init["serverInfo"] == {"name": "hostile", "version": "1.0"}
        assert init["capabilities"] == {"tools": {"listChanged": True}, "logging": {}}
        server.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        discover = server.request("server/discover", {"_meta": modern_meta()})
        assert discover["error"]["code"] == -32601


def test_unknown_handshake_version_gets_the_latest() -> None:
    with raw_server() as server:
        init = server.request("initialize", {"protocolVersion": "1999-01-01", "capabilities": {}})
        assert init["result"]["protocolVersion"] == HANDSHAKE


def test_modern_era_discover_shape_and_version_errors() -> None:
    with raw_server("--era", "modern") as server:
        discover = server.request("server/discover", {"_meta": modern_meta()})["result"]
        assert discover["supportedVersions"] == [MODERN]
        assert discover["resultType"] == "complete"
        assert discover["ttlMs"] == 0
        assert discover["cacheScope"] == "private"
        assert discover["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "hostile"

        unsupported = server.request("tools/list", {"_meta": modern_meta("2099-01-01")})["error"]
        assert unsupported["code"] == -32022
        assert unsupported["data"] == {"supported": [MODERN], "requested": "2099-01-01"}

        init = server.request("initialize", {"protocolVersion": HANDSHAKE, "capabilities": {}})["error"]
        assert init["code"] == -32022
        assert init["data"] == {"supported": [MODERN], "requested": HANDSHAKE}

        # No initialize needed: every modern request stands on its own.
        listing = server.request("tools/list", {"_meta": modern_meta()})["result"]
        assert listing["resultType"] == "complete"
        assert {tool["name"] for tool in listing["tools"]} == ESCAPE_TOOLS | RELAY_TOOLS
        call = server.request("tools/call", {"name": "echo", "arguments": {"text": "x"}, "_meta": modern_meta()})
        assert call["result"] == {
            "content": [{"type": "text", "text": "x"}],
            "isError": False,
            "resultType": "complete",
        }


def test_junk_on_stdout_precedes_the_response() -> None:
    with raw_server() as server:
        server.send(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "noise", "arguments": {"lines": 3}}}
        )
        assert [server.read_line() for _ in range(3)] == [b"debug: hello 0", b"[1,2]", b'{"foo":1}']
        assert tool_text(server.read_message()) == "emitted 3 noise lines"

        server.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "bad_utf8"}})
        assert server.read_line() == b"\xff\xfe garbage"
        assert server.read_message()["id"] == 2

        server.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "blank_lines"}})
        line = server.read_line()
        while not line.strip():
            line = server.read_line()
        assert json.loads(line)["id"] == 3


def test_giant_and_split_responses() -> None:
    with raw_server() as server:
        server.send(
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {"name": "giant", "arguments": {"bytes": 300_000}},
            }
        )
        line = server.read_line()
        assert len(line) + 1 == 300_000  # the newline is part of the line's size
        assert json.loads(line)["id"] == 7

        assert tool_text(server.call_tool("split_write", {"chunks": 7})) == "written in 7 chunks"


def test_notifications_come_before_the_response() -> None:
    with raw_server() as server:
        server.send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "notify", "arguments": {"count": 2}, "_meta": {"progressToken": "tok"}},
            }
        )
        methods = [server.read_message()["method"] for _ in range(4)]
        assert methods == ["notifications/message", "notifications/progress"] * 2
        assert server.read_message()["id"] == 1

        server.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "emit_list_changed"}})
        assert server.read_message() == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
        assert server.read_message()["id"] == 2


def test_hang_and_sleep_do_not_block_other_requests() -> None:
    with raw_server() as server:
        server.send({"jsonrpc": "2.0", "id": "h", "method": "tools/call", "params": {"name": "hang"}})
        server.send(
            {
                "jsonrpc": "2.0",
                "id": "s",
                "method": "tools/call",
                "params": {"name": "sleep", "arguments": {"seconds": 0.5}},
            }
        )
        server.send({"jsonrpc": "2.0", "id": "p", "method": "ping"})
        assert server.read_message()["id"] == "p"
        assert server.read_message(timeout=5)["id"] == "s"
        with pytest.raises(TimeoutError):
            server.read_line(timeout=0.5)


def test_rpc_ask_client_waits_for_out_of_order_answers() -> None:
    with raw_server() as server:
        server.send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "ask_client", "arguments": {"kinds": ["ping", "roots"]}},
            }
        )
        first, second = server.read_message(), server.read_message()
        assert (first["id"], first["method"]) == ("srv-1", "ping")
        assert (second["id"], second["method"]) == ("srv-2", "roots/list")
        server.send({"jsonrpc": "2.0", "id": "srv-2", "result": {"roots": []}})
        assert server.request("ping")["result"] == {}  # still serving while it waits
        server.send({"jsonrpc": "2.0", "id": "srv-1", "error": {"code": -1, "message": "no"}})
        answers = json.loads(tool_text(server.read_message()))["answers"]
        assert answers == {"ping": {"error": {"code": -1, "message": "no"}}, "roots": {"result": {"roots": []}}}


def test_crash_exits_without_answering() -> None:
    with raw_server() as server:
        server.send(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "crash", "arguments": {"code": 7}}}
        )
        with pytest.raises(EOFError):
            server.read_line()
        assert server.proc.wait(timeout=10) == 7


def test_bad_arguments_are_invalid_params() -> None:
    with raw_server() as server:
        assert server.call_tool("echo", {"text": 5})["error"]["code"] == -32602
        assert server.call_tool("no_such_tool")["error"]["code"] == -32602
        assert server.call_tool("escape_network", {"host": "example.com"})["error"]["code"] == -32602
