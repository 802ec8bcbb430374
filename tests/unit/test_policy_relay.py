"""The relay with the policy engine attached, driven in-process.

The ends are byte sinks and the container's output is fed as Docker's
multiplexed stream; the Relay, framing, parsing, policy engine and session
log are the real ones. What a rule blocks never reaches the other side as
bytes; what it rewrites arrives re-encoded, with the original in the log; what
no rule touches arrives as the exact bytes sent; every decision in the log
names its rule.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcpbox import jsonrpc
from mcpbox.errors import RPC_CALL_TIMEOUT
from mcpbox.jsonrpc import Message
from mcpbox.logs.writer import SessionLog
from mcpbox.policy.decision import Verdict
from mcpbox.policy.engine import CAPABILITIES_META, PROTOCOL_META, Engine
from mcpbox.policy.pins import PinStore
from mcpbox.profile.load import parse_profile
from mcpbox.relay.pump import Relay
from tests.unit.test_policy_engine import ECHO, PROPERTY_PROFILE, SEND_EMAIL, WRITE_FILE, Sent, Traffic, opening, steps
from tests.unit.test_policy_engine import Clock as EngineClock
from tests.unit.test_policy_engine import Timer as EngineTimer

TOOLS = [ECHO, WRITE_FILE, SEND_EMAIL]
ANSI = "\x1b[31mred\x1b[0m \x1b]0;title\x07"
GITHUB_TOKEN = "ghp_EXAMPLE0123456789abcdefghijklmnopqrs"  # noqa: S105 - a documented fake
MODERN_META = {PROTOCOL_META: "2026-07-28", CAPABILITIES_META: {"elicitation": {}}}


class Sink:
    """A byte sink standing in for a pipe."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False

    def write(self, data: bytes) -> None:
        self.data += data

    def write_eof(self) -> None:
        self.eof = True

    def buffered(self) -> int:
        return 0  # drained at once: mcpbox's own replies to the server are never held back here

    def lines(self) -> list[bytes]:
        return [line + b"\n" for line in bytes(self.data).split(b"\n")[:-1]]

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


@dataclass
class Timer:
    delay: float
    action: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def frame(stream: int, payload: bytes) -> bytes:
    """One chunk of Docker's multiplexed attach stream."""
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def line(obj: dict[str, Any]) -> bytes:
    """As a client or server writes it: spaces after separators, unlike mcpbox's compact re-encoding."""
    return json.dumps(obj).encode() + b"\n"


_logs = itertools.count()


