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
from mcpbox.policy.approvals import Desk
from mcpbox.policy.engine import Engine
from mcpbox.relay.pump import C2S, S2C, Relay
from mcpbox.relay.stdio import End, connect_input, connect_output, connect_socket
from mcpbox.sandbox.supervisor import Sandbox
from mcpbox.secrets.mask import Masker

GRACE_AFTER_EOF = 1.0  # a server gets this long to exit on its own once its stdin closes
STOP_TIMEOUT = 1  # then SIGTERM, and SIGKILL this many seconds later
EXIT_WAIT = 5.0
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


async def relay_session(
    sandbox: Sandbox, sock: socket.socket, fds: tuple[int, int, int], masker: Masker | None = None
) -> tuple[int, str]:
    stdin_fd, stdout_fd, stderr_fd = fds
    log = sandbox.log
    loop = asyncio.get_running_loop()
    client, client_out, server = End("client"), End("client stdout"), End("server")
    # Lossy past 1 MiB: a client that never reads stderr must not stall the relay (the log keeps it all).
    stderr = End("stderr", lossy_cap=1 << 20)
    relay = Relay(
        log=log,
        client=client_out,
        server=server,
        stderr=stderr,
        max_bytes=sandbox.profile.policy.max_message_bytes,
        masker=masker,
    )
    desk = Desk(sandbox.session)
    relay.policy = Engine(sandbox.profile, sandbox.session, relay, desk=desk)
    client.on_data, client.on_eof = relay.feed_client, relay.end_client
    server.on_data, server.on_eof = relay.feed_server, relay.end_server
    # Backpressure: a full container stdin pauses reading the client; a full stdout pauses the container.
    server.feeder, client_out.feeder = client, server
    await connect_output(client_out, stdout_fd)
    await connect_output(stderr, stderr_fd)
    await connect_socket(server, sock)
    await connect_input(client, stdin_fd)
    signals: list[str] = []
    stopped: asyncio.Future[None] = loop.create_future()

    def on_signal(sig: signal.Signals) -> None:
        signals.append(sig.name)
        if not stopped.done():
            stopped.set_result(None)

    for sig in EXIT_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await asyncio.wait([client.eof, server.eof, stopped], return_when=asyncio.FIRST_COMPLETED)
        for end in (client, server):
            if end.error is not None:
                raise SandboxError(
                    f"the relay failed on the {end.name} side ({type(end.error).__name__}: {end.error}).",
                    "This is a bug in mcpbox; the session log has the details.",
                ) from end.error
        if server.eof.done() and not client.eof.done() and not stopped.done():
            return await _server_gone(sandbox, relay, stderr)
    except MCPBoxError as error:
        log.event("relay_failed", reason=str(error))
        relay.fail_pending(f"the relay failed ({error.message})", exit_code=None)
        stderr.write(f"mcpbox: {error}\n".encode())
        return error.exit_code, str(error)
    else:
        why = f"signal {signals[0]}" if signals else "client closed stdin"
        log.event("shutdown", reason=why)
        relay.close_server_stdin()
        await _wait_or_stop(sandbox, server.eof)
        return 0, why
    finally:
        relay.policy.close("the session ended")
        await desk.close()
        log.event(
            "relayed",
            to_server=relay.counts[C2S],
            to_client=relay.counts[S2C],
            dropped=relay.counts["dropped"],
            stderr_dropped_bytes=stderr.dropped,
        )
        for sig in EXIT_SIGNALS:
            loop.remove_signal_handler(sig)
        if server.transport is not None:
            server.transport.close()
        if client.transport is not None:
            client.transport.close()
        await client_out.close()
        await stderr.close()


async def _server_gone(sandbox: Sandbox, relay: Relay, stderr: End) -> tuple[int, str]:
    """The server exited (crash, `mcpbox stop`, OOM kill): no request it owed may hang."""
    try:
        code: int | None = await asyncio.wait_for(asyncio.wrap_future(sandbox.exited), timeout=EXIT_WAIT)
    except (TimeoutError, MCPBoxError):
        code = None
    why = f"the MCP server exited with code {code}" if code is not None else "the MCP server's output closed"
    failed = relay.fail_pending(why, exit_code=code)
    sandbox.log.event("server_exited", exit_code=code, failed_requests=failed)
    stderr.write(
        f"mcpbox: {why} (session {sandbox.session}, profile {sandbox.profile.name}); "
        f"{failed} pending request(s) answered with errors; log: {sandbox.log.path}\n".encode()
    )
    return 1, why


async def _wait_or_stop(sandbox: Sandbox, server_gone: asyncio.Future[None]) -> None:
    """Bounded: let the server exit on EOF, then SIGTERM, then SIGKILL."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(server_gone), timeout=GRACE_AFTER_EOF)
        return
    sandbox.log.event("stopping", reason=f"server still running {GRACE_AFTER_EOF}s after stdin closed")
    with contextlib.suppress(MCPBoxError):
        await asyncio.to_thread(sandbox.stop, STOP_TIMEOUT)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(server_gone), timeout=STOP_TIMEOUT + 2)
