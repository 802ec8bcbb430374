"""`mcpbox pins list | accept PROFILE [TOOL...] | reset PROFILE`: what a person trusted, and changing it."""

from __future__ import annotations

import difflib
import json
import sys
import time
from typing import Any

import typer

from mcpbox._text import visible
from mcpbox.cli.output import emit_json, emit_table
from mcpbox.errors import UsageError

app = typer.Typer(help="Tool definitions pinned on first use; changes wait for your review.", no_args_is_help=True)


def _pretty(definition: Any) -> list[str]:
    if definition is None:
        return []
    text = definition if isinstance(definition, str) else json.dumps(definition, indent=2, sort_keys=True)
    return visible(text).splitlines()


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at else "-"


@app.command("list")
def list_(
    profile: str | None = typer.Argument(None, help="Only this profile."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Pinned and pending tool definitions, per profile."""
    from mcpbox.policy.pins import INSTRUCTIONS, PinStore, all_stores

    stores = [PinStore(profile)] if profile else all_stores()
    data: list[dict[str, Any]] = []
    for store in stores:
        pins = store.load()
        if pins is None:
            continue
        pending = dict(pins.pending)
        if pins.pending_instructions is not None:
            pending[INSTRUCTIONS] = pins.pending_instructions
        data.append(
            {
                "profile": store.profile,
                "file": str(store.path),
                "pinned": {name: {"sha256": p.digest, "at": p.at} for name, p in sorted(pins.tools.items())},
                "instructions_pinned": pins.instructions is not None,
                "pending": {
                    name: {"reason": p.reason, "sha256": p.digest, "seen": p.at, "findings": list(p.findings)}
                    for name, p in sorted(pending.items())
                },
            }
        )
    if as_json:
        emit_json({"profiles": data})
        return
    if not data:
        typer.echo("no pins yet: a profile's tools are pinned on its first run")
        return
    rows = []
    for entry in data:
        for name, pin in entry["pinned"].items():
            rows.append([entry["profile"], name, "pinned", _stamp(pin["at"]), pin["sha256"][:12]])
        for name, pend in entry["pending"].items():
            rows.append(
                [entry["profile"], name, f"PENDING ({pend['reason']})", _stamp(pend["seen"]), pend["sha256"][:12]]
            )
    emit_table(["PROFILE", "TOOL", "STATE", "SINCE", "SHA256"], rows)
    if any(entry["pending"] for entry in data):
        typer.echo("\nreview and trust a pending change: mcpbox pins accept PROFILE [TOOL]")


@app.command("accept")
def accept(
    profile: str = typer.Argument(..., help="The profile whose pending changes to trust."),
    tools: list[str] = typer.Argument(None, help="Only these tools (default: every pending change)."),
    instructions: bool = typer.Option(False, "--instructions", help="Also the server's changed instructions."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask (the diff is still shown)."),
) -> None:
    """Show each pending change as a diff, then trust it."""
    from mcpbox.policy.pins import INSTRUCTIONS, PinStore

    store = PinStore(profile)
    pins = store.load()
    if pins is None:
        raise UsageError(f"profile {profile} has nothing pinned yet.", f"Run `mcpbox run {profile}` first.")
    names = list(tools) if tools else None
    shown = dict(pins.pending) if names is None else {n: pins.pending[n] for n in names if n in pins.pending}
    if (names is None or instructions) and pins.pending_instructions is not None:
        shown[INSTRUCTIONS] = pins.pending_instructions
    if not shown:
        raise UsageError(f"profile {profile} has no pending change.", f"Run `mcpbox pins list {profile}`.")
    for name, new in shown.items():
        old = pins.instructions if name == INSTRUCTIONS else pins.tools.get(name)
        typer.echo(f"== {name}: {new.reason}" + (f" ({'; '.join(new.findings)})" if new.findings else ""))
        old_lines = _pretty(old.definition) if old else []
        for line in difflib.unified_diff(old_lines, _pretty(new.definition), "pinned", "now", lineterm=""):
            typer.echo(line)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to trust changes without a person's yes.", "Review the diff, then add --yes.")
        typer.confirm("Trust these definitions from now on?", abort=True)
    accepted = store.accept(names, instructions=instructions)
    for name, _old, _new in accepted:
        typer.echo(f"trusted {name} for profile {profile}")


@app.command("reset")
def reset(
    profile: str = typer.Argument(..., help="The profile whose pins to forget."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
) -> None:
    """Forget every pin of PROFILE: its next run trusts the tools it lists, as on first use."""
    from mcpbox.policy.pins import PinStore

    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to forget pins without a person's yes.", "Add --yes.")
        typer.confirm(f"Forget the pinned tools of {profile}? The next run trusts whatever it lists.", abort=True)
    removed = PinStore(profile).reset()
    typer.echo(f"forgot the pins of {profile}" if removed else f"profile {profile} had no pins")
