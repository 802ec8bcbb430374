"""Asyncio ends for mcpbox's own stdin, stdout and stderr.

Pipes, sockets and terminals get non-blocking transports; anything else (a
regular file, say) falls back to a thread or to blocking writes, so `mcpbox
run < requests.jsonl` works as well as a desktop client's pipes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading


async def open_input(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**16)
    try:
        pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    except ValueError:
        pipe.close()
        _read_in_thread(fd, reader, loop)
    return reader


def _read_in_thread(fd: int, reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop) -> None:
    def pump() -> None:
        try:
            while chunk := os.read(fd, 65536):
                loop.call_soon_threadsafe(reader.feed_data, chunk)
        except OSError:
            pass
        loop.call_soon_threadsafe(reader.feed_eof)

    threading.Thread(target=pump, name="mcpbox-stdin", daemon=True).start()


class Output:
    """A byte sink with backpressure (``drain``), or with a cap (``lossy``) for stderr,
    where a client that never reads must not stall the relay."""

    def __init__(self, fd: int, *, lossy_cap: int | None = None) -> None:
        self.fd = fd
        self.lossy_cap = lossy_cap
        self.dropped = 0
        self.broken = False
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> Output:
        loop = asyncio.get_running_loop()
        try:
            pipe = os.fdopen(os.dup(self.fd), "wb", buffering=0)
            transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, pipe)
        except ValueError:
            pipe.close()
            return self  # regular file or similar: blocking writes are fine there
        self._writer = asyncio.StreamWriter(transport, protocol, None, loop)
        return self

    def write(self, data: bytes) -> None:
        if self.broken:
            return
        if self._writer is None:
            try:
                os.write(self.fd, data)
            except OSError:
                self.broken = True
            return
        transport = self._writer.transport
        if transport.is_closing():
            self.broken = True
            return
        if self.lossy_cap is not None and transport.get_write_buffer_size() > self.lossy_cap:
            self.dropped += len(data)
            return
        transport.write(data)

    async def drain(self) -> None:
        if self._writer is not None and not self.broken:
            try:
                await self._writer.drain()
            except (ConnectionError, RuntimeError):
                self.broken = True

    async def close(self, grace: float = 2.0) -> None:
        """Flush what is buffered (bounded by ``grace`` seconds), then close."""
        if self._writer is None:
            return
        # Closing a pipe transport writes out its buffer first; wait_closed() returns once it has.
        self._writer.close()
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(self._writer.wait_closed(), grace)
