"""One sandbox's life, synchronously: CREATED -> STARTED -> REMOVED.

Kept free of asyncio (and of the relay) so that `mcpbox run` reaches the
engine's `start` having imported only what that needs; the relay's imports then
overlap the server's own start-up inside the container.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import socket
import threading
from collections.abc import Sequence
from enum import Enum

from mcpbox.errors import EngineError, MCPBoxError, SandboxError
from mcpbox.logs.writer import SessionLog
from mcpbox.profile import Profile
from mcpbox.sandbox.docker import Engine
from mcpbox.sandbox.owners import collect_garbage, current_owner
from mcpbox.sandbox.spec import container_name, create_body
from mcpbox.sandbox.watchdog import Watchdog
from mcpbox.secrets import handoff
from mcpbox.secrets.store import Resolved

REMOVAL_WAIT = 5.0


class State(Enum):
    NEW = "new"
    STARTED = "started"
    REMOVED = "removed"


class Sandbox:
    def __init__(
        self, profile: Profile, session: str, log: SessionLog, watchdog: Watchdog, secrets: Sequence[Resolved] = ()
    ) -> None:
        self.profile = profile
        self._secrets = secrets
        self.session = session
        self.log = log
        self.state = State.NEW
        self.engine: Engine | None = None
        self.container_id: str | None = None
        # Resolved with the exit code once the engine has removed the (auto-removing) container.
        self.exited: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._watchdog = watchdog

    def start(self) -> socket.socket:
        """Create, attach, start; the socket carries the server's stdin and multiplexed stdout/stderr."""
        if not self.profile.network.none:
            raise SandboxError(
                f"profile {self.profile.name} has a network allow-list, which this build of mcpbox cannot enforce yet.",
                "Remove network: from the profile (the server then has no network at all).",
            )
        self.engine = engine = Engine()
        body = create_body(self.profile, current_owner(self.session), engine.image_config(self.profile.image))
        self.container_id = cid = engine.create(body, container_name(self.session))
        self._watchdog.guard(cid)
        sock = engine.attach(cid)
        threading.Thread(target=self._wait_exit, name="mcpbox-wait", daemon=True).start()
        try:
            engine.start(cid)
        except EngineError as error:
            if self._secrets and "/bin/sh" in error.message:
                raise SandboxError(
                    f"the image {self.profile.image} has no /bin/sh, which mcpbox needs to hand secrets to the server.",
                    "Use an image with a POSIX shell (any Debian, Alpine, python or node image has one).",
                ) from error
            raise
        self.state = State.STARTED
        if self._secrets:
            # First bytes on the server's stdin, before the relay forwards anything from the client.
            try:
                sock.sendall(handoff.frame(self._secrets))
            except OSError as exc:
                raise SandboxError(
                    f"could not hand the secrets to the sandbox ({exc.strerror or exc}).",
                    "The server exited at once; run it again and read the session log.",
                ) from exc
            self.log.event("secrets_injected", names=[item.ref.entry for item in self._secrets])
        return sock

    def _wait_exit(self) -> None:
        assert self.engine is not None and self.container_id is not None  # noqa: S101 - set before the thread
        try:
            self.exited.set_result(self.engine.wait_removed(self.container_id))
        except BaseException as exc:
            self.exited.set_exception(exc)

    def collect_garbage_in_background(self) -> None:
        """Remove other sessions' orphans, off the start-up path."""

        def work() -> None:
            assert self.engine is not None  # noqa: S101 - started
            try:
                for info in collect_garbage(self.engine):
                    self.log.event("gc_removed", container=info.id, session=info.session, profile=info.profile)
            except MCPBoxError as error:
                self.log.event("gc_failed", reason=str(error))

        threading.Thread(target=work, name="mcpbox-gc", daemon=True).start()

    def stop(self, timeout: int) -> None:
        """SIGTERM to the container's init, SIGKILL ``timeout`` seconds later."""
        if self.engine is not None and self.container_id is not None:
            self.engine.stop(self.container_id, timeout)

    def remove(self, stderr_fd: int) -> None:
        """Bounded and idempotent. If removal cannot be confirmed, the guardian takes over."""
        removed = True
        try:
            if self.engine is not None and self.container_id is not None and self.state is not State.REMOVED:
                removed = self._remove(stderr_fd)
        finally:
            self._watchdog.release(cleaned_up=removed)

    def _remove(self, stderr_fd: int) -> bool:
        assert self.engine is not None and self.container_id is not None  # noqa: S101 - checked by remove()
        try:
            self.engine.remove(self.container_id)
            code = self.exited.result(timeout=REMOVAL_WAIT)
        except (MCPBoxError, concurrent.futures.TimeoutError) as error:
            self.log.event("remove_failed", container=self.container_id, reason=str(error) or "timeout")
            with contextlib.suppress(OSError):
                os.write(stderr_fd, f"mcpbox: could not confirm removal of container {self.container_id}\n".encode())
            return False
        self.state = State.REMOVED
        self.log.event("removed", container=self.container_id, exit_code=code)
        return True
