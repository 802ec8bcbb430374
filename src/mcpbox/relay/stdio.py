"""The relay's ends as asyncio protocols: bytes in by callback, bytes out by transport.

Callbacks instead of stream readers keep each message on a synchronous path
(frame, decide, log, write) with no task switch per message, which is most of
the relay's cost. Flow control is wired end to end: when an end's write buffer
fills, the end feeding it stops reading until it drains.

Pipes, sockets and terminals get non-blocking transports; anything else (a
regular file, say) falls back to a reading thread or blocking writes, so
`mcpbox run < requests.jsonl` works as well as a desktop client's pipes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import stat
import threading
from collections.abc import Callable

HANGUP_POLL = 0.25  # seconds between hang-up checks while reading is paused


def _nothing(_data: bytes = b"") -> None:
    return None


class End(asyncio.Protocol):
    """One end of the relay. Incoming bytes go to ``on_data``; ``write`` sends bytes out."""

    def __init__(self, name: str, *, lossy_cap: int | None = None, fallback_fd: int | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.name = name
        self.on_data: Callable[[bytes], None] = _nothing
        self.on_eof: Callable[[], None] = _nothing
        self.feeder: End | None = None  # the end whose reading pauses while this end's write buffer is full
        self.transport: asyncio.BaseTransport | None = None
        self.eof: asyncio.Future[None] = loop.create_future()  # no more bytes will come in
        self.error: BaseException | None = None  # a fault in our own callback: the relay must stop
        self.broken = False  # the peer went away; writes are dropped
        self.lossy_cap = lossy_cap  # for stderr: drop rather than stall when nobody reads
        self.dropped = 0
        self._fallback_fd = fallback_fd  # blocking writes, for a regular file
        self._hangup_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.on_data(data)
        except Exception as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        self._finish()
        return True  # a socket stays open for writing: the other direction may still flow

    def connection_lost(self, exc: Exception | None) -> None:
        self.broken = True
        self._finish()

    def pause_writing(self) -> None:
        if self.feeder is not None and isinstance(self.feeder.transport, asyncio.ReadTransport):
            self.feeder.transport.pause_reading()
            self.feeder._watch_hangup()

    def resume_writing(self) -> None:
        if self.feeder is not None and isinstance(self.feeder.transport, asyncio.ReadTransport):
            self.feeder.transport.resume_reading()
            self.feeder._unwatch_hangup()

    def _watch_hangup(self) -> None:
        """While reading is paused, end-of-file cannot be seen; a hang-up still can.

        Without this, a client that gives up while the server is not reading its
        stdin would leave mcpbox (and its sandbox) waiting forever.
        """
        pipe = self.transport.get_extra_info("pipe") if self.transport is not None else None
        fileno = getattr(pipe, "fileno", None)
        if fileno is None or self._hangup_timer is not None:
            return
        fd = fileno()
        loop = asyncio.get_running_loop()
        poller = select.poll()
        poller.register(fd, select.POLLHUP | getattr(select, "POLLRDHUP", 0))

        def check() -> None:
            self._hangup_timer = None
            if any(event & (select.POLLHUP | getattr(select, "POLLRDHUP", 0)) for _, event in poller.poll(0)):
                self.broken = True
                self._finish()
            elif not self.eof.done():
                self._hangup_timer = loop.call_later(HANGUP_POLL, check)

        self._hangup_timer = loop.call_later(HANGUP_POLL, check)

    def _unwatch_hangup(self) -> None:
        if self._hangup_timer is not None:
            self._hangup_timer.cancel()
            self._hangup_timer = None

    # -- used by the relay -------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if self.broken:
            return
        if not isinstance(transport, asyncio.WriteTransport):
            if self._fallback_fd is not None:
                try:
                    os.write(self._fallback_fd, data)
                except OSError:
                    self.broken = True
            return
        if transport.is_closing():
            self.broken = True
            return
        if self.lossy_cap is not None and transport.get_write_buffer_size() > self.lossy_cap:
            self.dropped += len(data)
            return
        transport.write(data)

    def buffered(self) -> int:
        """Bytes written to this end that the peer has not taken yet."""
        transport = self.transport
        return transport.get_write_buffer_size() if isinstance(transport, asyncio.WriteTransport) else 0

    def write_eof(self) -> None:
        """Half-close: the peer reads end-of-file, and can still answer."""
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                if transport.can_write_eof():
                    transport.write_eof()

    async def close(self, grace: float = 2.0) -> None:
        """Flush what is buffered (bounded by ``grace`` seconds), then close."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if isinstance(transport, asyncio.WriteTransport):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace
            while transport.get_write_buffer_size() and not self.broken and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        transport.close()

    def _finish(self) -> None:
        if not self.eof.done():
            try:
                self.on_eof()
            except Exception as exc:
                self.error = exc
            self.eof.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        if self.transport is not None:
            self.transport.close()
        self._finish()


def _pollable(fd: int) -> bool:
    """Pipes and sockets go on the event loop. Terminals, /dev/null and regular files do
    not: epoll refuses some of them (EPERM) only later, inside a callback, where asyncio
    could not fall back any more."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


async def connect_input(end: End, fd: int) -> None:
    """Read ``fd`` into ``end``: a pipe transport, or a reading thread for anything else."""
    loop = asyncio.get_running_loop()
    if _pollable(fd):
        await loop.connect_read_pipe(lambda: end, os.fdopen(os.dup(fd), "rb", buffering=0))
    else:

        def pump() -> None:
            # RuntimeError: the session ended (its loop closed) while this thread sat in read().
            with contextlib.suppress(OSError, RuntimeError):
                while chunk := os.read(fd, 65536):
                    loop.call_soon_threadsafe(end.data_received, chunk)
                loop.call_soon_threadsafe(end.eof_received)

        threading.Thread(target=pump, name="mcpbox-stdin", daemon=True).start()


async def connect_output(end: End, fd: int) -> None:
    """Write ``end`` to ``fd``: a pipe transport, or blocking writes for anything else."""
    if _pollable(fd):
        await asyncio.get_running_loop().connect_write_pipe(lambda: end, os.fdopen(os.dup(fd), "wb", buffering=0))
    else:
        end._fallback_fd = fd


async def connect_socket(end: End, sock: socket.socket) -> None:
    await asyncio.get_running_loop().create_connection(lambda: end, sock=sock)
