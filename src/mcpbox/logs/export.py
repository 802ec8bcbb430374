"""A session log for other tools: its records as stored (JSONL), or OpenTelemetry spans (OTLP/JSON).

The JSONL export is the log's own bytes, so whoever receives it (a SIEM, an auditor) can walk
the hash chain again. The OTLP export is one span per request and its answer, in the OTLP/JSON
shape of an ``ExportTraceServiceRequest``: ``resourceSpans`` → ``scopeSpans`` → ``spans``,
ids in hex, 64-bit integers and nanosecond times as decimal strings, enums as integers.
Written as one line, it is also what the OpenTelemetry Collector's ``otlpjsonfile`` receiver
reads, and it can be posted as is to an OTLP/HTTP ``/v1/traces`` endpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mcpbox._version import __version__
from mcpbox.errors import MCPBoxError, UsageError
from mcpbox.logs.timeline import Call, SessionSummary, calls, read_records, summarize

FORMATS = ("jsonl", "otlp")
SPAN_KIND_SERVER = 2  # the server asked the client (sampling, roots...): mcpbox received the call
SPAN_KIND_CLIENT = 3  # the client asked the server: mcpbox made the call to the sandbox
STATUS_UNSET = 0
STATUS_ERROR = 2


def read_session(path: Path) -> tuple[list[dict[str, Any]], SessionSummary, list[Call]]:
    """The records, summary and calls of one log, for the exports and the report.

    A record with a field of the wrong type (a log edited by hand, or made by something else)
    is an error that names the file, not a traceback."""
    records = list(read_records(path))
    try:
        return records, summarize(path, records), calls(records)
    except (TypeError, ValueError) as exc:
        raise MCPBoxError(
            f"cannot read the session log {path}: a record has a field of the wrong type ({exc}).",
            f"Check it with `mcpbox logs verify {path}`: a log mcpbox wrote and nobody changed always reads.",
        ) from exc


def jsonl(path: Path) -> Iterator[bytes]:
    """The log's records, each line exactly as stored.

    Read as bytes and not through ``timeline.read_records``: parsing and re-encoding would change
    the bytes the ``prev`` hashes cover. A last line still being written (no newline yet) is
    left out, as every reader of the log does.
    """
    with path.open("rb") as handle:
        for line in handle:
            if line.endswith(b"\n"):
                yield line


def trace_id(session: str) -> str:
    """16 bytes, hex: the same session always gives the same trace, so exports can be repeated."""
    return _nonzero(hashlib.sha256(f"mcpbox trace {session}".encode()).hexdigest()[:32])


def span_id(session: str, seq: int) -> str:
    """8 bytes, hex, from the session and the request's record: unique within the trace, and stable."""
    return _nonzero(hashlib.sha256(f"mcpbox span {session} {seq}".encode()).hexdigest()[:16])


def _nonzero(digest: str) -> str:
    # An all-zero id means "no id" in OpenTelemetry; a hash gives one once in 2**64 at worst.
    return digest if digest.strip("0") else digest[:-1] + "1"


def _nanos(t: float) -> str:
    # Log times have microseconds: rounding there first keeps float noise out of the nanoseconds.
    return str(round(t * 1_000_000) * 1000)


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64: a decimal string in OTLP/JSON
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def _attributes(pairs: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _value(value)} for key, value in pairs if value is not None]


def _subject_key(method: str) -> str:
    if method == "tools/call":
        return "mcp.tool"
    if method.startswith("resources/"):
        return "mcp.resource.uri"
    return "mcp.prompt" if method.startswith("prompts/") else "mcp.subject"


