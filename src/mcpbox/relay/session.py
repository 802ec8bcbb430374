"""The relaying part of a session: both pumps, signals, and how it ends.

Whatever ends the relay (the client closes stdin, a signal, the server exits,
an error), it returns an exit code and a reason; the caller then removes the
sandbox. Every wait here is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket

from mcpbox.errors import MCPBoxError, SandboxError
from mcpbox.logs.writer import SessionLog
from mcpbox.relay.pump import Relay
from mcpbox.relay.stdio import Output, open_input
from mcpbox.sandbox.supervisor import Sandbox

GRACE_AFTER_EOF = 1.0  # a server gets this long to exit on its own once its stdin closes
STOP_TIMEOUT = 1  # then SIGTERM, and SIGKILL this many seconds later
EXIT_WAIT = 5.0
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


async def relay_session(sandbox: Sandbox, sock: socket.socket, fds: tuple[int, int, int]) -> tuple[int, str]:
    stdin_fd, stdout_fd, stderr_fd = fds
    log = sandbox.log
    loop = asyncio.get_running_loop()
    client_in = await open_input(stdin_fd)
    client_out = await Output(stdout_fd).open()
    # Lossy past 1 MiB: a client that never reads stderr must not stall the relay (the log keeps it all).
    err_out = await Output(stderr_fd, lossy_cap=1 << 20).open()
    server_in, server_out = await asyncio.open_connection(sock=sock, limit=2**16)
    relay = Relay(
        log=log,
        client_out=client_out,
        err_out=err_out,
        to_server=server_out,
        max_bytes=sandbox.profile.policy.max_message_bytes,
    )
    stop = asyncio.Event()
    signals: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        signals.append(sig.name)
        stop.set()

    for sig in EXIT_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
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
            return await _server_gone(sandbox, relay, err_out)
    except MCPBoxError as error:
        log.event("relay_failed", reason=str(error))
        err_out.write(f"mcpbox: {error}\n".encode())
        return error.exit_code, str(error)
    else:
        why = f"signal {signals[0]}" if signals else "client closed stdin"
        log.event("shutdown", reason=why)
        relay.close_server_stdin()
        await _wait_or_stop(sandbox, server_task)
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


async def _server_gone(sandbox: Sandbox, relay: Relay, err_out: Output) -> tuple[int, str]:
    """The server exited (crash, `mcpbox stop`, OOM kill): no request it owed may hang."""
    try:
        code: int | None = await asyncio.wait_for(asyncio.wrap_future(sandbox.exited), timeout=EXIT_WAIT)
    except (TimeoutError, MCPBoxError):
        code = None
    why = f"the MCP server exited with code {code}" if code is not None else "the MCP server's output closed"
    failed = await relay.fail_pending(why, exit_code=code)
    sandbox.log.event("server_exited", exit_code=code, failed_requests=failed)
    err_out.write(
        f"mcpbox: {why} (session {sandbox.session}, profile {sandbox.profile.name}); "
        f"{failed} pending request(s) answered with errors; log: {sandbox.log.path}\n".encode()
    )
    return 1, why


async def _wait_or_stop(sandbox: Sandbox, server_task: asyncio.Task[None]) -> None:
    """Bounded: let the server exit on EOF, then SIGTERM, then SIGKILL."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(server_task), timeout=GRACE_AFTER_EOF)
        return
    sandbox.log.event("stopping", reason=f"server still running {GRACE_AFTER_EOF}s after stdin closed")
    with contextlib.suppress(MCPBoxError):
        await asyncio.to_thread(sandbox.stop, STOP_TIMEOUT)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(server_task), timeout=STOP_TIMEOUT + 2)


__all__ = ["SessionLog", "relay_session"]
