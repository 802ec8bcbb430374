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
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcpbox.errors import MCPBoxError
from mcpbox.profile import Profile, load_profile

if TYPE_CHECKING:
    from mcpbox.logs.signing import Signer
    from mcpbox.logs.writer import SessionLog
    from mcpbox.secrets.store import Resolved

PR_SET_DUMPABLE = 4


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
    from mcpbox.sandbox.spec import ImageConfig, Owner, container_name, create_body  # noqa: PLC0415

    profile = load_profile(name_or_path)
    owner = Owner(session="dry-run", pid=os.getpid(), started=0.0, host="dry-run")
    result: dict[str, Any] = {"name": container_name("dry-run")}
    try:  # the image's VOLUMEs become tmpfs too, and its command is needed to wrap it; only the engine knows them
        from mcpbox.sandbox.docker import Engine  # noqa: PLC0415

        image = Engine(timeout=5).image_config(profile.image)
    except MCPBoxError as error:
        image = ImageConfig(cmd=("<the image's command>",))
        result["note"] = f"image unknown ({error.message}); each of its VOLUMEs would get a noexec tmpfs at run"
    if profile.secrets:
        result["secrets"] = [
            {"var": ref.var, "entry": ref.entry, "as": "file" if ref.as_file else "env"} for ref in profile.secrets
        ]
        result["secrets_note"] = "values are read from the OS keyring at run and sent over stdin, never in this body"
    if profile.network.none:
        result["body"] = create_body(profile, owner, image)
        return result
    from mcpbox.sandbox.egress import egress_body  # noqa: PLC0415

    # The server joins the namespace of an egress container that holds the rules and the resolver.
    result["egress_body"] = egress_body(profile.network, owner, profile.name)
    result["body"] = create_body(profile, owner, image, egress="<the egress container>")
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


def _remove_orphan(container_ids: list[str], networks: list[str]) -> None:
    """Runs in the guardian process, and imports the engine client only if it must act."""
    from mcpbox.sandbox.docker import Engine  # noqa: PLC0415

    engine = Engine(timeout=10)
    for container_id in container_ids:
        with contextlib.suppress(MCPBoxError):
            engine.remove(container_id)
    for network in networks:  # after the containers: a network in use cannot be removed
        engine.remove_network(network)


def _run(session: str, profile: Profile, log: SessionLog, fds: tuple[int, int, int]) -> RunResult:
    from mcpbox.sandbox.watchdog import Watchdog  # noqa: PLC0415

    started = time.monotonic()
    log.event(
        "start", session=session, profile=profile.name, image=profile.image, source=str(profile.source), pid=os.getpid()
    )
    # The guardian is forked before the docker SDK is imported: a small process with no threads,
    # and before any secret is read, so that it never holds one.
    watchdog = Watchdog.start(_remove_orphan)
    _sign(profile, log, fds[2])
    try:
        resolved = _secrets(profile, log, fds[2])
    except MCPBoxError as error:
        watchdog.release(cleaned_up=True)  # nothing was created
        return _refused(session, log, error, fds)
    from mcpbox.policy import prewarm  # noqa: PLC0415
    from mcpbox.sandbox.supervisor import Sandbox  # noqa: PLC0415 - the docker SDK: ~100 ms

    prewarm()  # after the guardian's fork: a thread must not be running when a process forks

    sandbox = Sandbox(profile, session, log, watchdog, resolved)
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
        log.start_signing()  # the key lookup overlaps the server's boot, when this thread mostly waits
        # Desktop clients show a server's stderr in their logs: say where ours is.
        with contextlib.suppress(OSError):
            os.write(fds[2], f"mcpbox: session {session} (profile {profile.name}); log: {log.path}\n".encode())
        sandbox.collect_garbage_in_background()
        _prune_logs_in_background(profile, log)
        import asyncio  # noqa: PLC0415 - imported while the server boots in its container

        from mcpbox.relay.session import relay_session  # noqa: PLC0415
        from mcpbox.secrets.mask import Masker  # noqa: PLC0415

        code, reason = asyncio.run(relay_session(sandbox, sock, fds, Masker(resolved)))
    finally:
        sandbox.remove(fds[2])
    log.event("end", exit_code=code, reason=reason)
    return RunResult(session, code, reason, log.path)


def _sign(profile: Profile, log: SessionLog, stderr_fd: int) -> None:
    """Seal the log with the keyring's key; without a secure keyring the session runs, and says
    (on stderr and in the log) that its log is unsigned: `logs verify` never calls it sealed."""
    if not profile.log.sign:
        log.unsigned("the profile sets log.sign: false")
        return

    def load() -> Signer:
        from mcpbox.logs.signing import Signer, load_or_make_key  # noqa: PLC0415

        _no_dumps()  # the private key is about to be in memory
        return Signer.of(load_or_make_key())

    def warn(text: str) -> None:
        with contextlib.suppress(OSError):
            os.write(stderr_fd, f"mcpbox: warning: {text}\n".encode())

    log.sign_with(load, warn, start=False)


def _prune_logs_in_background(profile: Profile, log: SessionLog) -> None:
    """`log.keep_days` holds without a cron job: each run removes its profile's logs past their time."""
    import threading  # noqa: PLC0415

    def work() -> None:
        from mcpbox.logs.retention import expired, prune  # noqa: PLC0415

        try:
            gone = prune(expired(profile=profile.name, older_than_days=profile.log.keep_days))
        except OSError as error:
            log.event("prune_failed", reason=str(error))
            return
        if gone:
            log.event("logs_pruned", sessions=[item.path.stem for item in gone], keep_days=profile.log.keep_days)

    threading.Thread(target=work, name="mcpbox-prune", daemon=True).start()


def _secrets(profile: Profile, log: SessionLog, stderr_fd: int) -> list[Resolved]:
    """Every value the profile names, read from the OS keyring before any container exists."""
    if not profile.secrets:
        return []
    from mcpbox.secrets.store import SecretStore, overdue  # noqa: PLC0415 - keyring: only secret profiles pay

    _no_dumps()  # before the first value is in memory
    store = SecretStore()
    resolved = store.resolve(profile.secrets)
    for late in overdue(profile.secrets, store.set_times()):
        log.event("secret_overdue", entry=late.ref.entry, age_days=late.age_days)
        with contextlib.suppress(OSError):
            os.write(
                stderr_fd,
                f"mcpbox: warning: {late.describe()}; rotate it: mcpbox secret set {late.ref.entry}\n".encode(),
            )
    return resolved


def _no_dumps() -> None:
    """This process now holds secrets: no core file on disk, and no same-user ptrace or /proc/PID/mem reads."""
    import resource  # noqa: PLC0415

    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        import ctypes  # noqa: PLC0415

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def _refused(session: str, log: SessionLog | None, error: MCPBoxError, fds: tuple[int, int, int]) -> RunResult:
    from mcpbox.relay.refusal import refuse  # noqa: PLC0415

    if log is not None:
        log.event("start_failed", error=type(error).__name__, reason=str(error))
    refuse(error, fds)
    return RunResult(session, error.exit_code, str(error), log.path if log is not None else None)
