"""The relay's two pumps: frame -> decide -> log -> forward the bytes as received.

Synchronous: each chunk of bytes from either side is framed and handled, in
order, inside the transport's callback, so nothing is reordered within a
direction and no message waits for a task switch. Every frame is logged before it is forwarded.
What cannot be forwarded (non-JSON-RPC output, oversized lines, unsolicited
responses) is logged and, where someone is waiting for an answer, answered with
a JSON-RPC error instead of being left to hang.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcpbox import jsonrpc
from mcpbox._text import visible
from mcpbox.errors import RPC_MESSAGE_TOO_LARGE, RPC_SERVER_EXITED
from mcpbox.jsonrpc import Batch, Invalid, Kind, Message, RequestId
from mcpbox.logs.writer import SessionLog
from mcpbox.relay.framing import STDERR, STDOUT, DockerDemux, Frame, Line, LineFramer, Oversize
from mcpbox.relay.stdio import End
from mcpbox.secrets.mask import Masker

if TYPE_CHECKING:
    from mcpbox.policy.decision import Verdict
    from mcpbox.policy.engine import Engine

STDERR_LINE_LIMIT = 64 * 1024
MAX_SERVER_PENDING = 4096
MAX_SERVER_REPLY_BACKLOG = 1 << 20  # bytes waiting for the server, past which mcpbox's own replies are dropped
C2S, S2C = "c2s", "s2c"


@dataclass(slots=True)
class Pending:
    method: str
    started: float


class Relay:
    def __init__(
        self, *, log: SessionLog, client: End, server: End, stderr: End, max_bytes: int, masker: Masker | None = None
    ) -> None:
        self.log = log
        # Secret values are masked in everything logged, and in everything sent to the client or the terminal.
        self.masker = masker if masker else None
        self.client = client  # mcpbox's stdin/stdout: we write the client's incoming messages here
        self.server = server  # the attach socket: container stdin out, stdout/stderr in
        self.stderr = stderr
        self.max_bytes = max_bytes
        self.from_client: dict[RequestId, Pending] = {}  # client requests the server has not answered
        self.from_server: dict[RequestId, Pending] = {}  # server requests the client has not answered
        self.own_requests: set[RequestId] = set()  # mcpbox's own requests to the server (policy's tools/list)
        self.server_writable = True
        self.counts = {C2S: 0, S2C: 0, "dropped": 0, "replies_dropped": 0}
        self._client_lines = LineFramer(max_bytes)
        self._server_lines = LineFramer(max_bytes)
        self._stderr_lines = LineFramer(STDERR_LINE_LIMIT)
        self._demux = DockerDemux()
        self.policy: Engine | None = None  # set by the session: the engine needs this relay for its effects
        self.schedule: Callable[[float, Callable[[], None]], Callable[[], None]] = _loop_timer

    # ---- bytes in -----------------------------------------------------------

    def feed_client(self, chunk: bytes) -> None:
        for frame in self._client_lines.feed(chunk):
            self._from_client(frame)

    def end_client(self) -> None:
        for frame in self._client_lines.close():
            self._from_client(frame)

    def feed_server(self, chunk: bytes) -> None:
        """Container output: Docker's multiplexed stdout and stderr."""
        for stream, payload in self._demux.feed(chunk):
            if stream == STDOUT:
                for frame in self._server_lines.feed(payload):
                    self._from_server(frame)
            elif stream == STDERR:
                for frame in self._stderr_lines.feed(payload):
                    self._stderr(frame)

    def end_server(self) -> None:
        for frame in self._server_lines.close():
            self._from_server(frame)
        for frame in self._stderr_lines.close():
            self._stderr(frame)

    # ---- client -> server ---------------------------------------------------

    def _from_client(self, frame: Frame) -> None:
        if isinstance(frame, Oversize):
            self._oversize(C2S, frame)
            return
        raw = frame.data
        if not raw.strip():
            return
        parsed = jsonrpc.parse(raw)
        if isinstance(parsed, Invalid):
            self.log.text(
                C2S, self._hide(C2S, raw), verdict="reply", reason=f"invalid message: {parsed.reason}", rule="relay"
            )
            code = jsonrpc.PARSE_ERROR if parsed.reason.startswith("not valid") else jsonrpc.INVALID_REQUEST
            self._to_client(jsonrpc.error_response(parsed.id, code, f"mcpbox: {parsed.reason}"))
            return
        if self.policy is not None:
            self._judge(C2S, raw, parsed)
            return
        _track(_messages(parsed), asked=self.from_client, answered=self.from_server)
        # The server holds its secrets already: only the log copy is masked.
        self._log_message(C2S, self._hide(C2S, raw, parsed), parsed)
        self._to_server(raw)

    # ---- server -> client ---------------------------------------------------

    def _from_server(self, frame: Frame) -> None:
        if isinstance(frame, Oversize):
            self._oversize(S2C, frame)
            return
        raw = frame.data
        if not raw.strip():
            return
        parsed = jsonrpc.parse(raw)
        if isinstance(parsed, Invalid):
            self.log.text(
                S2C,
                self._hide(S2C, raw),
                verdict="drop",
                reason=f"not a JSON-RPC message: {parsed.reason}",
                rule="relay",
            )
            self.counts["dropped"] += 1
            if parsed.id is not None and parsed.id in self.from_client:
                # A broken answer to a real request: the client gets an error, not a hang.
                self.from_client.pop(parsed.id)
                self._to_client(
                    jsonrpc.error_response(
                        parsed.id,
                        jsonrpc.INTERNAL_ERROR,
                        f"mcpbox: the server's response was malformed ({parsed.reason})",
                    )
                )
            return
        masked = self._hide(S2C, raw, parsed)
        if masked is not raw and masked != raw:
            # Policy and rewrites work on the decoded message: it must be the masked one.
            reparsed = jsonrpc.parse(masked)
            if isinstance(reparsed, Invalid):
                self.log.text(S2C, masked, verdict="drop", reason="masking left no valid message", rule="relay")
                return
            parsed = reparsed
        raw = masked
        messages = _messages(parsed)
        unsolicited = self._unsolicited(messages)
        for m in messages:
            if m.kind is Kind.RESPONSE and m.id in self.own_requests:
                self.own_requests.discard(m.id)
        if unsolicited:
            # Only answers to requests the client actually made reach it; anything else could be forged.
            self._log_message(S2C, raw, parsed, verdict="drop", reason="response to no pending request", rule="relay")
            self.counts["dropped"] += 1
            return
        requests = [m for m in messages if m.kind is Kind.REQUEST]
        if requests and len(self.from_server) + len(requests) > MAX_SERVER_PENDING:
            # A server flooding the client with requests it never lets finish would grow this map without end.
            reason = f"more than {MAX_SERVER_PENDING} server requests awaiting the client"
            self._log_message(S2C, raw, parsed, verdict="reply", reason=reason, rule="relay")
            for request in requests:
                self._reply_to_server(jsonrpc.error_response(request.id, jsonrpc.INTERNAL_ERROR, f"mcpbox: {reason}"))
            return
        if self.policy is not None:
            self._judge(S2C, raw, parsed)
            return
        _track(messages, asked=self.from_server, answered=self.from_client)
        self._log_message(S2C, raw, parsed)
        self._to_client(raw)

    # ---- policy -------------------------------------------------------------

    def _judge(self, direction: str, raw: bytes, parsed: Message | Batch) -> None:
        """Every message through the policy chain; each verdict is logged with its rule."""
        assert self.policy is not None  # noqa: S101 - only called when a policy is set
        toward_server = direction == C2S
        if isinstance(parsed, Message):
            verdict = self.policy.from_client(parsed, raw) if toward_server else self.policy.from_server(parsed, raw)
            if verdict.action == "forward":
                self._pass(direction, raw, parsed)
                return
            self._log_message(
                direction, self._hide(direction, raw, parsed) if toward_server else raw, parsed,
                verdict=verdict.verdict, reason=verdict.reason, rule=verdict.rule,
            )  # fmt: skip
            self._apply(direction, verdict)
            return
        verdicts = [
            self.policy.from_client(m) if toward_server else self.policy.from_server(m, None) for m in parsed.messages
        ]
        if all(v.action == "forward" for v in verdicts):
            self._pass(direction, raw, parsed)
            return
        # A batch is judged element by element; what may pass goes on as one (smaller) batch.
        passing: list[dict[str, Any]] = []
        for message, verdict in zip(parsed.messages, verdicts, strict=True):
            if verdict.action == "forward":
                passing.append(message.obj)
            elif verdict.action == "rewrite" and verdict.message is not None:
                passing.append(verdict.message)
            else:
                self._apply(direction, verdict)
        first = next(v for v in verdicts if v.action != "forward")
        self._log_message(
            direction, self._hide(direction, raw, parsed) if toward_server else raw, parsed,
            verdict="rewrite", reason=first.reason, rule=first.rule,
        )  # fmt: skip
        if passing:
            data = jsonrpc.encode(passing)
            new = jsonrpc.parse(data)
            if not isinstance(new, Invalid):
                self._pass(direction, data, new, verdict="sent", rule=first.rule)

    def _apply(self, direction: str, verdict: Verdict) -> None:
        """Carry out a verdict other than forward (the original is logged already)."""
        if verdict.message is None:
            return  # hold, drop
        data = jsonrpc.encode(verdict.message)
        new = jsonrpc.classify(verdict.message)  # the decoded form is in hand: no second parse
        if isinstance(new, Invalid):
            return
        if verdict.action == "rewrite":
            self._pass(direction, data, new, verdict="sent", rule=verdict.rule)
        elif verdict.action == "reply":
            # The answer goes back where the message came from; it never reaches the other side.
            back = S2C if direction == C2S else C2S
            self._log_message(back, self._hide(back, data, new), new, verdict="mcpbox", rule=verdict.rule)
            if direction == C2S:
                self._to_client(data)
            else:
                self._reply_to_server(data)

    def _pass(
        self,
        direction: str,
        data: bytes,
        parsed: Message | Batch,
        *,
        verdict: str = "forward",
        rule: str | None = None,
        reason: str | None = None,
    ) -> None:
        if direction == C2S:
            _track(_messages(parsed), asked=self.from_client, answered=self.from_server)
            self._log_message(C2S, self._hide(C2S, data, parsed), parsed, verdict=verdict, rule=rule, reason=reason)
            self._to_server(data)
        else:
            _track(_messages(parsed), asked=self.from_server, answered=self.from_client)
            self._log_message(S2C, data, parsed, verdict=verdict, rule=rule, reason=reason)
            self._to_client(data)

    # Effects: what the policy engine does on its own (approvals, timeouts).

    def release_to_server(self, message: dict[str, Any], raw: bytes | None, *, rule: str, reason: str) -> None:
        self._released(C2S, message, raw, rule, reason)

    def release_to_client(self, message: dict[str, Any], raw: bytes | None, *, rule: str, reason: str) -> None:
        self._released(S2C, message, raw, rule, reason)

    def _released(self, direction: str, message: dict[str, Any], raw: bytes | None, rule: str, reason: str) -> None:
        # What a person approved goes on exactly as it was held: the bytes received, when there are some.
        data = raw if raw is not None else jsonrpc.encode(message)
        parsed = jsonrpc.classify(message)
        if not isinstance(parsed, Invalid):
            self._pass(direction, data, parsed, verdict="released", rule=rule, reason=reason)

    def send_client(self, message: dict[str, Any], *, rule: str, reason: str) -> None:
        parsed = self._own(S2C, message, rule, reason)
        if parsed is not None:
            if parsed.kind is Kind.RESPONSE and parsed.id is not None:
                self.from_client.pop(parsed.id, None)  # mcpbox answered it: nobody else may, fail_pending included
            self._to_client(jsonrpc.encode(message))

    def send_server(self, message: dict[str, Any], *, rule: str, reason: str) -> None:
        parsed = self._own(C2S, message, rule, reason)
        if parsed is not None:
            if parsed.kind is Kind.REQUEST and parsed.id is not None:
                self.own_requests.add(parsed.id)
            self._reply_to_server(jsonrpc.encode(message))

    def _own(self, direction: str, message: dict[str, Any], rule: str, reason: str) -> Message | None:
        """Log a message mcpbox itself sends; ``None`` if it is not one (a bug: nothing is sent)."""
        data = jsonrpc.encode(message)
        parsed = jsonrpc.classify(message)
        if not isinstance(parsed, Message):
            self.log.event("policy_error", error=f"mcpbox made an invalid message for {rule}")
            return None
        self._log_message(
            direction, self._hide(direction, data, parsed), parsed, verdict="mcpbox", rule=rule, reason=reason
        )
        return parsed

    def expire(self, ident: RequestId) -> bool:
        return self.from_client.pop(ident, None) is not None

    def call_later(self, delay: float, action: Callable[[], None]) -> Callable[[], None]:
        return self.schedule(delay, action)

    def warn(self, text: str) -> None:
        line = visible(self._mask_text(text)).replace("\n", " ")  # bidi and tag characters too, not only C0/C1
        self.log.event("warning", text=line)
        self.stderr.write(f"mcpbox: {line}\n".encode())

    def event(self, name: str, **fields: Any) -> None:
        self.log.event(name, **self.mask(fields))

    def mask(self, value: Any) -> Any:
        if self.masker is None:
            return value
        data = json.dumps(value, default=str).encode()
        masked, found = self.masker.mask(data, value)
        return json.loads(masked) if found else value

    def _mask_text(self, text: str) -> str:
        if self.masker is None:
            return text
        return self.masker.mask_text(text, set())

    def _unsolicited(self, messages: tuple[Message, ...]) -> list[Message]:
        """Responses to no request the client (or mcpbox) made, or a second answer to one in a batch."""
        answered: set[RequestId] = set()
        found = []
        for m in messages:
            if m.kind is not Kind.RESPONSE:
                continue
            if m.id is None:
                if not m.is_error:  # a null id is only for an error about a request the server could not read
                    found.append(m)
            elif (m.id not in self.from_client and m.id not in self.own_requests) or m.id in answered:
                found.append(m)
            else:
                answered.add(m.id)
        return found

    def _stderr(self, frame: Frame) -> None:
        data = self._hide(
            "stderr", frame.data if isinstance(frame, Line) else self._cut(frame.prefix) + b"...[truncated]\n"
        )
        reason = "server stderr" if isinstance(frame, Line) else f"server stderr line of {frame.size} bytes, truncated"
        self.log.text("stderr", data, verdict="forward", reason=reason)
        self.stderr.write(data if data.endswith(b"\n") else data + b"\n")

    # ---- shared -------------------------------------------------------------

    def _oversize(self, direction: str, frame: Oversize) -> None:
        """A line over the cap was dropped unread; whoever awaits an answer gets an error."""
        ident, method = frame.request_id(), frame.method()
        reason = f"message of {frame.size} bytes exceeds policy.max_message_bytes ({self.max_bytes})"
        self.log.text(
            direction, self._hide(direction, self._cut(frame.prefix[:512])), verdict="drop", reason=reason, rule="relay"
        )
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
                self._to_client(error)
            else:
                self._reply_to_server(error)
        elif direction == S2C and self.from_client.pop(ident, None) is not None:
            self._to_client(error)  # the server's answer was too big: the client hears why
        elif direction == C2S and self.from_server.pop(ident, None) is not None:
            self._reply_to_server(error)  # the client's answer was too big: the server hears why

    def _hide(self, direction: str, raw: bytes, parsed: Message | Batch | None = None) -> bytes:
        """``raw`` with every secret value masked; a masking is itself logged, with the names found."""
        if self.masker is None:
            return raw
        obj: object = None
        if isinstance(parsed, Message):
            obj = parsed.obj
        elif isinstance(parsed, Batch):
            obj = [message.obj for message in parsed.messages]
        masked, found = self.masker.mask(raw, obj)
        if found:
            self.log.event("masked", direction=direction, secrets=sorted(found))
        return masked

    def _cut(self, prefix: bytes) -> bytes:
        """A prefix of a longer line may end inside a value; drop the bytes that could be its start."""
        return self.masker.trim(prefix) if self.masker is not None else prefix

    def _log_message(
        self,
        direction: str,
        raw: bytes,
        parsed: Message | Batch,
        *,
        verdict: str = "forward",
        reason: str | None = None,
        rule: str | None = None,
    ) -> None:
        if reason and self.masker is not None:
            reason = self._mask_text(reason)
        if isinstance(parsed, Batch):
            self.log.message(
                direction, raw, kind="batch", method=None, ident=None, verdict=verdict, reason=reason, rule=rule
            )
            return
        method, ident = parsed.method, parsed.id
        if self.masker is not None:
            # The log's own method and id fields come from the parse, not from the masked bytes.
            found: set[str] = set()
            method = self.masker.mask_text(method, found) if method is not None else None
            ident = self.masker.mask_text(ident, found) if isinstance(ident, str) else ident
        self.log.message(
            direction,
            raw,
            kind=parsed.kind.value,
            method=method,
            ident=ident,
            verdict=verdict,
            reason=reason,
            rule=rule,
        )

    def _to_client(self, data: bytes) -> None:
        self.counts[S2C] += 1
        self.client.write(data)

    def _to_server(self, data: bytes) -> None:
        if self.server_writable:
            self.counts[C2S] += 1
            self.server.write(data)

    def _reply_to_server(self, data: bytes) -> None:
        """mcpbox's own answers to the server. They are caused by the server's output, so
        backpressure on the client cannot hold them back: a server that provokes them and
        never reads its stdin would grow our buffer without end. Past the cap they are dropped."""
        if self.server.buffered() > MAX_SERVER_REPLY_BACKLOG:
            self.counts["dropped"] += 1
            self.counts["replies_dropped"] += 1
            if self.counts["replies_dropped"] == 1:  # once: the log must not grow with the flood either
                self.log.event("replies_dropped", reason="the server is not reading its stdin")
            return
        self._to_server(data)

    def close_server_stdin(self) -> None:
        """Half-close: the container sees end-of-file on stdin, as a server expects at shutdown."""
        if self.server_writable:
            self.server_writable = False
            self.server.write_eof()

    def fail_pending(self, why: str, *, exit_code: int | None) -> int:
        """The server is gone: every request it still owed an answer gets an error. Returns how many."""
        if self.policy is not None:
            self.policy.close(why)  # calls held for approval are answered too
        pending = list(self.from_client.items())
        self.from_client.clear()
        for ident, entry in pending:
            message = f"mcpbox: {why}; the request {entry.method!r} will not be answered"
            error = jsonrpc.error_response(
                ident, RPC_SERVER_EXITED, message, {"mcpbox": {"error": "ServerExited", "exitCode": exit_code}}
            )
            self.log.event("request_failed", id=ident, method=entry.method, reason=why)
            self._to_client(error)
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


def _loop_timer(delay: float, action: Callable[[], None]) -> Callable[[], None]:
    return asyncio.get_running_loop().call_later(delay, action).cancel


def _messages(parsed: Message | Batch) -> tuple[Message, ...]:
    return parsed.messages if isinstance(parsed, Batch) else (parsed,)