class Rig:
    def __init__(self, tmp: Path, profile: dict[str, Any]) -> None:
        self.client, self.server, self.stderr = Sink(), Sink(), Sink()
        self.log_path = tmp / f"session-{next(_logs)}.jsonl"
        self.relay = Relay(
            log=SessionLog(self.log_path),
            client=self.client,  # type: ignore[arg-type]
            server=self.server,  # type: ignore[arg-type]
            stderr=self.stderr,  # type: ignore[arg-type]
            max_bytes=1 << 20,
        )
        self.timers: list[Timer] = []
        self.relay.schedule = self._schedule
        self.clock = Clock()
        prof = parse_profile({"name": "t", "image": "mcpbox/test:1", **profile})
        self.engine = Engine(prof, "test-session", self.relay, pins=PinStore(prof.name, tmp / "pins"), clock=self.clock)
        self.relay.policy = self.engine

    def _schedule(self, delay: float, action: Callable[[], None]) -> Callable[[], None]:
        timer = Timer(delay, action)
        self.timers.append(timer)
        return timer.cancel

    def from_client(self, obj: dict[str, Any]) -> bytes:
        data = line(obj)
        self.relay.feed_client(data)
        return data

    def from_server(self, obj: dict[str, Any]) -> bytes:
        data = line(obj)
        self.relay.feed_server(frame(1, data))
        return data

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.log_path.read_bytes().split(b"\n") if raw]

    def initialize(self, *, elicitation: bool) -> None:
        capabilities: dict[str, Any] = {"elicitation": {}} if elicitation else {}
        params = {"protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {}}
        self.from_client({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
        self.from_server({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-11-25", "capabilities": {}}})

    def list_tools(self, tools: list[dict[str, Any]], ident: str = "list") -> bytes:
        self.from_client({"jsonrpc": "2.0", "id": ident, "method": "tools/list", "params": {}})
        return self.from_server({"jsonrpc": "2.0", "id": ident, "result": {"tools": tools}})


def call(ident: Any, name: str, arguments: dict[str, Any], *, modern: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if modern:
        params["_meta"] = MODERN_META
    return {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": params}


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))


def assert_every_decision_names_its_rule(records: list[dict[str, Any]]) -> None:
    for record in records:
        if record["dir"] in ("c2s", "s2c") and record.get("verdict", "forward") != "forward":
            assert record.get("rule"), record


# ---- examples -----------------------------------------------------------------


def test_a_blocked_call_never_reaches_the_server(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"tools": {"deny": ["write_*"]}})
    rig.list_tools(TOOLS)
    before = bytes(rig.server.data)
    sent = rig.from_client(call(7, "write_file", {"path": "/etc/passwd", "content": "x"}))
    assert bytes(rig.server.data) == before  # not one byte more
    assert sent not in rig.server.lines()
    answer = rig.client.messages()[-1]
    assert answer["id"] == 7 and answer["result"]["isError"] is True
    assert "write_file" in answer["result"]["content"][0]["text"]
    records = rig.records()
    [block] = [r for r in records if r.get("verdict") == "block"]
    assert block["dir"] == "c2s" and block["rule"] == "tools.allow/deny" and block["id"] == 7
    assert block["msg"] == json.loads(sent)  # the log keeps what the client sent
    [reply] = [r for r in records if r.get("verdict") == "mcpbox"]
    assert reply["dir"] == "s2c" and reply["rule"] == "tools.allow/deny" and reply["msg"] == answer
    assert_every_decision_names_its_rule(records)


def test_a_rewritten_listing_reaches_the_client_re_encoded_and_the_log_has_both(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"tools": {"deny": ["write_*"]}})
    original = rig.list_tools(TOOLS)
    expected = {"jsonrpc": "2.0", "id": "list", "result": {"tools": [ECHO, SEND_EMAIL]}}
    assert rig.client.lines() == [jsonrpc.encode(expected)]  # re-encoded: compact, ASCII-safe
    assert original not in rig.client.lines()
    records = [r for r in rig.records() if r["dir"] == "s2c"]
    assert [r["verdict"] for r in records] == ["rewrite", "sent"]
    rewrite, sent = records
    assert rewrite["msg"] == json.loads(original) and rewrite["rule"] == "pinning"
    assert "write_file" in rewrite["reason"]
    assert sent["msg"] == expected and sent["rule"] == "pinning"
    assert sent["size"] == len(jsonrpc.encode(expected))
    assert_every_decision_names_its_rule(rig.records())


def test_a_listing_no_rule_touches_arrives_as_the_bytes_sent(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {})
    request = rig.from_client({"jsonrpc": "2.0", "id": "list", "method": "tools/list", "params": {}})
    assert rig.server.lines() == [request]
    answer = rig.from_server({"jsonrpc": "2.0", "id": "list", "result": {"tools": TOOLS}})
    assert rig.client.lines() == [answer]
    assert {r["verdict"] for r in rig.records() if r["dir"] != "event"} == {"forward"}


def test_output_is_cleaned_on_its_way_to_the_client(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {})
    rig.list_tools(TOOLS)
    rig.from_client(call(1, "echo", {"text": "x"}))
    dirty = rig.from_server(
        {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": f"{ANSI} {GITHUB_TOKEN}"}]}}
    )
    last = rig.client.lines()[-1]
    assert last != dirty and b"\\u001b" not in last and GITHUB_TOKEN.encode() not in last
    assert json.loads(last)["id"] == 1
    rewrite = [r for r in rig.records() if r.get("verdict") == "rewrite"]
    assert rewrite and rewrite[-1]["rule"] == "output"
    assert_every_decision_names_its_rule(rig.records())


def test_a_denied_server_request_is_answered_to_the_server_only(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"policy": {"server_requests": {"sampling": "deny"}}})
    sampling = {"jsonrpc": "2.0", "id": 3, "method": "sampling/createMessage", "params": {"messages": []}}
    sent = rig.from_server(sampling)
    assert rig.client.lines() == []
    assert sent not in rig.client.lines()
    [error] = rig.server.messages()
    assert error["id"] == 3 and error["error"]["data"]["mcpbox"]["rule"] == "server_requests"
    assert_every_decision_names_its_rule(rig.records())


def test_a_handshake_approval_releases_the_held_call_and_hides_the_question(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"tools": {"approve": ["send_*"]}})
    rig.initialize(elicitation=True)
    rig.list_tools(TOOLS)
    held = call(9, "send_email", {"to": "boss@example.com", "body": "I quit"})
    sent = rig.from_client(held)
    assert sent not in rig.server.lines()
    question = rig.client.messages()[-1]
    assert question["method"] == "elicitation/create" and question["id"].startswith("mcpbox-approval-")
    answer = rig.from_client(
        {"jsonrpc": "2.0", "id": question["id"], "result": {"action": "accept", "content": {"approve": True}}}
    )
    assert answer not in rig.server.lines()  # the server never sees question or answer
    assert rig.server.lines()[-1] == sent  # exactly what was held: the very bytes, once
    assert sum(json.loads(x).get("id") == 9 for x in rig.server.lines()) == 1
    # The server's answer reaches the client as the answer to its call.
    result = rig.from_server({"jsonrpc": "2.0", "id": 9, "result": {"content": [{"type": "text", "text": "sent"}]}})
    assert rig.client.lines()[-1] == result
    records = rig.records()
    assert [r["rule"] for r in records if r.get("verdict") == "released"] == ["approvals"]
    assert_every_decision_names_its_rule(records)


def test_a_late_answer_to_mcpboxs_question_never_reaches_the_server(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"tools": {"approve": ["send_*"]}})
    rig.initialize(elicitation=True)
    rig.list_tools(TOOLS)
    rig.from_client(call(9, "send_email", {"to": "boss@example.com", "body": "I quit"}))
    question = rig.client.messages()[-1]
    next(t for t in rig.timers if t.delay == 60 and not t.cancelled).action()  # policy.approval_timeout
    assert rig.client.messages()[-1]["result"]["isError"] is True
    rig.from_client(
        {"jsonrpc": "2.0", "id": question["id"], "result": {"action": "accept", "content": {"approve": True}}}
    )
    assert question["id"].encode() not in bytes(rig.server.data)


def test_a_modern_approval_goes_through_the_client_and_back(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"tools": {"approve": ["send_*"]}})
    rig.list_tools(TOOLS)
    first = rig.from_client(call(4, "send_email", {"to": "a@example.com", "body": "hi"}, modern=True))
    assert first not in rig.server.lines()
    asked = rig.client.messages()[-1]
    assert asked["id"] == 4 and asked["result"]["resultType"] == "input_required"
    state = asked["result"]["requestState"]
    retry = call(5, "send_email", {"to": "a@example.com", "body": "hi"}, modern=True)
    retry["params"]["requestState"] = state
    retry["params"]["inputResponses"] = {"mcpbox_approval": {"action": "accept", "content": {"approve": True}}}
    rig.from_client(retry)
    forwarded = json.loads(rig.server.lines()[-1])
    assert forwarded == call(5, "send_email", {"to": "a@example.com", "body": "hi"}, modern=True)
    assert state.encode() not in bytes(rig.server.data)
    assert [r["verdict"] for r in rig.records() if r["dir"] == "c2s" and r.get("id") in (4, 5)] == [
        "ask", "rewrite", "sent",
    ]  # fmt: skip
    assert_every_decision_names_its_rule(rig.records())


