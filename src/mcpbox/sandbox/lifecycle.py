"""Operations on running sandboxes by session id."""

from __future__ import annotations

from mcpbox.errors import SessionNotFoundError
from mcpbox.sandbox.docker import Engine

STOP_TIMEOUT = 2


def stop_session(session: str, engine: Engine | None = None) -> str:
    """Stop the sandbox of ``session`` (a full id or a unique prefix); returns the full id."""
    engine = engine or Engine()
    # The server's container: once it is gone, its mcpbox tears down the rest (the egress side too).
    candidates = [s for s in engine.sandboxes() if s.role == "server"]
    matches = [s for s in candidates if s.session.startswith(session)] if session else []
    if len(matches) != 1:
        found = "no" if not matches else f"{len(matches)}"
        raise SessionNotFoundError(
            f"{found} running sandbox(es) match session {session!r}.", "Run `mcpbox ps` and pass one session id."
        )
    engine.stop(matches[0].id, STOP_TIMEOUT)
    engine.remove(matches[0].id)
    return matches[0].session
