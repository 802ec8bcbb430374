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
from collections.abc import Iterator, Sequence
from enum import Enum
from typing import Any

from mcpbox.errors import EngineError, MCPBoxError, SandboxError
from mcpbox.image_pins import check_pin
from mcpbox.logs.writer import SessionLog
from mcpbox.profile import Profile
from mcpbox.sandbox.docker import Engine
from mcpbox.sandbox.owners import collect_garbage, current_owner
from mcpbox.sandbox.spec import Owner, container_name, create_body, labels
from mcpbox.sandbox.volumes import ensure_volumes
from mcpbox.sandbox.watchdog import Watchdog
from mcpbox.secrets import handoff
from mcpbox.secrets.store import Resolved

REMOVAL_WAIT = 5.0
EGRESS_READY_WAIT = 15.0
MAX_NET_RECORDS = 100_000  # per session: ~30 MB of DNS and connection records


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
        self.egress_id: str | None = None  # with a network allow-list: the container holding the rules
        self.network: str | None = None  # ... and the session's own bridge network
        self.net_records = 0
        self._removing = False  # set when mcpbox itself tears the session down
        # Resolved with the exit code once the engine has removed the (auto-removing) container.
        self.exited: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._watchdog = watchdog

    def start(self) -> socket.socket:
        """Create, attach, start; the socket carries the server's stdin and multiplexed stdout/stderr."""
        self.profile.check_mounts()  # before anything is made
        self.engine = engine = Engine()
        owner = current_owner(self.session)
        image = engine.image_config(self.profile.image)  # before anything is made: a missing image costs nothing
        check_pin(self.profile, image.id)  # the image `mcpbox build` pinned, or a refusal saying how to re-pin
        for volume in ensure_volumes(engine, self.profile, image.id or None):
            self.log.event("volume_created", volume=volume, owner=self.profile.user)
        egress = None if self.profile.network.none else self._start_egress(engine, owner)
        body = create_body(self.profile, owner, image, egress=egress)
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

    def _start_egress(self, engine: Engine, owner: Owner) -> str:
        """The session's network side: its own bridge network, and the egress container that holds
        the rules and the resolver, running and ready before the server exists."""
        from mcpbox.sandbox import egress  # noqa: PLC0415 - only profiles with an allow-list pay

        for name in self.profile.network.docker_networks:  # checked first: a refusal then leaves nothing to remove
            if not engine.has_network(name):
                raise SandboxError(
                    f"profile {self.profile.name}: the Docker network {name!r} does not exist.",
                    f"Create it (`docker network create {name}`) or remove it from network.docker_networks.",
                )
        network = self.network = egress.session_network(self.session)
        engine.create_network(network, labels(owner, self.profile.name))
        self._watchdog.guard_network(network)
        body = egress.egress_body(self.profile.network, owner, self.profile.name)
        self.egress_id = cid = engine.create(body, f"mcpbox-egress-{self.session}")
        self._watchdog.guard(cid)
        for name in self.profile.network.docker_networks:  # the session's own network is in the body
            engine.connect(name, cid)
        lines = engine.output_lines(cid)
        engine.start(cid)
        ready, said = threading.Event(), list[bytes]()
        reader = threading.Thread(target=self._egress_records, args=(lines, ready, said), name="mcpbox-egress")
        reader.daemon = True
        reader.start()
        # Set by the ready line, or by the egress container's output ending without one (it failed).
        if not ready.wait(EGRESS_READY_WAIT) or not said or said[-1] != egress.READY:
            why = b" / ".join(said[-3:]).decode("utf-8", "replace") or f"no ready line within {EGRESS_READY_WAIT:.0f} s"
            raise SandboxError(
                f"the egress container of session {self.session} did not install its rules ({why}); "
                "the server was not started.",
                "Run `mcpbox doctor`, and check that the image mcpbox/egress:bookworm is built (scripts/setup.sh).",
            )
        self.log.event(
            "egress_ready", container=cid, network=network, allow=[d.entry for d in self.profile.network.allow]
        )
        return cid

    def _egress_records(self, lines: Iterator[bytes], ready: threading.Event, said: list[bytes]) -> None:
        """Every DNS query and connection attempt the egress side reports becomes a session-log record.
        Until the ready line, what it says is kept in ``said`` too, for the error if it never comes."""
        from mcpbox.sandbox.egress import READY, parse_line  # noqa: PLC0415

        # Read to the end, whatever a line holds: the egress side writes synchronously, and a reader
        # that stopped would stall the session's DNS and lose the connection log.
        for line in lines:
            if not ready.is_set():
                said.append(READY if READY in line else line.strip())
            if READY in line:
                ready.set()
                continue
            try:
                fields = parse_line(line)
                if fields is not None:
                    self._net_record(fields)
                elif line.strip():
                    self.log.text("stderr", line, verdict="forward", reason="egress container output")
            except Exception as exc:  # one bad line must not end the record of the rest
                self.log.event("egress_log_error", error=f"{type(exc).__name__}: {exc}")
        if ready.is_set():
            self._egress_gone()
        ready.set()  # the output ended: if it never said ready, the start fails now, not after the timeout

    def _egress_gone(self) -> None:
        """The egress container ended while the session ran: the server keeps the rules (nothing opens
        up), but its network is dead, so the session ends the way a crashed server ends it."""
        if self._removing or self.engine is None or self.container_id is None:
            return  # mcpbox's own teardown, or no server yet (the start reports it)
        self.log.event("egress_exited", container=self.egress_id, note="the session ends: its network side is gone")
        with contextlib.suppress(MCPBoxError):
            self.engine.stop(self.container_id, 1)

    def _net_record(self, fields: dict[str, Any]) -> None:
        """A server that hammers refused destinations must not fill the user's disk: past the quota,
        one record says so, and the rest are only counted (in the session's `net_records` event)."""
        self.net_records += 1
        if self.net_records <= MAX_NET_RECORDS:
            self.log.event("net", **fields)
        elif self.net_records == MAX_NET_RECORDS + 1:
            self.log.event("net_quota_reached", limit=MAX_NET_RECORDS)

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
        self._removing = True
        try:
            if self.engine is not None and self.container_id is not None and self.state is not State.REMOVED:
                removed = self._remove(stderr_fd)
            if self.engine is not None and (self.egress_id or self.network):
                removed = self._remove_egress() and removed
            if self.engine is not None and self.container_id is not None:
                self.engine.detach(self.container_id)
        finally:
            self._watchdog.release(cleaned_up=removed)

    def _remove_egress(self) -> bool:
        """The egress container, then the network (which cannot go while a container is on it)."""
        assert self.engine is not None  # noqa: S101 - checked by remove()
        try:
            if self.egress_id is not None:
                self.engine.remove(self.egress_id)
                self.log.event("removed", container=self.egress_id, role="egress", net_records=self.net_records)
                self.egress_id = None
            if self.network is not None:
                self.engine.remove_network(self.network)
                self.log.event("removed", network=self.network)
                self.network = None
        except MCPBoxError as error:
            self.log.event("remove_failed", container=self.egress_id, network=self.network, reason=str(error))
            return False
        return True

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
