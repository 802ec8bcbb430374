"""`mcpbox secret set NAME | list | rm NAME | check PROFILE`: values in, never out."""

from __future__ import annotations

import sys

import typer

from mcpbox.cli.output import emit_json, emit_table, emit_text
from mcpbox.errors import SecretMissingError, UsageError

app = typer.Typer(help="Keep server tokens in the OS keyring instead of client configs.", no_args_is_help=True)


def _read_value(name: str) -> str:
    """From a hidden prompt on a terminal, else all of stdin; never from argv, where `ps` would show it."""
    from mcpbox.secrets.store import MAX_BYTES

    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass(f"Value for {name} (input hidden): ")
        if getpass.getpass("Again, to confirm: ") != first:
            raise UsageError("the two values differ; nothing was stored.", f"Run `mcpbox secret set {name}` again.")
        return first
    data = sys.stdin.buffer.read(MAX_BYTES + 3)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            "the value on stdin is not UTF-8 text; nothing was stored.", "Pipe the token as text."
        ) from exc
    # `echo TOKEN | mcpbox secret set NAME` adds a line ending that is not part of the token.
    return text.removesuffix("\n").removesuffix("\r")


@app.command("set")
def set_(name: str = typer.Argument(..., help="The keyring entry, e.g. github-token.")) -> None:
    """Store NAME from stdin or a hidden prompt (setting it again rotates it)."""
    from mcpbox.secrets.store import SecretStore, check_entry_name

    check_entry_name(name)
    store = SecretStore()  # refuse an insecure keyring before asking for the value
    replaced = store.set(name, _read_value(name))
    what = "rotated" if replaced else "stored"
    emit_text(f"{what} secret {name!r} in the OS keyring (service mcpbox); sessions started from now on get it")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Every secret mcpbox set or a profile names: when it was set, who uses it; never values."""
    from mcpbox.secrets.store import SecretStore
    from mcpbox.secrets.usage import entries

    rows, broken = entries(SecretStore())
    if as_json:
        emit_json({"secrets": [row.as_dict() for row in rows], "unreadable_profiles": broken})
        return
    emit_table(
        ["NAME", "IN KEYRING", "SET", "USED BY"],
        [
            (
                r.entry,
                "yes" if r.present else "MISSING",
                r.as_dict()["set_at"] or "unknown",
                ", ".join(r.used_by) or "-",
            )
            for r in rows
        ],
    )
    for row in rows:
        for warning in row.warnings:
            sys.stderr.write(f"mcpbox: warning: {row.entry}: {warning}\n")
    if broken:
        sys.stderr.write(f"mcpbox: warning: profiles that do not load were skipped: {', '.join(broken)}\n")


@app.command("rm")
def rm(name: str = typer.Argument(..., help="The keyring entry to delete.")) -> None:
    """Delete NAME from the keyring."""
    from mcpbox.secrets.store import SecretStore, check_entry_name

    check_entry_name(name)
    if not SecretStore().delete(name):
        raise SecretMissingError(f"there is no secret {name!r} in the keyring.", "See `mcpbox secret list`.")
    emit_text(f"removed secret {name!r}; profiles that name it will refuse to start until it is set again")


@app.command("check")
def check(
    profile: str = typer.Argument(..., help="Profile name or path."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Which of PROFILE's secrets are in the keyring; exit 1 if any is missing."""
    from mcpbox.secrets.store import SecretStore
    from mcpbox.secrets.usage import check as check_profile

    loaded, rows = check_profile(SecretStore(), profile)
    missing = [row for row in rows if not row.present]
    if as_json:
        emit_json({"profile": loaded.name, "secrets": [row.as_dict() for row in rows], "ok": not missing})
    elif not rows:
        emit_text(f"profile {loaded.name} uses no secrets")
    else:
        emit_table(
            ["VAR", "ENTRY", "IN KEYRING", "SET", "NOTE"],
            [
                (
                    r.ref.var,
                    r.ref.entry,
                    "yes" if r.present else "MISSING",
                    r.as_dict()["set_at"] or "unknown",
                    r.warning or ("set it: mcpbox secret set " + r.ref.entry if not r.present else ""),
                )
                for r in rows
            ],
        )
    if missing:
        raise typer.Exit(1)
