"""When nothing can start: tell the client why, in JSON-RPC, instead of hanging it."""

from __future__ import annotations

import asyncio
import contextlib
import os

from mcpbox import jsonrpc
from mcpbox.errors import MCPBoxError
from mcpbox.jsonrpc import Kind, Message
from mcpbox.relay.framing import Line, LineFramer
from mcpbox.relay.stdio import Output, open_input

ANSWER_WINDOW = 30.0  # how long a failed start keeps answering the client's requests


def refuse(error: MCPBoxError, fds: tuple[int, int, int]) -> None:
    """Say why on stderr, and answer the client's requests with the same sentence."""
    stdin_fd, stdout_fd, stderr_fd = fds
    with contextlib.suppress(OSError):
        os.write(stderr_fd, f"mcpbox: {error}\n".encode())
    # A person at a terminal has read the sentence already; only a client on a pipe waits for an answer.
    if not os.isatty(stdin_fd):
        with contextlib.suppress(Exception):
            asyncio.run(asyncio.wait_for(_answer_with(error, stdin_fd, stdout_fd), ANSWER_WINDOW))


async def _answer_with(error: MCPBoxError, stdin_fd: int, stdout_fd: int) -> None:
    """Answer every request with ``error`` until the client gives up or has heard it on `initialize`.

    The SDK's `server/discover` probe falls back to `initialize` on any error but -32022,
    so both eras see the message on their first request.
    """
    reader = await open_input(stdin_fd)
    out = await Output(stdout_fd).open()
    framer = LineFramer(1 << 20)
    try:
        while chunk := await reader.read(65536):
            for frame in framer.feed(chunk):
                if not isinstance(frame, Line):
                    continue
                parsed = jsonrpc.parse(frame.data)
                if isinstance(parsed, Message) and parsed.kind is Kind.REQUEST:
                    out.write(jsonrpc.error_from(parsed.id, error.rpc_error()))
                    await out.drain()
                    if parsed.method == "initialize":
                        return
    finally:
        await out.close()
