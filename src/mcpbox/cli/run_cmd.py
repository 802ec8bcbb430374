"""`mcpbox run PROFILE [--dry-run]`."""

from __future__ import annotations

import typer

from mcpbox.cli.output import emit_json


def run(
    profile: str = typer.Argument(..., help="A profile name (user dir, then built-ins) or a path to a YAML file."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the exact container configuration; start nothing."),
) -> int:
    """Start PROFILE's server in a sandbox and relay MCP on stdin/stdout."""
    from mcpbox import launcher

    if dry_run:
        emit_json(launcher.dry_run(profile))
        return 0
    result = launcher.run(profile)
    return result.exit_code