def test_a_call_past_its_timeout_is_cancelled_and_its_late_answer_dropped(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"policy": {"call_timeout": 5}})
    rig.list_tools(TOOLS)
    rig.from_client(call(1, "echo", {"text": "x"}))
    [timer] = [t for t in rig.timers if t.delay == 5 and not t.cancelled]
    timer.action()
    error = rig.client.messages()[-1]
    assert error["id"] == 1 and error["error"]["code"] == RPC_CALL_TIMEOUT
    cancel = rig.server.messages()[-1]
    assert cancel["method"] == "notifications/cancelled" and cancel["params"]["requestId"] == 1
    late = rig.from_server({"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
    assert late not in rig.client.lines()
    assert [m.get("id") for m in rig.client.messages()].count(1) == 1


def test_the_late_answers_drop_record_names_a_rule(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"policy": {"call_timeout": 5}})
    rig.list_tools(TOOLS)
    rig.from_client(call(1, "echo", {"text": "x"}))
    next(t for t in rig.timers if t.delay == 5).action()
    rig.from_server({"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
    assert_every_decision_names_its_rule(rig.records())


def test_a_refused_held_result_is_the_only_answer_the_client_gets(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {})  # sampling: approve; a modern client, no desk: the result is refused at once
    rig.list_tools(TOOLS)
    rig.from_client(call(2, "echo", {"text": "x"}, modern=True))
    rig.from_server(
        {"jsonrpc": "2.0", "id": 2, "result": {
            "resultType": "input_required", "requestState": "s",
            "inputRequests": {"llm": {"method": "sampling/createMessage", "params": {"messages": []}}},
        }}
    )  # fmt: skip
    assert rig.client.messages()[-1]["result"]["isError"] is True
    rig.relay.fail_pending("the MCP server exited with code 1", exit_code=1)
    assert [m.get("id") for m in rig.client.messages()].count(2) == 1


def test_a_call_of_an_unlisted_tool_waits_for_mcpboxs_own_listing(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"tools": {"deny": ["write_*"]}})
    held = call(1, "echo", {"text": "x"})
    sent = rig.from_client(held)
    [listing] = rig.server.messages()
    assert listing["method"] == "tools/list" and listing["id"].startswith("mcpbox-list-")
    assert sent not in rig.server.lines()
    own = rig.from_server({"jsonrpc": "2.0", "id": listing["id"], "result": {"tools": TOOLS}})
    assert own not in rig.client.lines() and rig.client.lines() == []  # mcpbox's own: the client never asked
    assert rig.server.lines()[-1] == sent  # released as received
    answer = rig.from_server({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "x"}]}})
    assert rig.client.lines() == [answer]
    assert_every_decision_names_its_rule(rig.records())


