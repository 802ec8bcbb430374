"""Placeholder: filled in by the change that adds these commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `mcpbox logs` group."""
