"""Masking: no spelling of a secret survives, and lines without one pass byte for byte."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpbox.logs.writer import SessionLog
from mcpbox.profile.model import SecretRef
from mcpbox.relay.pump import Relay
from mcpbox.secrets.mask import Masker, forms_of
from mcpbox.secrets.store import Resolved
from tests.unit.test_relay_properties import Sink

TOKEN = b"ghp_9fQ2xVtZ/+Lm0KpR8sWd"
LABEL = "[secret:github-token]"


def masker(*values: bytes) -> Masker:
    names = ["github-token", *(f"entry-{i}" for i in range(1, len(values)))]
    return Masker(
        [Resolved(SecretRef(f"V{i}", name), v) for i, (name, v) in enumerate(zip(names, values, strict=True))]
    )


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def mask_line(m: Masker, raw: bytes) -> bytes:
    try:
        obj = json.loads(raw)
    except ValueError:
        obj = None
    return m.mask(raw, obj)[0]


def assert_clean(out: bytes, value: bytes) -> None:
    """Neither the bytes nor any decoded string of ``out`` holds any form of ``value``."""
    text = out.decode("utf-8", "surrogateescape")
    decoded = json.dumps(json.loads(out), ensure_ascii=False) if out.strip().startswith(b"{") else text
    for form in forms_of(value):
        assert form not in text
        assert form not in decoded


SPELLINGS = {
    "raw": TOKEN.decode(),
    "base64": base64.b64encode(TOKEN).decode(),
    "base64url": base64.urlsafe_b64encode(TOKEN).decode().rstrip("="),
    "basic auth": "Basic " + base64.b64encode(b"user:" + TOKEN).decode(),
    "offset 2": base64.b64encode(b"ab" + TOKEN + b"tail").decode(),
    "hex": TOKEN.hex(),
    "HEX": TOKEN.hex().upper(),
    "url": quote(TOKEN, safe=""),
    "url lower": quote(TOKEN, safe="").replace("%2F", "%2f").replace("%2B", "%2b"),
    "url keeping /": quote(TOKEN),
    "form encoded": quote_plus(TOKEN + b" x")[:-2],
}


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_each_spelling_in_a_result_is_masked(spelling: str) -> None:
    m = masker(TOKEN)
    raw = line({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": f"token={spelling}!"}]}})
    out = mask_line(m, raw)
    assert LABEL.encode() in out
    assert_clean(out, TOKEN)
    assert json.loads(out)["id"] == 1


def test_unicode_escapes_do_not_hide_a_value() -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in TOKEN.decode())
    raw = b'{"jsonrpc":"2.0","id":1,"result":{"text":"' + escaped.encode() + b'"}}\n'
    assert TOKEN not in raw
    out = mask_line(masker(TOKEN), raw)
    assert json.loads(out)["result"]["text"] == LABEL


def test_escaped_slash_does_not_hide_a_value() -> None:
    raw = line({"t": TOKEN.decode()}).replace(b"/", b"\\/")
    out = mask_line(masker(TOKEN), raw)
    assert json.loads(out) == {"t": LABEL}


def test_keys_and_numbers_are_masked() -> None:
    pin = b"4815162342"
    m = masker(TOKEN, pin)
    raw = b'{"jsonrpc":"2.0","method":"x","params":{"' + TOKEN + b'":4815162342}}\n'
    out = json.loads(mask_line(m, raw))
    assert out["params"] == {LABEL: "[secret:entry-1]"}


def test_non_json_text_is_masked_through_escapes() -> None:
    m = masker(TOKEN)
    escaped = "".join(f"\\u{ord(c):04x}" for c in TOKEN.decode())
    out, found = m.mask(f"log: token {escaped} and {TOKEN.hex()}\n".encode())
    assert found == {LABEL}
    assert escaped.encode() not in out
    assert TOKEN.hex().encode() not in out


def test_batches_are_masked() -> None:
    raw = line([{"jsonrpc": "2.0", "id": 1, "result": {"t": TOKEN.decode()}}, {"jsonrpc": "2.0", "method": "n"}])
    out = mask_line(masker(TOKEN), raw)
    assert json.loads(out)[0]["result"]["t"] == LABEL


def test_lines_without_a_value_pass_unchanged() -> None:
    m = masker(TOKEN)
    for raw in (
        b'{"jsonrpc":"2.0","id":1,"result":{"text":"caf\\u00e9 \\"quoted\\" \\/ line\\nbreak"}}\n',
        b'{"jsonrpc":"2.0" ,  "id":1,"result":{}}\r\n',
        b"not json at all\n",
    ):
        assert m.mask(raw, None if raw.startswith(b"not") else json.loads(raw)) == (raw, set())


def test_a_cut_prefix_loses_the_bytes_where_a_value_could_begin() -> None:
    m = masker(TOKEN)
    escaped = "".join(f"\\u{ord(c):04x}" for c in TOKEN.decode()).encode()
    for prefix in (b"x" * 1000 + TOKEN[:10], b"x" * 1000 + escaped[: len(escaped) - 7]):
        trimmed = m.trim(prefix)
        assert trimmed == b"x" * len(trimmed)


def test_json_inside_a_json_string_is_masked() -> None:
    inner = json.dumps({"token": TOKEN.decode()}).replace("/", "\\/")  # PHP-style: / escaped
    raw = line({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": inner}]}})
    out = mask_line(masker(TOKEN), raw)
    assert LABEL in json.loads(out)["result"]["content"][0]["text"]


def test_unrepresentable_numbers_fall_back_to_masking_bytes() -> None:
    raw = b'{"jsonrpc":"2.0","id":1,"result":{"n":1e400,"t":"' + TOKEN + b'"}}\n'
    out = mask_line(masker(TOKEN), raw)
    assert TOKEN not in out
    assert b"Infinity" not in out


def test_relay_masks_log_fields_stderr_and_what_the_client_gets(tmp_path: Path) -> None:
    client, server, stderr = Sink(), Sink(), Sink()
    log = SessionLog(tmp_path / "s.jsonl")
    relay = Relay(log=log, client=client, server=server, stderr=stderr, max_bytes=1 << 20, masker=masker(TOKEN))  # type: ignore[arg-type]
    relay.feed_client(line({"jsonrpc": "2.0", "id": "req-1", "method": "tools/call", "params": {"t": TOKEN.decode()}}))
    escaped = "".join(f"\\u{ord(c):04x}" for c in TOKEN.decode()).encode()
    relay.feed_server(docker_frame(1, b'{"jsonrpc":"2.0","method":"' + escaped + b'"}\n'))
    relay.feed_server(docker_frame(1, line({"jsonrpc": "2.0", "id": "req-1", "result": {"t": TOKEN.decode()}})))
    relay.feed_server(docker_frame(2, b"leak: " + TOKEN[:5]) + docker_frame(2, TOKEN[5:] + b"\n"))
    log.close()
    assert TOKEN in bytes(server.data)  # the server's own secret is not taken from what it is sent
    for where, data in (("client", client.data), ("stderr", stderr.data), ("log", (tmp_path / "s.jsonl").read_bytes())):
        assert TOKEN not in data, where
        assert escaped not in data, where
        assert LABEL.encode() in data, where
    records = [json.loads(r) for r in (tmp_path / "s.jsonl").read_bytes().splitlines()]
    assert {r["direction"] for r in records if r.get("event") == "masked"} == {"c2s", "s2c", "stderr"}
    assert not any(TOKEN.decode() in str(r.get("method")) for r in records)


def docker_frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


tokens = st.binary(min_size=8, max_size=64).filter(lambda b: len(b.decode("utf-8", "replace").strip()) >= 8)
texts = st.text(max_size=40)


@given(value=tokens, before=texts, after=texts, encoding=st.sampled_from(["raw", "b64", "b64url", "hex", "url"]))
def test_property_any_value_in_any_string_is_masked(value: bytes, before: str, after: str, encoding: str) -> None:
    text = value.decode("utf-8", "surrogateescape")
    spelled = {
        "raw": text,
        "b64": base64.b64encode(before.encode() + value).decode(),
        "b64url": base64.urlsafe_b64encode(value).decode(),
        "hex": value.hex(),
        "url": quote(value, safe=""),
    }[encoding]
    raw = json.dumps({"jsonrpc": "2.0", "id": 7, "result": {"text": before + spelled + after}}).encode() + b"\n"
    out = mask_line(masker(value), raw)
    assert b"[secret:github-token]" in out
    decoded = json.loads(out)["result"]["text"]
    assert text not in decoded
    assert spelled not in decoded


@given(payload=st.recursive(st.text() | st.integers(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)))
def test_property_messages_without_the_value_are_byte_identical(payload: Any) -> None:
    m = masker(b"\x00\xffnever-in-text\xfe")  # bytes no JSON text from json.dumps can contain
    raw = json.dumps({"jsonrpc": "2.0", "method": "m", "params": {"p": payload}}).encode() + b"\n"
    assert m.mask(raw, json.loads(raw)) == (raw, set())
