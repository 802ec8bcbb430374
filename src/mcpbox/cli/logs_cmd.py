"""`mcpbox logs verify [SESSION | --all]`: is each session log as it was written?"""

from __future__ import annotations

import typer

from mcpbox.cli import logs_share_cmd, logs_view_cmd
from mcpbox.cli.output import emit_json, emit_table
from mcpbox.errors import UsageError

app = typer.Typer(help="Session logs: list, read, search, check, share and prune them.", no_args_is_help=True)


@app.command("verify")
def verify(
    session: str | None = typer.Argument(None, help="A session id (or a unique prefix), or a log file."),
    every: bool = typer.Option(False, "--all", help="Every session log."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check the hash chain of a log; exit 1 and name the first bad record if it was altered."""
    from mcpbox.logs.verify import all_logs, find_log, verify_file

    if (session is None) == (not every):
        raise UsageError("name one SESSION or give --all.", "Run `mcpbox logs verify SESSION` or `--all`.")
    reports = [verify_file(path) for path in (all_logs() if every else [find_log(session or "")])]
    if as_json:
        emit_json({"logs": [report.as_dict() for report in reports]})
    else:
        rows = [
            [
                r.path.stem,
                r.records,
                "ok" if r.ok else "ALTERED",
                r.problem or ("ended" if r.ended else "no end record"),
            ]
            for r in reports
        ]
        emit_table(["SESSION", "RECORDS", "CHAIN", "DETAIL"], rows)
        typer.echo(
            "the chain shows edits, removals, insertions and reordering; a cut-off tail or a rewrite with fresh "
            "hashes needs the signatures that come with issue #6"
        )
    if not all(report.ok for report in reports):
        raise typer.Exit(1)


# Reading commands (list, show, tail, search, stats) and sharing ones (report, export) live in their own modules.
logs_view_cmd.register(app)
logs_share_cmd.register(app)