# ---- properties ---------------------------------------------------------------

PROFILE: dict[str, Any] = {
    "tools": {"deny": ["bad*"], "approve": ["send_*"], "rules": {"write_*": {"path": {"glob": "/data/**"}}}},
    "policy": {"server_requests": {"sampling": "deny", "roots": "allow"}, "max_concurrent_calls": 1024},
}
plain = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-_", max_size=12)
dirty = st.lists(
    st.one_of(plain, st.sampled_from(["\x1b[2J", "\u200b", "\u202e", "\U000e0041", "\x07", GITHUB_TOKEN])),
    min_size=1,
    max_size=4,
).filter(lambda parts: any(not part.isascii() or not part.isprintable() or part == GITHUB_TOKEN for part in parts))

# (direction, kind, payload) where kind says what must happen to it:
#   pass: the other side gets these exact bytes;  block: the other side never gets them.
events = st.one_of(
    st.tuples(st.just("c"), st.just("pass_call"), plain),
    st.tuples(st.just("c"), st.just("block_denied"), plain),
    st.tuples(st.just("c"), st.just("block_arguments"), st.sampled_from(["/etc/passwd", "/data/../x", "rel"])),
    st.tuples(st.just("c"), st.just("block_approval"), plain),
    st.tuples(st.just("c"), st.just("pass_note"), plain),
    st.tuples(st.just("s"), st.just("pass_note"), plain),
    st.tuples(st.just("s"), st.just("pass_answer"), plain),
    st.tuples(st.just("s"), st.just("block_dirty_answer"), dirty.map(" ".join)),
    st.tuples(st.just("s"), st.just("block_dirty_note"), dirty.map(" ".join)),
    st.tuples(st.just("s"), st.just("block_sampling"), plain),
    st.tuples(st.just("s"), st.just("block_reserved"), plain),
    st.tuples(st.just("s"), st.just("pass_roots"), plain),
)


