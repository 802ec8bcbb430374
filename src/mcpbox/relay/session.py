"""One `mcpbox run`: profile -> sandbox -> relay -> bounded teardown.

Lifecycle: CREATED -> STARTED -> RELAYING -> STOPPING -> REMOVED. Whatever ends
the relay (client closes stdin, a signal, the server exits, an error), the same
teardown runs, each step bounded, and the guardian process covers the one path
no code of ours can run on: mcpbox itself being SIGKILLed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcpbox import jsonrpc
from mcpbox.errors import MCPBoxError, SandboxError
from mcpbox.jsonrpc import Kind, Message
from mcpbox.logs.writer import SessionLog
from mcpbox.profile import Profile, load_profile
from mcpbox.relay.framing import Line, LineFramer
from mcpbox.relay.pump import Relay
from mcpbox.relay.stdio import Output, open_input
from mcpbox.sandbox.spec import Owner, container_name, create_body

if TYPE_CHECKING:
    from mcpbox.sandbox.docker import Engine
    from mcpbox.sandbox.watchdog import Watchdog

GRACE_AFTER_EOF = 1.0  # a server gets this long to exit on its own once its stdin closes
STOP_TIMEOUT = 1  # then SIGTERM, and SIGKILL this many seconds later
REMOVAL_WAIT = 5.0
FAILURE_ANSWER_WINDOW = 30.0  # how long a failed start keeps answering the client's requests
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


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
    profile = load_profile(name_or_path)
    owner = Owner(session="dry-run", pid=os.getpid(), started=0.0, host="dry-run")
    return {"name": container_name("dry-run"), "body": create_body(profile, owner)}


def run(name_or_path: str, *, stdin_fd: int = 0, stdout_fd: int = 1, stderr_fd: int = 2) -> RunResult:
    """Serve one MCP client on the given descriptors through a sandboxed server."""
    session = new_session_id()
    try:
        profile = load_profile(name_or_path)
    except MCPBoxError as error:
        return _refuse(session, None, error, (stdin_fd, stdout_fd, stderr_fd))
    try:
        log = SessionLog.for_session(session, payloads=profile.log.payloads)
    except MCPBoxError as error:
        return _refuse(session, None, error, (stdin_fd, stdout_fd, stderr_fd))
    return _Session(session, profile, log, (stdin_fd, stdout_fd, stderr_fd)).run()


def _remove_orphan(container_id: str) -> None:
    """Runs in the guardian process, which imports the engine client only if it must act."""
    from mcpbox.sandbox.docker import Engine  # noqa: PLC0415

    Engine(timeout=10).remove(container_id)


class _Session:
    def __init__(self, session: str, profile: Profile, log: SessionLog, fds: tuple[int, int, int]) -> None:
        self.session = session
        self.profile = profile
        self.log = log
        self.stdin_fd, self.stdout_fd, self.stderr_fd = fds
        self.engine: Engine | None = None
        self.container_id: str | None = None
        self.watchdog: Watchdog | None = None
        self.exited: concurrent.futures.Future[int] = concurrent.futures.Future()

    def run(self) -> RunResult:
        from mcpbox.sandbox.watchdog import Watchdog  # noqa: PLC0415

        started = time.monotonic()
        self.log.event(
            "start",
            session=self.session,
            profile=self.profile.name,
            image=self.profile.image,
            source=str(self.profile.source),
            pid=os.getpid(),
        )
        # Fork the guardian first, while this process is small and has no threads.
        self.watchdog = Watchdog.start(_remove_orphan)
        try:
            try:
                sock = self._start_sandbox()
            except MCPBoxError as error:
                return _refuse(self.session, self.log, error, (self.stdin_fd, self.stdout_fd, self.stderr_fd))
            self.log.event("started", container=self.container_id, ms=round((time.monotonic() - started) * 1000, 1))
            # Desktop clients show a server's stderr in their logs: say where ours is.
            with contextlib.suppress(OSError):
                os.write(
                    self.stderr_fd,
                    f"mcpbox: session {self.session} (profile {self.profile.name}); log: {self.log.path}\n".encode(),
                )
            threading.Thread(target=self._collect_garbage, name="mcpbox-gc", daemon=True).start()
            code, reason = asyncio.run(self._relay(sock))
            return RunResult(self.session, code, reason, self.log.path)
        finally:
            self._remove_sandbox()
            self.watchdog.release()
            self.log.close()

    def _start_sandbox(self) -> Any:
        from mcpbox.sandbox.docker import Engine  # noqa: PLC0415 - ~150 ms; not needed for --help or profile checks
        from mcpbox.sandbox.owners import current_owner  # noqa: PLC0415

        self.engine = engine = Engine()
        body = create_body(self.profile, current_owner(self.session))
        self.container_id = cid = engine.create(body, container_name(self.session))
        assert self.watchdog is not None  # noqa: S101 - set by run()
        self.watchdog.guard(cid)
        sock = engine.attach(cid)
        threading.Thread(target=self._wait_exit, name="mcpbox-wait", daemon=True).start()
        engine.start(cid)
        return sock

    def _wait_exit(self) -> None:
        assert self.engine is not None and self.container_id is not None  # noqa: S101
        try:
            self.exited.set_result(self.engine.wait_removed(self.container_id))
        except BaseException as exc:
            self.exited.set_exception(exc)

    def _collect_garbage(self) -> None:
        from mcpbox.sandbox.owners import collect_garbage  # noqa: PLC0415

        assert self.engine is not None  # noqa: S101
        try:
            for info in collect_garbage(self.engine):
                self.log.event("gc_removed", container=info.id, session=info.session, profile=info.profile)
        except MCPBoxError as error:
            self.log.event("gc_failed", reason=str(error))

    async def _relay(self, sock: Any) -> tuple[int, str]:
        loop = asyncio.get_running_loop()
        client_in = await open_input(self.stdin_fd)
        client_out = await Output(self.stdout_fd).open()
        err_out = await Output(self.stderr_fd, lossy_cap=1 << 20).open()
        server_in, server_out = await asyncio.open_connection(sock=sock, limit=2**16)
        relay = Relay(
            log=self.log,
            client_out=client_out,
            err_out=err_out,
            to_server=server_out,
            max_bytes=self.profile.policy.max_message_bytes,
        )
        stop = asyncio.Event()
        signals: list[str] = []

        def on_signal(sig: signal.Signals) -> None:
            signals.append(sig.name)
            stop.set()

        for sig in EXIT_SIGNALS:
            loop.add_signal_handler(sig, on_signal, sig)
        exited = asyncio.wrap_future(self.exited)
        client_task = asyncio.create_task(relay.pump_client(client_in), name="client->server")
        server_task = asyncio.create_task(relay.pump_server(server_in), name="server->client")
        stop_task = asyncio.create_task(stop.wait(), name="signals")
        try:
            done, _ = await asyncio.wait({client_task, server_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop_task and (exc := task.exception()) is not None:
                    raise SandboxError(
                        f"the relay failed ({type(exc).__name__}: {exc}).",
                        "This is a bug in mcpbox; the session log has the details.",
                    ) from exc
            if server_task in done and client_task not in done and not stop.is_set():
                return await self._server_gone(relay, exited, err_out)
        except MCPBoxError as error:
            self.log.event("relay_failed", reason=str(error))
            err_out.write(f"mcpbox: {error}\n".encode())
            return error.exit_code, str(error)
        else:
            why = f"signal {signals[0]}" if signals else "client closed stdin"
            self.log.event("shutdown", reason=why)
            relay.close_server_stdin()
            await self._wait_or_stop(server_task)
            return 0, why
        finally:
            for task in (client_task, stop_task, server_task):
                task.cancel()
            await asyncio.gather(client_task, stop_task, server_task, return_exceptions=True)
            for sig in EXIT_SIGNALS:
                loop.remove_signal_handler(sig)
            server_out.close()
            await client_out.close()
            await err_out.close()

    async def _server_gone(self, relay: Relay, exited: asyncio.Future[int], err_out: Output) -> tuple[int, str]:
        try:
            code: int | None = await asyncio.wait_for(asyncio.shield(exited), timeout=REMOVAL_WAIT)
        except (TimeoutError, MCPBoxError):
            code = None
        why = f"the MCP server exited with code {code}" if code is not None else "the MCP server's output closed"
        failed = await relay.fail_pending(why, exit_code=code)
        self.log.event("server_exited", exit_code=code, failed_requests=failed)
        err_out.write(
            f"mcpbox: {why} (session {self.session}, profile {self.profile.name}); "
            f"{failed} pending request(s) answered with errors; log: {self.log.path}\n".encode()
        )
        return 1, why

    async def _wait_or_stop(self, server_task: asyncio.Task[None]) -> None:
        """Bounded: let the server exit on EOF, then SIGTERM, then SIGKILL."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(server_task), timeout=GRACE_AFTER_EOF)
            return
        assert self.engine is not None and self.container_id is not None  # noqa: S101
        self.log.event("stopping", reason=f"server still running {GRACE_AFTER_EOF}s after stdin closed")
        with contextlib.suppress(MCPBoxError):
            await asyncio.to_thread(self.engine.stop, self.container_id, STOP_TIMEOUT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(server_task), timeout=STOP_TIMEOUT + 2)

    def _remove_sandbox(self) -> None:
        if self.engine is None or self.container_id is None:
            return
        try:
            self.engine.remove(self.container_id)
            code = self.exited.result(timeout=REMOVAL_WAIT)
            self.log.event("removed", container=self.container_id, exit_code=code)
        except (MCPBoxError, concurrent.futures.TimeoutError) as error:
            # The guardian still holds the id and retries once this process is gone.
            self.log.event("remove_failed", container=self.container_id, reason=str(error) or "timeout")
            with contextlib.suppress(OSError):
                os.write(self.stderr_fd, f"mcpbox: could not confirm removal of {self.container_id}\n".encode())
            return
        self.container_id = None


def _refuse(session: str, log: SessionLog | None, error: MCPBoxError, fds: tuple[int, int, int]) -> RunResult:
    """Nothing could start: say why on stderr, and answer the client's requests with the same sentence."""
    stdin_fd, stdout_fd, stderr_fd = fds
    if log is not None:
        log.event("start_failed", error=type(error).__name__, reason=str(error))
    with contextlib.suppress(OSError):
        os.write(stderr_fd, f"mcpbox: {error}\n".encode())
    # A person at a terminal has read the sentence already; only a client on a pipe waits for an answer.
    if not os.isatty(stdin_fd):
        with contextlib.suppress(Exception):
            asyncio.run(asyncio.wait_for(_answer_with(error, stdin_fd, stdout_fd), FAILURE_ANSWER_WINDOW))
    return RunResult(session, error.exit_code, str(error), log.path if log is not None else None)


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
