"""`mcpbox base build`: the base image servers are built on, from Debian packages, with no registry.

`debootstrap --variant=minbase` fetches Debian bookworm with Python 3.11 (and venv) and Node.js
from the host's Debian mirror (apt's own, which works where no container registry is reachable),
and `docker import` turns that root filesystem into an image. Caches, docs and apt lists are
dropped: they only make the image bigger and slower to start.

Where a registry is reachable, an official slim image (python:3.11-slim-bookworm for a PyPI
server, node:22-bookworm-slim for an npm one) serves as well: pull it yourself and name it in
the profile's `build.base` or in MCPBOX_BASE_IMAGE. mcpbox itself never pulls.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from mcpbox.errors import SandboxError, UsageError

BASE_IMAGE = os.environ.get("MCPBOX_BASE_IMAGE", "mcpbox/base:bookworm")
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "nodejs", "ca-certificates")
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
LABEL_BASE = "org.mcpbox.base"
# The mirror is plain http: only the archive's signature makes what it serves trustworthy.
KEYRING = Path(os.environ.get("DEBIAN_KEYRING", "/usr/share/keyrings/debian-archive-keyring.gpg"))
# Left out of the image: nothing a server needs at run time.
PRUNE = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info")


def build_base(image: str = BASE_IMAGE, *, mirror: str = MIRROR, log: Any = print) -> str:
    """debootstrap + docker import; the new image's id."""
    if os.geteuid() != 0:
        raise UsageError(
            "building the base image runs debootstrap, which needs root.", "Run it as root: sudo mcpbox base build."
        )
    if shutil.which("debootstrap") is None:
        raise SandboxError("debootstrap is not installed.", "Install it: apt-get install debootstrap.")
    if not KEYRING.is_file():
        raise SandboxError(
            f"the Debian archive keyring {KEYRING} is missing, so the packages' signatures cannot be checked.",
            "Install it (apt-get install debian-archive-keyring) or name it in DEBIAN_KEYRING.",
        )
    from mcpbox.sandbox.docker import Engine  # noqa: PLC0415

    engine = Engine(timeout=600)
    with tempfile.TemporaryDirectory(prefix="mcpbox-base-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "rootfs"
        log(f"mcpbox base build: debootstrap {SUITE} with {', '.join(PACKAGES)} from {mirror} (about a minute)")
        argv = ["debootstrap", "--variant=minbase", f"--keyring={KEYRING}", "--force-check-gpg"]
        argv += [f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=1800)
        except subprocess.TimeoutExpired as exc:
            raise SandboxError("debootstrap took over 30 minutes.", "Check the Debian mirror (DEBIAN_MIRROR).") from exc
        if done.returncode != 0:
            tail = " / ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
            raise SandboxError(
                f"debootstrap failed: {tail}", "Check the Debian mirror (DEBIAN_MIRROR) and apt's proxy."
            )
        for part in PRUNE:
            for child in (root / part).glob("*"):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        archive = Path(tmp) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:  # owners, modes, links and device nodes as debootstrap made them
            tar.add(root, arcname=".")
        repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
        stamp = time.strftime("%Y-%m-%d", time.gmtime())
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            f'LABEL {LABEL_BASE}="debootstrap {SUITE} {",".join(PACKAGES)} {stamp}"',
        ]
        log(f"mcpbox base build: importing {image}")
        try:
            engine.api.import_image_from_file(str(archive), repository=repository, tag=tag, changes=changes)
        except Exception as exc:
            raise SandboxError(
                f"docker import of {image} failed ({exc}).", "Check the engine with `docker info`."
            ) from exc
    return str(engine.api.inspect_image(image)["Id"])  # type: ignore[no-untyped-call]
