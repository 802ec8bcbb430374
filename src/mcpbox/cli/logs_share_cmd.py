"""`mcpbox logs report` and `mcpbox logs export`: a session log as a page to share, or as data for other tools."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mcpbox.errors import UsageError

if TYPE_CHECKING:
    from mcpbox.logs.signing import Verifier


def _deliver(chunks: Iterable[bytes], output: str, *, force: bool) -> None:
    """To stdout for "-", else to a new 0600 file (an existing one only with --force)."""
    if output == "-":
        try:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader went away (`| head`): end quietly, as a Unix tool does, and keep Python's
            # own flush at exit from failing on the closed pipe.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            raise typer.Exit(141) from None
        return
    from mcpbox.logs.export import write_private

    write_private(Path(output), chunks, force=force)


def _verifier() -> Verifier | None:
    """The keyring's log key, to check seals as `logs verify` does; None when no keyring is usable."""
    from mcpbox.errors import KeyringError
    from mcpbox.logs.signing import Verifier, load_key

    try:
        key = load_key()
    except KeyringError:
        return None  # the page then says the seals were not checked
    return Verifier([] if key is None else [key.public_key()])


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `mcpbox logs` group."""

    @app.command("report")
    def report(
        session: str = typer.Argument(..., help="A session id (or a unique prefix), or a log file."),
        output: str = typer.Option(
            ..., "-o", "--output", metavar="FILE.html", help="The HTML file to write, or - for stdout."
        ),
        force: bool = typer.Option(False, "--force", help="Replace the output file if it exists."),
    ) -> None:
        """Write one self-contained HTML page of a session: summary, calls, verdicts, payloads.

        The page loads nothing from the network and runs no script but its own; everything the
        server or the model said is shown as escaped text. The file is made readable by you only.
        """
        from mcpbox.logs.report import render_report
        from mcpbox.logs.verify import find_log

        page = render_report(find_log(session), _verifier())
        # "replace": a lone surrogate from a peer's JSON is spelled out before this; this is the backstop.
        _deliver([page.encode("utf-8", "replace")], output, force=force)
        if output != "-":
            typer.echo(f"wrote {output}", err=True)

    @app.command("export")
    def export(
        session: str = typer.Argument(..., help="A session id (or a unique prefix), or a log file."),
        fmt: str = typer.Option(
            "jsonl",
            "--format",
            "-f",
            metavar="jsonl|otlp",
            help="jsonl: the records as stored; otlp: OpenTelemetry spans (OTLP/JSON).",
        ),
        output: str = typer.Option(
            "-", "-o", "--output", metavar="FILE", help="The file to write (readable by you only); - is stdout."
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
