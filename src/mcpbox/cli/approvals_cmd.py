"""`mcpbox approvals [list | approve ID | deny ID]`: a person's yes or no for calls that wait."""

from __future__ import annotations

import json
import sys
import time

import typer

from mcpbox._text import visible
from mcpbox.cli.output import emit_json, emit_table

app = typer.Typer(help="Answer tool calls that wait for a person's approval.", invoke_without_command=True)


@app.callback()
def interactive(
    ctx: typer.Context,
    watch: bool = typer.Option(False, "--watch", "-w", help="Keep waiting for new requests until Ctrl-C."),
) -> None:
    """Ask about each pending approval in turn (the default when no subcommand is given)."""
    if ctx.invoked_subcommand is not None:
        return
    from mcpbox.policy import approvals

    seen: set[str] = set()
    while True:
        for ask in approvals.pending():
            if ask.id in seen:
                continue
            seen.add(ask.id)
            typer.echo(_describe(ask))
            answer = typer.prompt("Allow? [y/N]", default="n", show_default=False) if sys.stdin.isatty() else _line()
            approvals.decide(ask, answer.strip().lower() in ("y", "yes"))
            typer.echo("approved" if answer.strip().lower() in ("y", "yes") else "denied")
        if not watch:
            if not seen:
                typer.echo("no approvals are pending")
            return
        time.sleep(0.5)


def _line() -> str:
    return sys.stdin.readline()


def _describe(ask: object) -> str:
    from mcpbox.policy.approvals import Ask

    assert isinstance(ask, Ask)  # noqa: S101 - only called with asks
    left = max(0, int(ask.deadline - time.time()))
    arguments = visible(json.dumps(ask.arguments, indent=2, ensure_ascii=False, default=str))
    return (
        f"\n[{ask.id}] profile {ask.profile}, session {ask.session} ({left} s left)\n"
        f"{visible(ask.what)}\n{'tool: ' + visible(ask.tool) + chr(10) if ask.tool else ''}arguments:\n{arguments}"
    )


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Pending approvals of every live session."""
    from dataclasses import asdict

    from mcpbox.policy import approvals

    asks = approvals.pending()
    if as_json:
        emit_json({"approvals": [asdict(ask) for ask in asks]})
        return
    if not asks:
        typer.echo("no approvals are pending")
        return
    rows = [[a.id, a.profile, a.session, a.tool or "-", max(0, int(a.deadline - time.time()))] for a in asks]
    emit_table(["ID", "PROFILE", "SESSION", "TOOL", "SECONDS LEFT"], rows)


def _answer(ask_id: str, approve: bool) -> None:
    from mcpbox.errors import UsageError
    from mcpbox.policy import approvals

    ask = next((ask for ask in approvals.pending() if ask.id == ask_id), None)
    if ask is None:
        raise UsageError(f"no pending approval {ask_id}.", "Run `mcpbox approvals list` to see them.")
    approvals.decide(ask, approve)
    typer.echo(f"{'approved' if approve else 'denied'} {ask_id}")


@app.command("approve")
def approve(ask_id: str = typer.Argument(..., help="The ID `mcpbox approvals list` shows.")) -> None:
    """Allow one pending call, once."""
    _answer(ask_id, True)


@app.command("deny")
def deny(ask_id: str = typer.Argument(..., help="The ID `mcpbox approvals list` shows.")) -> None:
    """Refuse one pending call."""
    _answer(ask_id, False)
