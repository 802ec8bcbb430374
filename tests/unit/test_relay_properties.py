"""Properties of the relay core (`Relay`), driven in-process with generated traffic.

The ends are plain byte sinks; the Relay, framing, parsing and session log are
the real ones. Whatever the mix and however the bytes are split, valid messages
go through exactly once, as the same bytes, in order; nothing else does; and
every refused request gets exactly one answer.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mcpbox.logs.writer import SessionLog
from mcpbox.relay.pump import Relay

LIMIT = 2048


class Sink:
    """A real byte sink standing in for a pipe: records what was written."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False

    def write(self, data: bytes) -> None:
        self.data += data

    def write_eof(self) -> None:
        self.eof = True

    def buffered(self) -> int:
        return len(self.data)  # nobody drains this sink: everything written is still waiting

    def lines(self) -> list[bytes]:
        return [line + b"\n" for line in bytes(self.data).split(b"\n")[:-1]]


def make_relay(tmp: Path) -> tuple[Relay, Sink, Sink, Sink]:
    client, server, stderr = Sink(), Sink(), Sink()
    log = SessionLog(tmp / f"{next(_counter)}.jsonl")
    relay = Relay(log=log, client=client, server=server, stderr=stderr, max_bytes=LIMIT)  # type: ignore[arg-type]
    return relay, client, server, stderr


_counter = itertools.count()
ids = st.one_of(st.integers(min_value=-(2**31), max_value=2**31), st.text(max_size=8))
texts = st.text(max_size=40)


@st.composite
def client_line(draw: st.DrawFn) -> tuple[str, bytes, Any]:
    """(kind, line, id) where kind says what the relay must do with it."""
    kind = draw(st.sampled_from(["request", "notification", "garbage", "blank", "oversize_request", "bad_request"]))
    ident = draw(ids)
    if kind == "request":
        body = {"jsonrpc": "2.0", "id": ident, "method": draw(texts.filter(bool)), "params": {"t": draw(texts)}}
        return kind, json.dumps(body, ensure_ascii=draw(st.booleans())).encode() + b"\n", ident
    if kind == "notification":
        return kind, json.dumps({"jsonrpc": "2.0", "method": "notifications/x", "params": {}}).encode() + b"\n", None
    if kind == "garbage":
        # Never valid JSON-RPC: a leading '#' is not JSON; the rest is any bytes (invalid UTF-8 too).
        junk = draw(st.binary(max_size=60)).replace(b"\n", b"")
        return kind, b"#" + junk + b"\n", None
    if kind == "blank":
        return kind, draw(st.sampled_from([b"\n", b"  \n", b"\r\n", b"\t\n"])), None
    if kind == "bad_request":
        return kind, json.dumps({"jsonrpc": "2.0", "id": ident, "method": 5}).encode() + b"\n", ident
    padding = "x" * (LIMIT + draw(st.integers(min_value=1, max_value=5000)))
    body = {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": {"p": padding}}
    return kind, json.dumps(body).encode() + b"\n", ident


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


@settings(max_examples=150)
@given(lines=st.lists(client_line(), max_size=25), cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_client_traffic_is_forwarded_exactly_or_answered(
    tmp_path: Path, lines: list[tuple[str, bytes, Any]], cuts: list[int]
) -> None:
    relay, client, server, _ = make_relay(tmp_path)
    for chunk in chunks(b"".join(line for _, line, _ in lines), cuts):
        relay.feed_client(chunk)
    relay.end_client()
    assert server.lines() == [line for kind, line, _ in lines if kind in ("request", "notification")]
    answers = [json.loads(line) for line in client.lines()]
    refused = [(kind, ident) for kind, _, ident in lines if kind in ("garbage", "bad_request", "oversize_request")]
    assert len(answers) == len(refused)
    for (kind, ident), answer in zip(refused, answers, strict=True):
        assert "error" in answer
        if kind == "garbage":
            assert answer["id"] is None
        else:
            assert answer["id"] == ident
        if kind == "oversize_request":
            assert answer["error"]["code"] == -32012


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


@st.composite
def server_line(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["answer", "forged", "notification", "request", "noise", "stderr", "blank"]))
    if kind == "answer":
        return kind, b""  # filled in with a pending id below
    if kind == "forged":
        return kind, json.dumps({"jsonrpc": "2.0", "id": draw(ids), "result": {"forged": True}}).encode() + b"\n"
    if kind == "notification":
        return kind, json.dumps(
            {"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": draw(texts)}}
        ).encode() + b"\n"
    if kind == "request":
        return kind, json.dumps({"jsonrpc": "2.0", "id": f"srv-{draw(texts)}", "method": "roots/list"}).encode() + b"\n"
    if kind == "stderr":
        return kind, draw(texts).replace("\n", " ").encode() + b"\n"
    if kind == "blank":
        return kind, b"\n"
    noise = draw(st.sampled_from([b"debug: hi", b"[1,2]", b'{"foo":1}', b"42", b"\xff\xfe", b'{"jsonrpc":"2.0"}']))
    return kind, noise + b"\n"


@settings(max_examples=150)
@given(lines=st.lists(server_line(), max_size=25), cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_server_traffic_reaches_the_client_only_if_valid_and_solicited(
    tmp_path: Path, lines: list[tuple[str, bytes]], cuts: list[int]
) -> None:
    relay, client, _, stderr = make_relay(tmp_path)
    # The client has asked questions 0..n-1 with integer ids; forged answers use other ids.
    asked = [i for i, (kind, _) in enumerate(lines) if kind == "answer"]
    for i in asked:
        relay.feed_client(json.dumps({"jsonrpc": "2.0", "id": 10**12 + i, "method": "ping"}).encode() + b"\n")
    stream = b""
    expected: list[bytes] = []
    expected_stderr: list[bytes] = []
    pending = {10**12 + j for j in asked}
    for i, (drawn_kind, drawn_line) in enumerate(lines):
        kind, line = drawn_kind, drawn_line
        if kind == "answer":
            line = json.dumps({"jsonrpc": "2.0", "id": 10**12 + i, "result": {}}).encode() + b"\n"
        if kind == "forged" and json.loads(line)["id"] in pending:
            kind = "answer"  # hypothesis hit a real pending id: then it is a real answer
        if kind == "answer":
            pending.discard(json.loads(line)["id"])  # a second answer to the same request is forged
        stream += frame(2 if kind == "stderr" else 1, line)
        if kind in ("answer", "notification", "request"):
            expected.append(line)
        if kind == "stderr":
            expected_stderr.append(line)
    for chunk in chunks(stream, cuts):
        relay.feed_server(chunk)
    relay.end_server()
    assert client.lines() == expected
    assert stderr.lines() == expected_stderr


def test_replies_to_a_server_that_never_reads_are_bounded(tmp_path: Path) -> None:
    relay, _, server, _ = make_relay(tmp_path)
    # The server floods the client with requests past the pending cap; each earns an error reply.
    for i in range(20_000):
        relay.feed_server(frame(1, json.dumps({"jsonrpc": "2.0", "id": i, "method": "roots/list"}).encode() + b"\n"))
    assert len(server.data) <= (1 << 20) + 1024
    assert relay.counts["dropped"] > 0