def event_message(direction: str, kind: str, text: str, ident: int, open_calls: list[int]) -> dict[str, Any] | None:
    """The message an event stands for; ``None`` when it cannot happen now (an answer with no call open)."""
    if kind == "pass_call":
        open_calls.append(ident)
        return call(ident, "echo", {"text": text})
    if kind == "block_denied":
        return call(ident, "bad_tool", {"text": text})
    if kind == "block_arguments":
        return call(ident, "write_file", {"path": text, "content": "x"})
    if kind == "block_approval":
        return call(ident, "send_email", {"to": text, "body": "x"})  # no elicitation, no desk: refused
    if kind == "pass_note":
        return {"jsonrpc": "2.0", "method": f"notifications/x-{direction}", "params": {"n": ident, "text": text}}
    if kind in ("pass_answer", "block_dirty_answer"):
        if not open_calls:
            return None
        answered = open_calls.pop(0)
        return {"jsonrpc": "2.0", "id": answered, "result": {"content": [{"type": "text", "text": text}]}}
    if kind == "block_dirty_note":
        return {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": text}}
    if kind == "block_sampling":
        return {"jsonrpc": "2.0", "id": ident, "method": "sampling/createMessage", "params": {"text": text}}
    if kind == "block_reserved":
        return {"jsonrpc": "2.0", "id": f"mcpbox-approval-{text}", "method": "roots/list"}
    return {"jsonrpc": "2.0", "id": f"r{ident}", "method": "roots/list", "params": {"text": text}}  # pass_roots


def check_fates(rig: Rig, passed: list[tuple[str, bytes]], blocked: list[tuple[str, str, bytes, Any]]) -> None:
    """What passed arrived as sent, once and in order; what was blocked never crossed, even re-encoded."""
    to_server, to_client = rig.server.lines(), rig.client.lines()
    other = {"c": to_server, "s": to_client}
    for direction, data in passed:
        assert data in other[direction], data
    for direction, kind, data, ident in blocked:
        assert data not in other[direction], data
        if kind in ("block_denied", "block_arguments", "block_approval"):
            # Not even re-encoded: the call never went on; the client got one answer, a tool error.
            assert not [m for m in rig.server.messages() if m.get("id") == ident]
            answers = [m for m in rig.client.messages() if m.get("id") == ident]
            assert len(answers) == 1 and answers[0]["result"]["isError"] is True
        elif kind in ("block_sampling", "block_reserved"):
            assert not [m for m in rig.client.messages() if m.get("id") == ident]
            assert [m for m in rig.server.messages() if m.get("id") == ident and "error" in m]
        elif kind == "block_dirty_answer":
            assert len([m for m in rig.client.messages() if m.get("id") == ident]) == 1  # the cleaned one
    # What passed arrived in the order it was sent, each exactly once.
    for direction in ("c", "s"):
        sent = [data for d, data in passed if d == direction]
        positions = [other[direction].index(data) for data in sent]
        assert positions == sorted(positions)
        assert all(other[direction].count(data) == 1 for data in sent)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(events, max_size=25), split=st.lists(st.integers(min_value=0), max_size=25))
def test_blocked_bytes_never_cross_and_untouched_bytes_cross_exactly(
    tmp_path: Path, script: list[tuple[str, str, str]], split: list[int]
) -> None:
    rig = Rig(tmp_path, PROFILE)
    rig.list_tools(TOOLS)
    open_calls: list[int] = []
    passed: list[tuple[str, bytes]] = []
    blocked: list[tuple[str, str, bytes, Any]] = []
    cuts = iter(split)
    for n, (direction, kind, text) in enumerate(script):
        obj = event_message(direction, kind, text, 100 + n, open_calls)
        if obj is None:
            continue
        data = line(obj)
        cut = next(cuts, 0) % (len(data) + 1)
        for chunk in (data[:cut], data[cut:]):  # however the bytes arrive
            if direction == "c":
                rig.relay.feed_client(chunk)
            else:
                rig.relay.feed_server(frame(1, chunk))
        if kind.startswith("pass"):
            passed.append((direction, data))
        else:
            blocked.append((direction, kind, data, obj.get("id")))

    check_fates(rig, passed, blocked)
    assert_every_decision_names_its_rule(rig.records())


