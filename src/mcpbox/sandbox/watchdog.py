"""A guardian process that removes the sandbox if mcpbox dies without doing so.

Forked before anything else starts, it waits on a pipe whose only writer is the
mcpbox process. The kernel closes that pipe however mcpbox ends, SIGKILL
included, so end-of-file means "your owner is gone": if mcpbox did not say it
cleaned up, the guardian removes the container itself. It leaves the client's
process group (so a group-wide kill does not take it too) and holds none of
the client's pipes (so the client still sees mcpbox's stdout close at once).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable

_DONE = b"done\n"


class Watchdog:
    def __init__(self, write_fd: int, pid: int) -> None:
        self._fd = write_fd
        self.pid = pid

    @classmethod
    def start(cls, remove: Callable[[list[str], list[str]], None]) -> Watchdog:
        """Fork the guardian; ``remove(container_ids, networks)`` runs in it if the owner dies."""
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child; exercised by the SIGKILL tests
            os.close(write_fd)
            _guard(read_fd, remove)
            os._exit(0)
        os.close(read_fd)
        os.set_inheritable(write_fd, False)
        return cls(write_fd, pid)

    def guard(self, container_id: str) -> None:
        os.write(self._fd, f"id {container_id}\n".encode())

    def guard_network(self, network: str) -> None:
        """Removed after the containers, which must leave it first."""
        os.write(self._fd, f"net {network}\n".encode())

    def release(self, *, cleaned_up: bool = True) -> None:
        """If the owner cleaned up, the guardian exits without touching the engine;
        if not, it removes the container itself, as it would after a SIGKILL."""
        if self._fd < 0:
            return
        if cleaned_up:
            with contextlib.suppress(OSError):
                os.write(self._fd, _DONE)
        os.close(self._fd)
        self._fd = -1
        if cleaned_up:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)


def _guard(read_fd: int, remove: Callable[[list[str], list[str]], None]) -> None:  # pragma: no cover - child process
    os.setsid()
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, read_fd)
    os.closerange(read_fd + 1, 4096)
    data = b""
    while chunk := os.read(read_fd, 4096):
        data += chunk
    if data.endswith(_DONE):
        return
    lines = data.decode().splitlines()
    ids = [line[3:] for line in lines if line.startswith("id ")]
    networks = [line[4:] for line in lines if line.startswith("net ")]
    # Nothing to report to from here; `mcpbox gc` at the next start retries.
    with contextlib.suppress(Exception):
        remove(ids, networks)
