"""The relay's two pumps: frame -> decide -> log -> forward the bytes as received.

One task per direction, each handling its frames strictly in order, so nothing
is reordered within a direction. Every frame is logged before it is forwarded.
What cannot be forwarded (non-JSON-RPC output, oversized lines, unsolicited
responses) is logged and, where someone is waiting for an answer, answered with
a JSON-RPC error instead of being left to hang.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from mcpbox import jsonrpc
from mcpbox.errors import RPC_MESSAGE_TOO_LARGE, RPC_SERVER_EXITED
from mcpbox.jsonrpc import Batch, Invalid, Kind, Message, RequestId
from mcpbox.logs.writer import SessionLog
from mcpbox.relay.framing import STDERR, STDOUT, DockerDemux, Frame, Line, LineFramer, Oversize
from mcpbox.relay.stdio import Output

CHUNK = 256 * 1024
STDERR_LINE_LIMIT = 64 * 1024
MAX_SERVER_PENDING = 4096
C2S, S2C = "c2s", "s2c"


@dataclass(slots=True)
class Pending:
    method: str
    started: float


class Relay:
    def __init__(
        self, *, log: SessionLog, client_out: Output, err_out: Output, to_server: asyncio.StreamWriter, max_bytes: int
    ) -> None:
        self.log = log
        self.client_out = client_out
        self.err_out = err_out
        self.to_server = to_server
        self.max_bytes = max_bytes
        self.from_client: dict[RequestId, Pending] = {}  # client requests the server has not answered
        self.from_server: dict[RequestId, Pending] = {}  # server requests the client has not answered
        self.server_writable = True
        self.counts = {C2S: 0, S2C: 0, "dropped": 0}

    # ---- the two directions -------------------------------------------------

    async def pump_client(self, reader: asyncio.StreamReader) -> None:
        """Client stdin -> server, until the client closes its end."""
        framer = LineFramer(self.max_bytes)
        while chunk := await reader.read(CHUNK):
            for frame in framer.feed(chunk):
                await self._from_client(frame)
        for frame in framer.close():
            await self._from_client(frame)

    async def pump_server(self, reader: asyncio.StreamReader) -> None:
        """Container stdout/stderr -> client stdout / session log + our stderr, until the stream ends."""
        demux = DockerDemux()
        out = LineFramer(self.max_bytes)
        err = LineFramer(STDERR_LINE_LIMIT)
        while chunk := await reader.read(CHUNK):
            for stream, payload in demux.feed(chunk):
                if stream == STDOUT:
                    for frame in out.feed(payload):
                        await self._from_server(frame)
                elif stream == STDERR:
                    for frame in err.feed(payload):
                        self._stderr(frame)
        for frame in out.close():
            await self._from_server(frame)
        for frame in err.close():
            self._stderr(frame)

    # ---- client -> server ---------------------------------------------------

    async def _from_client(self, frame: Frame) -> None:
        if isinstance(frame, Oversize):
            await self._oversize(C2S, frame)
            return
        raw = frame.data
        if not raw.strip():
            return
        parsed = jsonrpc.parse(raw)
        if isinstance(parsed, Invalid):
            self.log.text(C2S, raw, verdict="reply", reason=f"invalid message: {parsed.reason}")
            code = jsonrpc.PARSE_ERROR if parsed.reason.startswith("not valid") else jsonrpc.INVALID_REQUEST
            await self._to_client(jsonrpc.error_response(parsed.id, code, f"mcpbox: {parsed.reason}"))
            return
        _track(_messages(parsed), asked=self.from_client, answered=self.from_server)
        self._log_message(C2S, raw, parsed)
        await self._to_server(raw)

    # ---- server -> client ---------------------------------------------------

    async def _from_server(self, frame: Frame) -> None:
        if isinstance(frame, Oversize):
            await self._oversize(S2C, frame)
            return
        raw = frame.data
        if not raw.strip():
            return
        parsed = jsonrpc.parse(raw)
        if isinstance(parsed, Invalid):
            self.log.text(S2C, raw, verdict="drop", reason=f"not a JSON-RPC message: {parsed.reason}")
            self.counts["dropped"] += 1
            if parsed.id is not None and parsed.id in self.from_client:
                # A broken answer to a real request: the client gets an error, not a hang.
                self.from_client.pop(parsed.id)
                await self._to_client(
                    jsonrpc.error_response(
                        parsed.id,
                        jsonrpc.INTERNAL_ERROR,
                        f"mcpbox: the server's response was malformed ({parsed.reason})",
                    )
                )
            return
        messages = _messages(parsed)
        unsolicited = [
            m for m in messages if m.kind is Kind.RESPONSE and m.id is not None and m.id not in self.from_client
        ]
        if unsolicited:
            # Only answers to requests the client actually made reach it; anything else could be forged.
            self._log_message(S2C, raw, parsed, verdict="drop", reason="response to no pending request")
            self.counts["dropped"] += 1
            return
        requests = [m for m in messages if m.kind is Kind.REQUEST]
        if requests and len(self.from_server) + len(requests) > MAX_SERVER_PENDING:
            # A server flooding the client with requests it never lets finish would grow this map without end.
            reason = f"more than {MAX_SERVER_PENDING} server requests awaiting the client"
            self._log_message(S2C, raw, parsed, verdict="reply", reason=reason)
            for request in requests:
                await self._to_server(jsonrpc.error_response(request.id, jsonrpc.INTERNAL_ERROR, f"mcpbox: {reason}"))
            return
        _track(messages, asked=self.from_server, answered=self.from_client)
        self._log_message(S2C, raw, parsed)
        await self._to_client(raw)

    def _stderr(self, frame: Frame) -> None:
        data = frame.data if isinstance(frame, Line) else frame.prefix + b"...[truncated]\n"
        reason = "server stderr" if isinstance(frame, Line) else f"server stderr line of {frame.size} bytes, truncated"
        self.log.text("stderr", data, verdict="forward", reason=reason)
        self.err_out.write(data if data.endswith(b"\n") else data + b"\n")

    # ---- shared -------------------------------------------------------------

    async def _oversize(self, direction: str, frame: Oversize) -> None:
        """A line over the cap was dropped unread; whoever awaits an answer gets an error."""
        ident, method = frame.request_id(), frame.method()
        reason = f"message of {frame.size} bytes exceeds policy.max_message_bytes ({self.max_bytes})"
        self.log.text(direction, frame.prefix[:512], verdict="drop", reason=reason)
        self.counts["dropped"] += 1
        error = jsonrpc.error_response(
            ident,
            RPC_MESSAGE_TOO_LARGE,
            f"mcpbox: {reason}",
            {"mcpbox": {"error": "MessageTooLarge", "size": frame.size, "limit": self.max_bytes}},
        )
        if ident is None:
            return
        if method is not None:  # a request: its sender gets the error
            if direction == C2S:
                await self._to_client(error)
            else:
                await self._to_server(error)
        elif direction == S2C and self.from_client.pop(ident, None) is not None:
            await self._to_client(error)  # the server's answer was too big: the client hears why
        elif direction == C2S and self.from_server.pop(ident, None) is not None:
            await self._to_server(error)  # the client's answer was too big: the server hears why

    def _log_message(
        self,
        direction: str,
        raw: bytes,
        parsed: Message | Batch,
        *,
        verdict: str = "forward",
        reason: str | None = None,
    ) -> None:
        if isinstance(parsed, Batch):
            self.log.message(direction, raw, kind="batch", method=None, ident=None, verdict=verdict, reason=reason)
        else:
            self.log.message(
                direction,
                raw,
                kind=parsed.kind.value,
                method=parsed.method,
                ident=parsed.id,
                verdict=verdict,
                reason=reason,
            )

    async def _to_client(self, data: bytes) -> None:
        self.counts[S2C] += 1
        self.client_out.write(data)
        await self.client_out.drain()

    async def _to_server(self, data: bytes) -> None:
        if not self.server_writable:
            return
        self.counts[C2S] += 1
        try:
            self.to_server.write(data)
            await self.to_server.drain()
        except (ConnectionError, RuntimeError):
            self.server_writable = False

    def close_server_stdin(self) -> None:
        """Half-close: the container sees end-of-file on stdin, as a server expects at shutdown."""
        if self.server_writable:
            self.server_writable = False
            try:
                if self.to_server.can_write_eof():
                    self.to_server.write_eof()
            except (OSError, RuntimeError):
                pass

    async def fail_pending(self, why: str, *, exit_code: int | None) -> int:
        """The server is gone: every request it still owed an answer gets an error. Returns how many."""
        pending = list(self.from_client.items())
        self.from_client.clear()
        for ident, entry in pending:
            message = f"mcpbox: {why}; the request {entry.method!r} will not be answered"
            error = jsonrpc.error_response(
                ident, RPC_SERVER_EXITED, message, {"mcpbox": {"error": "ServerExited", "exitCode": exit_code}}
            )
            self.log.event("request_failed", id=ident, method=entry.method, reason=why)
            await self._to_client(error)
        return len(pending)


def _track(
    messages: tuple[Message, ...], *, asked: dict[RequestId, Pending], answered: dict[RequestId, Pending]
) -> None:
    """Book-keeping for one direction: the sender's requests now pending, the other side's now answered.

    ``asked`` holds the sender's open requests, ``answered`` the other side's.
    A ``notifications/cancelled`` withdraws one of the sender's own requests,
    which the receiver need never answer.
    """
    now = time.monotonic()
    for message in messages:
        if message.kind is Kind.REQUEST and message.id is not None and message.method is not None:
            asked[message.id] = Pending(message.method, now)
        elif message.kind is Kind.RESPONSE and message.id is not None:
            answered.pop(message.id, None)
        elif message.method == "notifications/cancelled":
            params = message.obj.get("params")
            ident = params.get("requestId") if isinstance(params, dict) else None
            if isinstance(ident, str | int) and not isinstance(ident, bool):
                asked.pop(ident, None)


def _messages(parsed: Message | Batch) -> tuple[Message, ...]:
    return parsed.messages if isinstance(parsed, Batch) else (parsed,)
