"""`mcpbox logs export`: a session log as data for other tools."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import typer

from mcpbox.errors import UsageError


def _deliver(chunks: Iterable[bytes], output: str, *, force: bool) -> None:
    """To stdout for "-", else to a new 0600 file (an existing one only with --force)."""
    if output == "-":
        out = sys.stdout.buffer
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        return
    from mcpbox.logs.export import write_private

    write_private(Path(output), chunks, force=force)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `mcpbox logs` group."""

    @app.command("export")
    def export(
        session: str = typer.Argument(..., help="A session id (or a unique prefix), or a log file."),
        fmt: str = typer.Option(
            "jsonl", "--format", "-f", help="jsonl: the records as stored; otlp: OpenTelemetry spans (OTLP/JSON)."
        ),
        output: str = typer.Option(
            "-", "-o", "--output", help="The file to write (readable by you only); - is stdout."
        ),
        force: bool = typer.Option(False, "--force", help="Replace the output file if it exists."),
    ) -> None:
        """Export a session log: its records byte for byte (jsonl), or one span per call (otlp)."""
        from mcpbox.logs import export as exporting
        from mcpbox.logs.verify import find_log

        if fmt not in exporting.FORMATS:
            raise UsageError(f"unknown export format {fmt!r}.", f"Use --format {' or '.join(exporting.FORMATS)}.")
        path = find_log(session)
        chunks = exporting.jsonl(path) if fmt == "jsonl" else [exporting.otlp_bytes(path)]
        _deliver(chunks, output, force=force)
