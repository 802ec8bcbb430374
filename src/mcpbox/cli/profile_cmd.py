"""`mcpbox profile list | show NAME [--json] | validate FILE`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from mcpbox.cli.output import emit_json, emit_table, emit_text

if TYPE_CHECKING:
    from mcpbox.profile import Profile

app = typer.Typer(help="List, inspect and check sandbox profiles.", no_args_is_help=True)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Every profile: the user's own first, then the built-ins."""
    from mcpbox.profile import list_profiles

    refs = list_profiles()
    if as_json:
        emit_json([{"name": r.name, "origin": r.origin, "path": str(r.path), "shadowed": r.shadowed} for r in refs])
        return
    emit_table(
        ["NAME", "ORIGIN", "PATH"], [(r.name, r.origin + (" (shadowed)" if r.shadowed else ""), r.path) for r in refs]
    )


def _effective(name: str) -> dict[str, Any]:
    from mcpbox.profile import load_profile
    from mcpbox.profile.model import volume_name
    from mcpbox.sandbox.spec import seccomp_path

    profile = load_profile(name)
    res = profile.resources
    return {
        "name": profile.name,
        "source": str(profile.source),
        "description": profile.description,
        "image": profile.image,
        "command": list(profile.command) if profile.command else None,
        "env": dict(profile.env),
        "secrets": [
            {
                "var": ref.var,
                "entry": ref.entry,
                "as": f"file {ref.path} (path in {ref.var}_FILE)" if ref.as_file else "env",
                "rotate_after_days": ref.rotate_after_days,
            }
            for ref in profile.secrets
        ],
        "container": {
            "user": profile.user,
            "capabilities": "all dropped",
            "no_new_privileges": True,
            "seccomp": str(seccomp_path(profile)),
            "read_only_root": True,
            "tmp": "/tmp tmpfs, noexec, nosuid, nodev, 64 MiB",
            "network": _network(profile),
            "mounts": [
                {
                    "source": str(m.source) if m.volume is None else f"volume {volume_name(profile.name, m.volume)}",
                    "missing": bool(m.missing),
                    "target": m.target,
                    "mode": m.mode,
                }
                for m in profile.mounts
            ],
            "memory_bytes": res.memory,
            "cpus": res.cpus,
            "pids": res.pids,
            "init": True,
            "ipc": "private",
            "devices": "none",
        },
        "tools": dataclasses.asdict(profile.tools),
        "prompts": dataclasses.asdict(profile.prompts),
        "mcp_resources": dataclasses.asdict(profile.mcp_resources),
        "policy": dataclasses.asdict(profile.policy),
        "log": dataclasses.asdict(profile.log),
        "build": dataclasses.asdict(profile.build) if profile.build else None,
        "loosens": profile.loosenings(),
    }


def _network(profile: Profile) -> str | dict[str, object]:
    """`none`, or the effective allow-list: what the egress rules let through, entry by entry."""
    network = profile.network
    if network.none:
        return "none"
    return {
        "allow": [
            {"entry": d.entry, "kind": d.kind, "host": d.host, "port": d.port, "protocol": "tcp"} for d in network.allow
        ],
        "dns": list(network.dns) or "the engine's resolver (the host's)",
        "docker_networks": list(network.docker_networks),
        "everything else": "refused (TCP reset, ICMP for the rest); names not listed get NXDOMAIN",
    }


@app.command("show")
def show(  # noqa: PLR0912 - one branch per section printed
    name: str = typer.Argument(..., help="Profile name or path."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The effective container settings, and every default the profile loosens."""
    info = _effective(name)
    if as_json:
        emit_json(info)
        return
    lines = [f"profile  {info['name']}  ({info['source']})"]
    if info["description"]:
        lines.append(f"         {info['description']}")
    lines += [f"image    {info['image']}", f"command  {info['command'] or '(image default)'}"]
    if info["env"]:
        lines.append("env      " + ", ".join(f"{k}={v}" for k, v in info["env"].items()))
    for item in info["secrets"]:
        rotate = f", rotate after {item['rotate_after_days']}d" if item["rotate_after_days"] else ""
        lines.append(f"secret   {item['var']} <- keyring entry {item['entry']!r} ({item['as']}{rotate})")
    lines.append("container")
    for key, value in info["container"].items():
        if key == "mounts":
            for m in value or []:
                missing = " - does not exist yet: no session starts until it does" if m["missing"] else ""
                lines.append(f"  mount              {m['source']} -> {m['target']} ({m['mode']}){missing}")
            continue
        if key == "network" and isinstance(value, dict):
            for item in value["allow"]:
                lines.append(f"  network allows     tcp to {item['entry']}")
            lines.append(f"  network dns        {value['dns']}")
            for joined in value["docker_networks"]:
                lines.append(f"  network joins      {joined}")
            lines.append(f"  network otherwise  {value['everything else']}")
            continue
        lines.append(f"  {key:<18} {value}")
    lines.append("policy")
    tools = info["tools"]
    lines.append(f"  tools allowed      {', '.join(tools['allow']) if tools['allow'] is not None else 'all'}")
    if tools["deny"]:
        lines.append(f"  tools denied       {', '.join(tools['deny'])}")
    if tools["approve"]:
        lines.append(f"  need approval      {', '.join(tools['approve'])}")
    for entry in tools["rules"]:
        for argument, rule in entry["arguments"]:
            shown = {k: v for k, v in rule.items() if v}
            lines.append(f"  rule               {entry['tool']}.{argument}: {shown}")
    for key, value in info["policy"].items():
        if key not in ("max_message_bytes", "tool_calls_per_minute", "server_requests"):
            lines.append(f"  {key:<18} {value}")
    lines.append(f"  server requests    {info['policy']['server_requests']}")
    lines.append(f"max message bytes  {info['policy']['max_message_bytes']}")
    lines.append(f"log payloads       {info['log']['payloads']}")
    if info["loosens"]:
        lines.append("loosens the defaults:")
        lines += [f"  - {item}" for item in info["loosens"]]
    else:
        lines.append("loosens the defaults: nothing")
    emit_text("\n".join(lines))


@app.command("validate")
def validate(file: Path = typer.Argument(..., help="A profile YAML file.")) -> None:
    """Check FILE strictly; exit 2 with one sentence naming the key at fault."""
    from mcpbox.profile.load import read_profile_file

    profile = read_profile_file(file)
    typer.echo(f"{file}: valid profile {profile.name!r}")


@app.command("new")
def new(
    name: str = typer.Argument(..., help="The new profile's name (lowercase letters, digits, dashes)."),
    from_: str = typer.Option(..., "--from", help='The command a client would run, e.g. "npx -y pkg args".'),
    image: str | None = typer.Option(None, "--image", help="Use this image instead of the placeholder."),
) -> None:
    """Write a user profile that runs FROM's server in a sandbox (npx -> npm build, uvx / python -m -> pypi)."""
    from mcpbox import paths
    from mcpbox.clients.install import mcpbox_executable, write_profile
    from mcpbox.clients.translate import entry_from_command_line, translate

    translation = translate(name, entry_from_command_line(from_), name=name, image=image, origin=f"`{from_}`")
    path = write_profile(translation, paths.user_profiles_dir() / f"{name}.yaml", "`mcpbox profile new --from`")
    lines = [f"wrote {path}"]
    lines += [f"check: {note}" for note in translation.notes]
    lines.append(f'client config entry: {{"command": "{mcpbox_executable()}", "args": ["run", "{name}"]}}')
    emit_text("\n".join(lines))
