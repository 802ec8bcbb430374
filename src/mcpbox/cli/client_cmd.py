"""`mcpbox client list | install CLIENT [--server NAME] | uninstall CLIENT | status [CLIENT]`."""

from __future__ import annotations

from typing import Any

import typer

from mcpbox.cli.output import emit_json, emit_table, emit_text
from mcpbox.errors import UsageError

app = typer.Typer(help="Sandbox the MCP servers of desktop clients, and undo it.", no_args_is_help=True)
CLIENT_HELP = "claude-desktop, claude-code, cursor, vscode or windsurf."


def _images(pairs: list[str]) -> dict[str, str]:
    images: dict[str, str] = {}
    for pair in pairs:
        server, sep, image = pair.partition("=")
        if not sep or not server or not image:
            raise UsageError(f"--image {pair!r} is not SERVER=IMAGE.", "Write e.g. --image time=mcpbox/time:1.0.")
        images[server] = image
    return images


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Which clients have a config here, and how many of their stdio servers run under mcpbox."""
    from mcpbox.clients.configs import CLIENTS, config_files
    from mcpbox.clients.install import ClientConfigError, status

    rows: list[dict[str, Any]] = []
    for client in CLIENTS:
        files = [c.path for c in config_files(client) if c.path.is_file()]
        problem = ""
        try:
            servers = status(client)
        except ClientConfigError as exc:
            servers, problem = [], exc.message
        stdio = [s for s in servers if s.kind == "stdio"]
        rows.append(
            {
                "client": client,
                "configs": [str(p) for p in files],
                "stdio": len(stdio),
                "sandboxed": sum(s.profile is not None for s in stdio),
                "remote": len(servers) - len(stdio),
                "problem": problem,
            }
        )
    if as_json:
        emit_json(rows)
        return
    emit_table(
        ["CLIENT", "STDIO", "SANDBOXED", "REMOTE", "CONFIG"],
        [
            (r["client"], r["stdio"], r["sandboxed"], r["remote"], r["problem"] or ", ".join(r["configs"]) or "-")
            for r in rows
        ],
    )


@app.command("status")
def status_(
    client: str | None = typer.Argument(None, help=CLIENT_HELP + " Default: all."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Each server of each client: sandboxed by mcpbox (and its profile) or not."""
    from mcpbox.clients.configs import CLIENTS
    from mcpbox.clients.install import status

    rows = [row for name in ([client] if client else list(CLIENTS)) for row in status(name)]
    if as_json:
        emit_json([row.as_dict() for row in rows])
        return
    emit_table(
        ["CLIENT", "SERVER", "KIND", "SANDBOXED", "FILE"],
        [(r.client, r.server, r.kind, f"yes ({r.profile})" if r.profile else "no", r.file) for r in rows],
    )


@app.command("install")
def install(
    client: str = typer.Argument(..., help=CLIENT_HELP),
    server: str | None = typer.Option(None, "--server", help="Only this server entry."),
    image: list[str] = typer.Option([], "--image", help="SERVER=IMAGE: use this image instead of the placeholder."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Make a profile for each stdio server and rewrite its entry to run under mcpbox."""
    from mcpbox.clients.install import install as do_install

    outcomes = do_install(client, only=server, images=_images(image))
    if as_json:
        emit_json([o.as_dict() for o in outcomes])
        return
    lines = []
    for o in outcomes:
        if o.action == "sandboxed":
            moved = f"; secrets moved to the keyring: {', '.join(o.secrets)}" if o.secrets else ""
            lines.append(f"sandboxed  {o.server} -> profile {o.profile}{moved}")
            lines += [f"           check: {note}" for note in o.notes]
        elif o.action == "already":
            lines.append(f"unchanged  {o.server}: already runs under mcpbox (profile {o.profile})")
        else:
            lines.append(f"left as is {o.server}: {o.reason}")
    if any(o.action == "sandboxed" for o in outcomes):
        lines.append(
            f"The original config is kept; `mcpbox client uninstall {client}` puts it back. "
            "Build each profile's image with `mcpbox build PROFILE`, then restart the client."
        )
    emit_text("\n".join(lines) if lines else "no servers found")


@app.command("uninstall")
def uninstall(
    client: str = typer.Argument(..., help=CLIENT_HELP),
    force: bool = typer.Option(False, "--force", help="Restore even if the file changed since install."),
) -> None:
    """Put back the config exactly as it was before `install`; profiles and secrets are kept."""
    from mcpbox.clients.install import uninstall as do_uninstall

    lines = []
    for restored in do_uninstall(client, force=force):
        if restored.entries_only:
            lines.append(f"restored mcpbox's entries in {restored.file}, which changed since install (changes kept)")
            lines += [f"  left {name}: it no longer runs under mcpbox as installed" for name in restored.left]
        else:
            lines.append(f"restored {restored.file}")
        for profile in restored.profiles:
            lines.append(f"  kept profile {profile} (remove with: rm {profile})")
        for entry in restored.secrets:
            lines.append(f"  kept keyring secret {entry} (remove with: mcpbox secret rm {entry})")
    emit_text("\n".join(lines))
