"""Classifying JSON-RPC lines: what is a message, and why the rest is not."""

from __future__ import annotations

import pytest

from mcpbox import jsonrpc
from mcpbox.jsonrpc import Batch, Invalid, Kind, Message


@pytest.mark.parametrize(
    ("line", "kind", "ident"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}', Kind.REQUEST, 1),
        (b'{"jsonrpc":"2.0","id":"a","method":"server/discover"}', Kind.REQUEST, "a"),
        (b'{"jsonrpc":"2.0","method":"notifications/initialized"}', Kind.NOTIFICATION, None),
        (b'{"jsonrpc":"2.0","id":1,"result":{}}\r\n', Kind.RESPONSE, 1),
        (b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}', Kind.RESPONSE, None),
    ],
)
def test_messages_are_classified(line: bytes, kind: Kind, ident: object) -> None:
    parsed = jsonrpc.parse(line)
    assert isinstance(parsed, Message)
    assert parsed.kind is kind
    assert parsed.id == ident


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"hello world", "not valid JSON"),
        (b"\xff\xfe garbage", "not valid UTF-8"),
        ('{"jsonrpc":"2.0","id":1,"result":1}'.encode("utf-16"), "not valid UTF-8"),
        (b"[1,2]", "batch element"),
        (b"[]", "empty batch"),
        (b'{"foo":1}', "jsonrpc"),
        (b'{"jsonrpc":"2.0","id":true,"method":"x"}', "request id"),
        (b'{"jsonrpc":"2.0","id":1,"method":""}', "method"),
        (b'{"jsonrpc":"2.0","id":1,"result":1,"error":{}}', "exactly one"),
        (b'{"jsonrpc":"2.0","id":1}', "exactly one"),
        (b'{"jsonrpc":"2.0","id":1,"result":NaN}', "not valid JSON"),
        (b'{"jsonrpc":"2.0","method":"x","params":3}', "params"),
    ],
)
def test_non_messages_say_why(line: bytes, reason: str) -> None:
    parsed = jsonrpc.parse(line)
    assert isinstance(parsed, Invalid)
    assert reason in parsed.reason


def test_invalid_request_keeps_its_id_for_the_error_reply() -> None:
    parsed = jsonrpc.parse(b'{"jsonrpc":"2.0","id":7,"method":5}')
    assert isinstance(parsed, Invalid)
    assert parsed.id == 7


def test_batches_are_split_into_messages() -> None:
    parsed = jsonrpc.parse(b'[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"n"}]')
    assert isinstance(parsed, Batch)
    assert [m.kind for m in parsed.messages] == [Kind.REQUEST, Kind.NOTIFICATION]


def test_error_response_is_one_line() -> None:
    line = jsonrpc.error_response("x", -32000, "boom\nline", {"k": 1})
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    parsed = jsonrpc.parse(line)
    assert isinstance(parsed, Message)
    assert parsed.is_error


def test_deep_nesting_is_invalid_not_a_crash() -> None:
    parsed = jsonrpc.parse(b"[" * 100_000 + b"]" * 100_000)
    assert isinstance(parsed, Invalid)
    assert "nested" in parsed.reason


def test_huge_integers_are_valid_json_but_never_ids() -> None:
    digits = b"9" * 5000
    note = jsonrpc.parse(b'{"jsonrpc":"2.0","method":"n","params":{"x":' + digits + b"}}")
    assert isinstance(note, Message)
    request = jsonrpc.parse(b'{"jsonrpc":"2.0","id":' + digits + b',"method":"m"}')
    assert isinstance(request, Invalid)
