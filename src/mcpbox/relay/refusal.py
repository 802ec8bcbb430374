"""When nothing can start: tell the client why, in JSON-RPC, instead of hanging it."""

from __future__ import annotations

import contextlib
import os
import selectors
import time

from mcpbox import jsonrpc
from mcpbox.errors import MCPBoxError
from mcpbox.jsonrpc import Kind, Message
from mcpbox.relay.framing import Line, LineFramer

ANSWER_WINDOW = 30.0  # how long a failed start keeps answering the client's requests


def refuse(error: MCPBoxError, fds: tuple[int, int, int]) -> None:
    """Say why on stderr, and answer the client's requests with the same sentence.

    Answers every request until the client has heard it on `initialize`, closes
    stdin, or the window ends. The SDK's `server/discover` probe falls back to
    `initialize` on any error but -32022, so both eras see the message on their
    first request. Blocking I/O is enough here: there is nothing else to do.
    """
    stdin_fd, stdout_fd, stderr_fd = fds
    with contextlib.suppress(OSError):
        os.write(stderr_fd, f"mcpbox: {error}\n".encode())
    # A person at a terminal has read the sentence already; only a client on a pipe waits for an answer.
    if os.isatty(stdin_fd):
        return
    deadline = time.monotonic() + ANSWER_WINDOW
    framer = LineFramer(1 << 20)
    with contextlib.suppress(OSError), selectors.DefaultSelector() as selector:
        selector.register(stdin_fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0 and selector.select(left):
            chunk = os.read(stdin_fd, 65536)
            frames = framer.feed(chunk) if chunk else framer.close()
            for frame in frames:
                if _answer(frame, error, stdout_fd):
                    return
            if not chunk:
                return


def _answer(frame: object, error: MCPBoxError, stdout_fd: int) -> bool:
    """Answer one frame if it is a request; True once `initialize` has been answered."""
    if not isinstance(frame, Line):
        return False
    parsed = jsonrpc.parse(frame.data)
    if not (isinstance(parsed, Message) and parsed.kind is Kind.REQUEST):
        return False
    data = memoryview(jsonrpc.error_from(parsed.id, error.rpc_error()))
    while data:
        data = data[os.write(stdout_fd, data) :]
    return parsed.method == "initialize"
