"""`mcpbox logs verify | pubkey | prune`: is each session log as mcpbox wrote it, and how long it stays."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mcpbox.cli import logs_share_cmd, logs_view_cmd
from mcpbox.cli.output import emit_json, emit_table, emit_text
from mcpbox.errors import UsageError

if TYPE_CHECKING:
    from mcpbox.logs.signing import Verifier

app = typer.Typer(help="Session logs: list, read, search, check, share and prune them.", no_args_is_help=True)


@app.command("verify")
def verify(
    session: str | None = typer.Argument(None, help="A session id (or a unique prefix), or a log file."),
    every: bool = typer.Option(False, "--all", help="Every session log."),
    pubkey: list[Path] = typer.Option([], "--pubkey", help="A public key file from `logs pubkey` (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check a log's hash chain and seals; exit 1 unless every log is intact and sealed (or still running)."""
    from mcpbox.logs.verify import GOOD, all_logs, find_log, verify_file

    if (session is None) == (not every):
        raise UsageError("name one SESSION or give --all.", "Run `mcpbox logs verify SESSION` or `--all`.")
    paths = all_logs() if every else [find_log(session or "")]
    verifier = _verifier(pubkey)
    reports = [verify_file(path, verifier) for path in paths]
    if as_json:
        emit_json({"logs": [report.as_dict() for report in reports]})
    else:
        rows = [[r.path.stem, r.records, r.status.upper(), r.problem or r.detail] for r in reports]
        emit_table(["SESSION", "RECORDS", "STATUS", "DETAIL"], rows)
    if not all(report.status in GOOD for report in reports):
        raise typer.Exit(1)


def _verifier(files: list[Path]) -> Verifier | None:
    """The keys to check seals with: the files given, else the keyring's own (never made here)."""
    from mcpbox.errors import KeyringError
    from mcpbox.logs.signing import Verifier, load_key, read_public_keys

    if files:
        return Verifier(read_public_keys(files))
    try:
        key = load_key()
    except KeyringError:
        return None  # every sealed log is then reported "unchecked", with how to give a key
    return Verifier([] if key is None else [key.public_key()])


@app.command("pubkey")
def pubkey(
    output: Path | None = typer.Option(None, "-o", "--output", help="Write the PEM to this file."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Print the public key that checks this user's log seals (made on first use)."""
    from mcpbox.logs.signing import key_id, load_key, load_or_make_key, public_pem

    made = load_key() is None
    public = load_or_make_key().public_key()
    pem = public_pem(public)
    if made:
        sys.stderr.write("mcpbox: made a new log-signing key; it is in the OS keyring (entry _log-signing-key)\n")
    if output is not None:
        from mcpbox.logs.export import write_private

        write_private(output, [pem.encode()], force=True)  # a public key: replacing an older copy is fine
    if as_json:
        emit_json({"key": key_id(public), "pem": pem, "file": str(output) if output else None})
    elif output is None:
        sys.stdout.write(pem)
    else:
        emit_text(f"wrote the public key {key_id(public)} to {output}")


@app.command("prune")
def prune(
    older_than: float | None = typer.Option(
        None, "--older-than", min=0, help="Days; instead of each profile's log.keep_days (default 30)."
    ),
    profile: str | None = typer.Option(None, "--profile", help="Only this profile's logs."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would go; remove nothing."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Remove session logs older than their profile's log.keep_days; never a running session's."""
    from mcpbox.logs import retention

    due = retention.expired(older_than_days=older_than, profile=profile)
    gone = due if dry_run else retention.prune(due)
    if as_json:
        emit_json({"dry_run": dry_run, "removed": [item.as_dict() for item in gone]})
        return
    emit_table(
        ["SESSION", "PROFILE", "AGE_DAYS", "KEEP_DAYS"],
        [[i.path.stem, i.profile or "?", f"{i.age_days:.1f}", i.keep_days] for i in gone],
    )
    emit_text(f"{'would remove' if dry_run else 'removed'} {len(gone)} session log(s)")


# Reading commands (list, show, tail, search, stats) and sharing ones (report, export) live in their own modules.
logs_view_cmd.register(app)
logs_share_cmd.register(app)