# ---- random traffic, as bytes through the relay --------------------------------


class RecordingRelay(Relay):
    """The real relay, also keeping what the engine asked of it (for the traffic driver to refer to)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.to_client: list[Sent] = []
        self.to_server: list[Sent] = []
        self.released_to_server: list[Sent] = []
        self.released_to_client: list[Sent] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.timers: list[EngineTimer] = []
        self.schedule = self._schedule

    def _schedule(self, delay: float, action: Callable[[], None]) -> Callable[[], None]:
        timer = EngineTimer(delay, action)
        self.timers.append(timer)
        return timer.cancel

    def send_client(self, message: dict[str, Any], *, rule: str, reason: str) -> None:
        self.to_client.append(Sent(message, rule, reason))
        super().send_client(message, rule=rule, reason=reason)

    def send_server(self, message: dict[str, Any], *, rule: str, reason: str) -> None:
        self.to_server.append(Sent(message, rule, reason))
        super().send_server(message, rule=rule, reason=reason)

    def release_to_server(self, message: dict[str, Any], raw: bytes | None, *, rule: str, reason: str) -> None:
        self.released_to_server.append(Sent(message, rule, reason, raw))
        super().release_to_server(message, raw, rule=rule, reason=reason)

    def release_to_client(self, message: dict[str, Any], raw: bytes | None, *, rule: str, reason: str) -> None:
        self.released_to_client.append(Sent(message, rule, reason, raw))
        super().release_to_client(message, raw, rule=rule, reason=reason)

    def event(self, name: str, **fields: Any) -> None:
        self.events.append((name, fields))
        super().event(name, **fields)

    def live_timers(self, delay: float | None = None) -> list[EngineTimer]:
        return [t for t in self.timers if t.live and (delay is None or t.delay == delay)]

    def named(self, name: str) -> list[dict[str, Any]]:
        return [fields for event, fields in self.events if event == name]


@dataclass
class Engines:
    """What Traffic reaches through ``self.h``."""

    engine: Engine
    clock: EngineClock


class RelayTraffic(Traffic):
    """Traffic's steps as bytes through a Relay; every message's fate is checked on the sinks at the end."""

    def __init__(self, directory: Path) -> None:
        self.client_end, self.server_end, self.stderr_end = Sink(), Sink(), Sink()
        self.log_path = directory / "session.jsonl"
        self.relay = RecordingRelay(
            log=SessionLog(self.log_path),
            client=self.client_end,
            server=self.server_end,
            stderr=self.stderr_end,
            max_bytes=1 << 20,
        )
        prof = parse_profile(PROPERTY_PROFILE)
        clock = EngineClock()
        engine = Engine(prof, "relay-traffic", self.relay, pins=PinStore(prof.name, directory / "pins"), clock=clock)
        self.relay.policy = engine
        self.verdicts: list[Verdict] = []
        judge_client, judge_server = engine.from_client, engine.from_server

        def spy_client(message: Message, raw: bytes | None = None) -> Verdict:
            self.verdicts.append(judge_client(message, raw))
            return self.verdicts[-1]

        def spy_server(message: Message, raw: bytes | None = None) -> Verdict:
            self.verdicts.append(judge_server(message, raw))
            return self.verdicts[-1]

        engine.from_client = spy_client  # type: ignore[method-assign]
        engine.from_server = spy_server  # type: ignore[method-assign]
        self.h = Engines(engine, clock)  # type: ignore[assignment]
        self.fx = self.relay  # type: ignore[assignment]
        self.asked = []
        self.blocked = []
        self.held = []
        self.asks = []
        self.server_requests = 0
        self.fates: list[tuple[str, bytes, Verdict | None]] = []  # direction, bytes sent, the engine's verdict

    def _feed(self, direction: str, obj: dict[str, Any]) -> Verdict | None:
        data = line(obj)
        self.verdicts.clear()
        if direction == "c":
            self.relay.feed_client(data)
        else:
            self.relay.feed_server(frame(1, data))
        verdict = self.verdicts[0] if self.verdicts else None  # None: the relay itself dropped it
        self.fates.append((direction, data, verdict))
        return verdict

    def client(self, obj: dict[str, Any], *, plain: bool = False) -> None:
        verdict = self._feed("c", obj)
        assert verdict is not None  # every valid client message meets the engine
        self.check(obj, verdict, plain=plain)
        if verdict.action in ("forward", "rewrite") and "method" in obj and "id" in obj:
            self.asked.append(obj["id"])
        if verdict.verdict == "ask" and verdict.message is not None:
            self.asks.append((obj, verdict.message["result"]["requestState"]))

    def server(self, obj: dict[str, Any], *, plain: bool = False, raw: bool = True) -> None:
        verdict = self._feed("s", obj)
        if verdict is not None:
            self.check(obj, verdict, plain=plain and "method" in obj)

    def invariants(self, *, closed: bool = False) -> None:
        engine = self.h.engine
        if not closed:
            assert engine.limits.in_flight == len(engine.in_flight) >= 0
        assert self.relay.named("policy_error") == []

    def finish(self) -> None:
        """Each message's bytes reached the other side exactly as often as it was forwarded: never if blocked."""
        other = {"c": self.server_end.lines(), "s": self.client_end.lines()}
        own = {"c": self.client_end.lines(), "s": self.server_end.lines()}
        forwarded: dict[tuple[str, bytes], int] = {}
        # A held message a person let through goes on as the bytes received: count it like a forward.
        for direction, releases in (("c", self.relay.released_to_server), ("s", self.relay.released_to_client)):
            for release in releases:
                if release.raw is not None:
                    forwarded[(direction, release.raw)] = forwarded.get((direction, release.raw), 0) + 1
        for direction, data, verdict in self.fates:
            key = (direction, data)
            forwarded[key] = forwarded.get(key, 0) + (verdict is not None and verdict.action == "forward")
            if verdict is not None and verdict.message is not None:
                new = jsonrpc.encode(verdict.message)
                if verdict.action == "rewrite":
                    assert new in other[direction]
                elif verdict.action == "reply":
                    assert new in own[direction]  # the answer went back to the sender
        for (direction, data), times in forwarded.items():
            assert other[direction].count(data) == times, (direction, data)
        for record in [json.loads(raw) for raw in self.log_path.read_bytes().split(b"\n") if raw]:
            if record["dir"] in ("c2s", "s2c") and record.get("verdict", "forward") != "forward":
                assert record.get("rule"), record  # the relay's own drops name rule "relay"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=opening, script=st.lists(steps, min_size=5, max_size=40))
def test_random_traffic_through_the_relay_never_crosses_when_blocked(
    start: list[tuple[Any, ...]], script: list[tuple[Any, ...]]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        traffic = RelayTraffic(Path(directory))
        for step in [*start, *script]:
            traffic.run(step)
        traffic.finish()
        traffic.relay.fail_pending("the session ended", exit_code=None)
        traffic.invariants(closed=True)


def test_a_second_answer_to_one_request_in_a_batch_is_dropped(tmp_path: Path) -> None:
    """A batch answering the client's tools/list twice: the second copy would skip the listing's filter."""
    rig = Rig(tmp_path, {"tools": {"deny": ["write_file"]}})
    rig.from_client({"jsonrpc": "2.0", "id": "l", "method": "tools/list", "params": {}})
    answer = {"jsonrpc": "2.0", "id": "l", "result": {"tools": TOOLS}}
    rig.relay.feed_server(frame(1, line_batch([answer, answer])))
    assert b"write_file" not in bytes(rig.client.data)
    assert_every_decision_names_its_rule(rig.records())


def line_batch(items: list[dict[str, Any]]) -> bytes:
    return json.dumps(items).encode() + b"\n"
