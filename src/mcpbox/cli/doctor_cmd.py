"""`mcpbox doctor`: what this host needs for sandboxes, and how to fix what is missing."""

from __future__ import annotations

import typer

from mcpbox.cli.output import emit_json, emit_table


def doctor(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Check the engine, seccomp, cgroups, keyring, images, network allow-lists and orphans; exit 1 on a problem."""
    from mcpbox.doctor import PROBLEM, diagnose

    checks = diagnose()
    if as_json:
        emit_json({"ok": all(c.status != PROBLEM for c in checks), "checks": [c.as_dict() for c in checks]})
    else:
        emit_table(["CHECK", "STATUS", "DETAIL", "FIX"], [[c.name, c.status.upper(), c.detail, c.fix] for c in checks])
    if any(c.status == PROBLEM for c in checks):
        raise typer.Exit(1)
