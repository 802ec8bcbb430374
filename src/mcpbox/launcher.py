"""`mcpbox run`: profile -> sandbox -> relay -> bounded teardown.

Start-up is ordered for speed: only what creating and starting the container
needs is imported before `start`; asyncio and the relay are imported while the
server boots inside the container. The guardian process covers the one path no
code here can run on: mcpbox itself being SIGKILLed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcpbox.errors import MCPBoxError
from mcpbox.profile import Profile, load_profile

if TYPE_CHECKING:
    from mcpbox.logs.writer import SessionLog


@dataclass(frozen=True)
class RunResult:
    session: str
    exit_code: int
    reason: str
    log_path: Path | None


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def dry_run(name_or_path: str) -> dict[str, Any]:
    """The exact container create body `run` would send, without touching the engine."""
    from mcpbox.sandbox.spec import Owner, container_name, create_body  # noqa: PLC0415

    profile = load_profile(name_or_path)
    owner = Owner(session="dry-run", pid=os.getpid(), started=0.0, host="dry-run")
    result: dict[str, Any] = {"name": container_name("dry-run")}
    try:  # the image's VOLUMEs become tmpfs too; only the engine knows them
        from mcpbox.sandbox.docker import Engine  # noqa: PLC0415

        volumes = tuple(Engine(timeout=5).image_volumes(profile.image))
    except MCPBoxError as error:
        volumes = ()
        result["note"] = f"image volumes unknown ({error.message}); each would get a noexec tmpfs at run"
    result["body"] = create_body(profile, owner, volumes)
    return result


def run(name_or_path: str, *, stdin_fd: int = 0, stdout_fd: int = 1, stderr_fd: int = 2) -> RunResult:
    """Serve one MCP client on the given descriptors through a sandboxed server."""
    from mcpbox.logs.writer import SessionLog  # noqa: PLC0415

    fds = (stdin_fd, stdout_fd, stderr_fd)
    session = new_session_id()
    log: SessionLog | None = None
    try:
        profile = load_profile(name_or_path)
        log = SessionLog.for_session(session, payloads=profile.log.payloads)
    except MCPBoxError as error:
        return _refused(session, log, error, fds)
    try:
        return _run(session, profile, log, fds)
    finally:
        log.close()


def _remove_orphan(container_id: str) -> None:
    """Runs in the guardian process, and imports the engine client only if it must act."""
    from mcpbox.sandbox.docker import Engine  # noqa: PLC0415

    Engine(timeout=10).remove(container_id)


def _run(session: str, profile: Profile, log: SessionLog, fds: tuple[int, int, int]) -> RunResult:
    from mcpbox.sandbox.watchdog import Watchdog  # noqa: PLC0415

    started = time.monotonic()
    log.event(
        "start", session=session, profile=profile.name, image=profile.image, source=str(profile.source), pid=os.getpid()
    )
    # The guardian is forked before the docker SDK is imported: a small process with no threads.
    watchdog = Watchdog.start(_remove_orphan)
    from mcpbox.sandbox.supervisor import Sandbox  # noqa: PLC0415 - the docker SDK: ~100 ms

    sandbox = Sandbox(profile, session, log, watchdog)
    try:
        sock = sandbox.start()
    except BaseException as error:
        # Removed before the client is told: a refusal may wait up to 30 s for its requests.
        sandbox.remove(fds[2])
        if isinstance(error, MCPBoxError):
            return _refused(session, log, error, fds)
        raise
    try:
        log.event("started", container=sandbox.container_id, ms=round((time.monotonic() - started) * 1000, 1))
        # Desktop clients show a server's stderr in their logs: say where ours is.
        with contextlib.suppress(OSError):
            os.write(fds[2], f"mcpbox: session {session} (profile {profile.name}); log: {log.path}\n".encode())
        sandbox.collect_garbage_in_background()
        import asyncio  # noqa: PLC0415 - imported while the server boots in its container

        from mcpbox.relay.session import relay_session  # noqa: PLC0415

        code, reason = asyncio.run(relay_session(sandbox, sock, fds))
    finally:
        sandbox.remove(fds[2])
    log.event("end", exit_code=code, reason=reason)
    return RunResult(session, code, reason, log.path)


def _refused(session: str, log: SessionLog | None, error: MCPBoxError, fds: tuple[int, int, int]) -> RunResult:
    from mcpbox.relay.refusal import refuse  # noqa: PLC0415

    if log is not None:
        log.event("start_failed", error=type(error).__name__, reason=str(error))
    refuse(error, fds)
    return RunResult(session, error.exit_code, str(error), log.path if log is not None else None)
