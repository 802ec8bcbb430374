"""The relay, end to end through a sandboxed hostile server: framing, fidelity, eras, misbehaviour."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import anyio
import pytest

from tests.conftest import Home, RawClient, hostile_profile, read_log, sdk_client

pytestmark = pytest.mark.docker

LIMIT = 64 * 1024


@pytest.fixture
def hostile(home: Home, docker_clean: Any, raw_clients: list[RawClient]) -> RawClient:
    # Sampling needs a person's approval by default (policy.server_requests); these tests are about relaying it.
    hostile_profile(home, policy={"max_message_bytes": LIMIT, "server_requests": {"sampling": "allow"}})
    client = RawClient("hostile", home)
    raw_clients.append(client)
    assert "result" in client.initialize()
    return client


def text_of(response: dict[str, Any]) -> str:
    result: str = response["result"]["content"][0]["text"]
    return result


def test_client_bytes_reach_the_server_unchanged(hostile: RawClient) -> None:
    line = (
        b'{ "params" : {"arguments":{ } ,"name":"echo_raw"},"method":"tools/call",'
        b'  "jsonrpc":"2.0", "id" : 7 , "x-extra": "caf\\u00e9 \xc3\xa9"}'
    )
    hostile.send_raw(line + b"\n")
    response = hostile.recv()
    assert base64.b64decode(text_of(response)) == line


def test_client_split_writes_are_reassembled(hostile: RawClient) -> None:
    line = (
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 8,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "split"}},
            }
        ).encode()
        + b"\n"
    )
    for i in range(0, len(line), 7):
        hostile.send_raw(line[i : i + 7])
        time.sleep(0.002)
    assert text_of(hostile.recv()) == "split"


def test_server_split_writes_are_reassembled(hostile: RawClient) -> None:
    assert "result" in hostile.call_tool(9, "split_write", {"chunks": 8})


def test_server_noise_on_stdout_is_logged_not_forwarded(hostile: RawClient, home: Home) -> None:
    response = hostile.call_tool(10, "noise", {"lines": 12})
    assert "result" in response
    assert hostile.others == []  # nothing but the response reached the client
    for tool, ident in (("bad_utf8", 11), ("blank_lines", 12)):
        assert "result" in hostile.call_tool(ident, tool)
        assert hostile.others == []
    hostile.close_stdin()
    hostile.wait()
    (log,) = home.session_logs()
    dropped = [r for r in read_log(log) if r["dir"] == "s2c" and r["verdict"] == "drop"]
    reasons = " ".join(r["reason"] for r in dropped)
    assert len(dropped) >= 13
    assert "not valid JSON" in reasons
    assert "not valid UTF-8" in reasons
    assert any(r.get("text", "").startswith("debug: hello") for r in dropped)


def test_interleaved_notifications_arrive_in_order_before_the_response(hostile: RawClient) -> None:
    response = hostile.request(
        13, "tools/call", {"name": "notify", "arguments": {"count": 50}, "_meta": {"progressToken": "p1"}}
    )
    assert "result" in response
    logs = [m["params"]["data"] for m in hostile.others if m["method"] == "notifications/message"]
    assert logs == [f"n={i}" for i in range(50)]


def test_pipelined_requests_keep_their_order(hostile: RawClient) -> None:
    for i in range(200):
        hostile.send({"jsonrpc": "2.0", "id": 1000 + i, "method": "ping"})
    assert [hostile.recv()["id"] for _ in range(200)] == [1000 + i for i in range(200)]


def test_giant_server_response_is_dropped_and_its_request_answered_with_an_error(hostile: RawClient) -> None:
    response = hostile.call_tool(14, "giant", {"bytes": 10 * LIMIT})
    assert response["error"]["code"] == -32012
    assert "max_message_bytes" in response["error"]["message"]
    # Just under the cap passes intact, and the session goes on.
    ok = hostile.call_tool(15, "giant", {"bytes": LIMIT - 100})
    assert len(text_of(ok)) > LIMIT - 300


def test_giant_client_request_is_refused_without_reaching_the_server(hostile: RawClient, home: Home) -> None:
    big = "x" * (50 * 1024 * 1024)  # 50 MiB: far past the cap, never held whole by mcpbox
    response = hostile.call_tool(16, "echo", {"text": big})
    assert response["error"]["code"] == -32012
    assert response["id"] == 16
    assert text_of(hostile.call_tool(17, "echo", {"text": "still here"})) == "still here"
    hostile.close_stdin()
    hostile.wait()
    (log,) = home.session_logs()
    records = read_log(log)
    forwarded = [r for r in records if r["dir"] == "c2s" and r.get("id") == 16 and r["verdict"] == "forward"]
    assert forwarded == []
    assert max(r.get("size", 0) for r in records) < 2 * LIMIT


def test_forged_response_to_an_unsent_request_is_dropped(hostile: RawClient) -> None:
    response = hostile.call_tool(18, "forge_response", {"id": 19})
    assert "result" in response
    assert hostile.others == []
    # When the client later uses that id, it gets the real answer, not the forgery.
    assert text_of(hostile.call_tool(19, "echo", {"text": "real"})) == "real"


def test_null_id_result_is_dropped_but_null_id_error_passes(hostile: RawClient) -> None:
    # A result with a null id answers nothing; an error with a null id reports an unreadable request.
    assert "result" in hostile.call_tool(24, "forge_response", {"id": None})
    assert hostile.others == []


def test_client_garbage_gets_a_parse_error_and_the_session_continues(hostile: RawClient) -> None:
    hostile.send_raw(b"this is not json\n")
    error = hostile.recv()
    assert error["error"]["code"] == -32700
    assert error["id"] is None
    hostile.send_raw(b'{"jsonrpc":"2.0","id":20,"method":7}\n')
    assert hostile.recv()["error"]["code"] == -32600
    assert "result" in hostile.request(21, "ping")


def test_server_stderr_reaches_mcpbox_stderr_and_the_log(hostile: RawClient, home: Home) -> None:
    assert "result" in hostile.call_tool(22, "stderr", {"lines": 5})
    hostile.close_stdin()
    hostile.wait()
    assert hostile.stderr.count(b"\n") >= 5
    (log,) = home.session_logs()
    assert len([r for r in read_log(log) if r["dir"] == "stderr"]) >= 5


def test_server_initiated_requests_round_trip(hostile: RawClient) -> None:
    hostile.send(
        {
            "jsonrpc": "2.0",
            "id": 23,
            "method": "tools/call",
            "params": {
                "name": "ask_client",
                "arguments": {"kinds": ["ping", "roots", "sampling", "elicitation"], "via": "rpc"},
            },
        }
    )
    answered: set[str] = set()
    while True:
        message = hostile.recv()
        if message.get("id") == 23:
            break
        method = message["method"]
        answered.add(method)
        results: dict[str, dict[str, Any]] = {
            "ping": {},
            "roots/list": {"roots": [{"uri": "file:///r", "name": "r"}]},
            "sampling/createMessage": {"role": "assistant", "content": {"type": "text", "text": "hi"}, "model": "m"},
            "elicitation/create": {"action": "accept", "content": {"name": "n"}},
        }
        hostile.send({"jsonrpc": "2.0", "id": message["id"], "result": results[method]})
    assert answered == {"ping", "roots/list", "sampling/createMessage", "elicitation/create"}
    answers = json.loads(text_of(message))["answers"]
    assert all("result" in answers[k] for k in ("ping", "roots", "sampling", "elicitation"))


async def _sdk_round_trip(home: Home, mode: str) -> tuple[str, dict[str, Any]]:
    from mcp_types import (  # the official SDK's own types
        CreateMessageResult,
        ElicitResult,
        ListRootsResult,
        Root,
        TextContent,
    )

    async def sampling(_ctx: Any, _params: Any) -> Any:
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="sampled"), model="m")

    async def roots(_ctx: Any) -> Any:
        return ListRootsResult(roots=[Root.model_validate({"uri": "file:///work", "name": "work"})])

    async def elicit(_ctx: Any, _params: Any) -> Any:
        return ElicitResult(action="accept", content={"name": "elicited"})

    with anyio.fail_after(60):
        async with sdk_client(
            "hostile",
            home,
            mode=mode,
            sampling_callback=sampling,
            list_roots_callback=roots,
            elicitation_callback=elicit,
        ) as client:
            result = await client.call_tool("ask_client", {"kinds": ["roots", "sampling", "elicitation"]})
            return client.session.protocol_version, json.loads(result.content[0].text)


@pytest.mark.parametrize(
    ("era", "mode", "expected"),
    [
        ("both", "auto", "2026-07-28"),
        ("modern", "auto", "2026-07-28"),
        ("handshake", "auto", "2025-11-25"),  # the discover probe falls back to initialize through mcpbox
        ("handshake", "legacy", "2025-11-25"),
    ],
)
def test_sdk_client_in_either_era_with_server_requests(
    home: Home, docker_clean: Any, era: str, mode: str, expected: str
) -> None:
    hostile_profile(home, command=["--era", era], policy={"server_requests": {"sampling": "allow"}})
    version, report = anyio.run(_sdk_round_trip, home, mode)
    assert version == expected
    answers = report["answers"]
    assert answers["roots"]["result"]["roots"][0]["name"] == "work"
    assert "sampled" in json.dumps(answers["sampling"])
    assert "elicited" in json.dumps(answers["elicitation"])
    # Handshake era: real server->client JSON-RPC requests; 2026-07-28: input_required results.
    assert report["via"] == ("rpc" if expected == "2025-11-25" else "input_required")