def _span(call: Call, summary: SessionSummary, sizes: dict[int, int]) -> dict[str, Any]:
    error_code = (call.error or {}).get("code")
    error_message = (call.error or {}).get("message")
    end = call.response_t
    if end is None:  # never answered: the span lasts as long as the log shows it open
        end = max(call.t, summary.end or call.t)
    attributes = _attributes(
        [
            ("rpc.system", "jsonrpc"),
            ("rpc.method", call.method),
            ("rpc.jsonrpc.version", "2.0"),
            ("rpc.jsonrpc.request_id", call.id if isinstance(call.id, str) else json.dumps(call.id)),
            ("rpc.jsonrpc.error_code", error_code if isinstance(error_code, int) else None),
            ("rpc.jsonrpc.error_message", None if error_message is None else str(error_message)),
            ("mcp.method", call.method),
            (_subject_key(call.method), call.tool),
            ("mcp.direction", call.direction),
            ("mcpbox.verdict", call.verdict),
            ("mcpbox.rule", call.rule),
            ("mcpbox.reason", call.reason),
            ("mcpbox.response.verdict", call.response_verdict),
            ("mcpbox.answered", call.response_t is not None),
            ("mcpbox.request.size", call.size),
            ("mcpbox.response.size", sizes.get(call.response_seq) if isinstance(call.response_seq, int) else None),
            ("mcpbox.record.seq", call.seq),  # where the request is in the session log
        ]
    )
    status: dict[str, Any] = {"code": STATUS_UNSET}
    if call.blocked or call.failed:
        why = call.reason if call.blocked else error_message
        status = {"code": STATUS_ERROR, "message": str(why or ("blocked" if call.blocked else "tool error"))}
    return {
        "traceId": trace_id(summary.session),
        "spanId": span_id(summary.session, call.seq),
        "name": f"tools/call {call.tool}" if call.method == "tools/call" and call.tool else call.method,
        "kind": SPAN_KIND_CLIENT if call.direction == "c2s" else SPAN_KIND_SERVER,
        "startTimeUnixNano": _nanos(call.t),
        "endTimeUnixNano": _nanos(end),
        "attributes": attributes,
        "status": status,
    }


def otlp(path: Path) -> dict[str, Any]:
    """The session as an OTLP/JSON ``ExportTraceServiceRequest``: one trace, one span per call."""
    records, summary, found = read_session(path)
    sizes = {r["seq"]: r["size"] for r in records if isinstance(r.get("seq"), int) and isinstance(r.get("size"), int)}
    resource = _attributes(
        [
            ("service.name", "mcpbox"),
            ("service.version", __version__),
            ("mcpbox.session", summary.session),
            ("mcpbox.profile", summary.profile),
            ("mcpbox.image", summary.image),
        ]
    )
    spans = [_span(call, summary, sizes) for call in found]
    scope = {"scope": {"name": "mcpbox", "version": __version__}, "spans": spans}
    return {"resourceSpans": [{"resource": {"attributes": resource}, "scopeSpans": [scope]}]}


def otlp_bytes(path: Path) -> bytes:
    # One line: the Collector's file receiver reads one request per line. ASCII-escaped, so a
    # lone surrogate from a peer's "\ud800" cannot make the output invalid UTF-8.
    return json.dumps(otlp(path), separators=(",", ":")).encode() + b"\n"


def write_private(dest: Path, chunks: Iterable[bytes], *, force: bool = False) -> None:
    """Write a file only its owner can read: it holds what the session said.

    An existing file is never replaced unless ``force``; then a new file is renamed over it, so
    neither the old file's mode nor a symlink at ``dest`` decides where the content goes or who
    can read it.
    """
    try:
        if force:
            fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")  # 0600
            temp = Path(name)
        else:
            # O_EXCL: refuses an existing file, and a symlink even to nowhere.
            fd, temp = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), dest
    except FileExistsError as exc:
        raise UsageError(f"{dest} exists.", "Give --force to replace it, or choose another -o path.") from exc
    except OSError as exc:
        raise MCPBoxError(
            f"cannot create {dest} ({exc.strerror}).", "Check that its folder exists and is writable."
        ) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        if force:
            temp.replace(dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temp.unlink()  # no half-written file left behind, whatever stopped the writing
        if isinstance(exc, OSError):
            raise MCPBoxError(f"cannot write {dest} ({exc.strerror}).", "Check the free space and the path.") from exc
        raise
