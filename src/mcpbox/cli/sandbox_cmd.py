"""`mcpbox ps | stop SESSION | gc`: the sandboxes running on this engine."""

from __future__ import annotations

import time
from typing import Any

import typer

from mcpbox.cli.output import emit_json, emit_table


def ps(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Running sandboxes, with their session, profile and owning mcpbox process."""
    from mcpbox.sandbox.docker import Engine
    from mcpbox.sandbox.owners import is_orphan, this_host

    host = this_host()
    rows = Engine().sandboxes()
    data: list[dict[str, Any]] = [
        {
            "session": r.session,
            "profile": r.profile,
            "container": r.id[:12],
            "state": r.state,
            "parent_pid": r.parent_pid,
            "orphan": is_orphan(r, host),
            "created": r.created,
            "role": r.role,
        }
        for r in rows
    ]
    if as_json:
        emit_json(data)
        return
    now = time.time()
    emit_table(
        ["SESSION", "PROFILE", "CONTAINER", "ROLE", "STATE", "PID", "AGE", "ORPHAN"],
        [
            (
                d["session"],
                d["profile"],
                d["container"],
                d["role"],
                d["state"],
                d["parent_pid"],
                f"{int(now - d['created'])}s",
                "yes" if d["orphan"] else "",
            )
            for d in data
        ],
    )


def stop(session: str = typer.Argument(..., help="A session id from `mcpbox ps`.")) -> None:
    """Stop SESSION's sandbox; its mcpbox answers pending requests with errors and exits."""
    from mcpbox.sandbox.lifecycle import stop_session

    stopped = stop_session(session)
    typer.echo(f"stopped {stopped}")


def gc(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Remove sandboxes whose mcpbox process is gone."""
    from mcpbox.sandbox.docker import Engine
    from mcpbox.sandbox.owners import collect_garbage

    removed = collect_garbage(Engine())
    if as_json:
        emit_json([{"session": r.session, "profile": r.profile, "container": r.id} for r in removed])
        return
    typer.echo(
        f"removed {len(removed)} orphaned sandbox(es)" + "".join(f"\n  {r.session} ({r.profile})" for r in removed)
    )
