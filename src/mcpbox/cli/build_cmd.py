"""`mcpbox build PROFILE`: build the profile's image offline from its pinned package, and pin it."""

from __future__ import annotations

import sys

import typer

from mcpbox.cli.output import emit_json, emit_text


def build(
    profile: str = typer.Argument(..., help="Profile name or path."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Fetch the package on the host, install it with `docker build --network none`, pin the image id."""
    from mcpbox.build import build as build_image
    from mcpbox.image_pins import record_path
    from mcpbox.profile import load_profile

    loaded = load_profile(profile)
    record = build_image(loaded, log=lambda line: sys.stderr.write(line + "\n"))
    lock = record_path(loaded)
    if as_json:
        emit_json({**record.as_dict(), "lock": str(lock)})
        return
    emit_text(f"built {record.image} ({record.id[:19]}) with {record.resolved}, also tagged {record.content_tag}")
    emit_text(f"pinned in {lock}: `mcpbox run {record.profile}` refuses any other image under that name")
    emit_text(f"SBOM (CycloneDX): {record.sbom}")
