"""JSON-RPC 2.0 envelopes as MCP uses them, parsed once at the relay's boundary.

A line that is not a JSON-RPC message is a value (:class:`Invalid`), not an
exception: the relay logs it and decides what to do with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

RequestId = str | int

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class Kind(Enum):
    REQUEST = "request"
    NOTIFICATION = "notification"
    RESPONSE = "response"


@dataclass(frozen=True, slots=True)
class Message:
    """One JSON-RPC message; ``obj`` is the decoded JSON, kept for policy and logs."""

    kind: Kind
    obj: dict[str, Any]
    method: str | None = None
    id: RequestId | None = None
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Batch:
    """A JSON array of messages (allowed by MCP 2025-03-26, removed later)."""

    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class Invalid:
    reason: str
    id: RequestId | None = None  # set when the line was a recognisable request


Parsed = Message | Batch | Invalid


def _valid_id(value: Any) -> bool:
    # bool is an int subclass in Python but not a JSON-RPC id; HugeInt is a str subclass but not a string.
    return (isinstance(value, str) and not isinstance(value, HugeInt)) or (
        isinstance(value, int) and not isinstance(value, bool)
    )


def classify(obj: Any) -> Message | Invalid:
    """Turn one decoded JSON value into a :class:`Message`, or say why it is not one."""
    if not isinstance(obj, dict):
        return Invalid("not a JSON object")
    if obj.get("jsonrpc") != "2.0":
        return Invalid('missing "jsonrpc": "2.0"', obj.get("id") if _valid_id(obj.get("id")) else None)
    method = obj.get("method")
    has_id = "id" in obj
    ident = obj.get("id")
    if method is not None:
        if not isinstance(method, str) or not method:
            return Invalid("method is not a non-empty string", ident if _valid_id(ident) else None)
        params = obj.get("params")
        if params is not None and not isinstance(params, dict | list):
            return Invalid("params is neither an object nor an array", ident if _valid_id(ident) else None)
        if not has_id:
            return Message(Kind.NOTIFICATION, obj, method=method)
        if not _valid_id(ident):
            return Invalid("request id is neither a string nor an integer")
        return Message(Kind.REQUEST, obj, method=method, id=ident)
    if not has_id:
        return Invalid("neither a request (no method) nor a response (no id)")
    if ("result" in obj) == ("error" in obj):
        return Invalid("a response needs exactly one of result and error")
    if ident is not None and not _valid_id(ident):
        return Invalid("response id is neither a string nor an integer")
    if "error" in obj and not isinstance(obj["error"], dict):
        return Invalid("error is not an object")
    return Message(Kind.RESPONSE, obj, id=ident, is_error="error" in obj)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class HugeInt(str):
    """An integer literal too long to convert cheaply (int() is quadratic in its digits).

    It is still valid JSON and is forwarded as received; it just never counts as an id.
    """


def _parse_int(digits: str) -> int | HugeInt:
    return int(digits) if len(digits) <= 4000 else HugeInt(digits)


# Made once: json.loads() with any option builds a new decoder on every call, on the relay's hot path.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_int)
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def parse(line: bytes) -> Parsed:
    """Parse one newline-delimited frame (without caring about its line ending)."""
    try:
        # Decode explicitly: json.loads(bytes) would also accept UTF-16/32, which the peer would not.
        obj = _DECODER.decode(line.decode("utf-8"))
    except UnicodeDecodeError:
        return Invalid("not valid UTF-8")
    except ValueError:
        return Invalid("not valid JSON")
    except RecursionError:
        return Invalid("nested too deeply")
    if isinstance(obj, list):
        if not obj:
            return Invalid("empty batch")
        items = [classify(item) for item in obj]
        bad = [item for item in items if isinstance(item, Invalid)]
        if bad:
            return Invalid(f"batch element: {bad[0].reason}")
        return Batch(tuple(item for item in items if isinstance(item, Message)))
    return classify(obj)


def encode(obj: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    """One newline-terminated frame (a message or a batch); compact, and ASCII-safe for any consumer."""
    return _ENCODER.encode(obj).encode() + b"\n"


def error_message(ident: RequestId | None, code: int, message: str, data: Any = None) -> dict[str, Any]:
    """An error response, decoded: for code that judges or rewrites messages before encoding them."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": ident, "error": error}


def error_response(ident: RequestId | None, code: int, message: str, data: Any = None) -> bytes:
    return encode(error_message(ident, code, message, data))


def error_from(ident: RequestId | None, error: dict[str, Any]) -> bytes:
    """A response carrying a ready-made error object (e.g. ``MCPBoxError.rpc_error()``)."""
    return encode({"jsonrpc": "2.0", "id": ident, "error": error})


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


_STRICT_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_int=_parse_int, object_pairs_hook=_no_duplicates
)


def has_duplicate_keys(line: bytes) -> bool:
    """Whether an object in ``line`` names a key twice. Python keeps the last value, other parsers the
    first: what was checked and what a server acts on must not differ, so judged requests are refused."""
    try:
        _STRICT_DECODER.decode(line.decode("utf-8"))
    except ValueError as exc:
        return str(exc) == "duplicate key"
    except RecursionError:
        return False
    return False
