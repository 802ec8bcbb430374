"""The typer application: command groups, each in its own module."""

from __future__ import annotations

import typer

from mcpbox._version import __version__
from mcpbox.cli import (
    approvals_cmd,
    base_cmd,
    build_cmd,
    client_cmd,
    doctor_cmd,
    logs_cmd,
    pins_cmd,
    profile_cmd,
    run_cmd,
    sandbox_cmd,
    secret_cmd,
)

app = typer.Typer(
    name="mcpbox",
    help="Run stdio MCP servers in locked-down Docker containers behind a logging relay.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mcpbox {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """mcpbox: a sandboxed launcher for MCP servers."""


app.command("run")(run_cmd.run)
app.add_typer(profile_cmd.app, name="profile")
app.add_typer(secret_cmd.app, name="secret")
app.add_typer(pins_cmd.app, name="pins")
app.add_typer(approvals_cmd.app, name="approvals")
app.add_typer(logs_cmd.app, name="logs")
app.add_typer(client_cmd.app, name="client")
app.add_typer(base_cmd.app, name="base")
app.command("ps")(sandbox_cmd.ps)
app.command("stop")(sandbox_cmd.stop)
app.command("gc")(sandbox_cmd.gc)
app.command("doctor")(doctor_cmd.doctor)
app.command("build")(build_cmd.build)
