"""`mcpbox base build`: the base image, from Debian packages (no container registry needed)."""

from __future__ import annotations

import sys

import typer

from mcpbox.cli.output import emit_json, emit_text

app = typer.Typer(no_args_is_help=True, help="The base image servers are built on.")


@app.command("build")
def build(
    image: str = typer.Option(
        "", "--image", help="Name for the image (default: MCPBOX_BASE_IMAGE or mcpbox/base:bookworm)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """debootstrap Debian bookworm with Python 3.11 and Node.js, and import it as an image (needs root)."""
    from mcpbox.base import BASE_IMAGE, build_base

    name = image or BASE_IMAGE
    image_id = build_base(name, log=lambda line: sys.stderr.write(line + "\n"))
    if as_json:
        emit_json({"image": name, "id": image_id})
        return
    emit_text(f"built {name} ({image_id[:19]}); `mcpbox build PROFILE` builds servers on it")
