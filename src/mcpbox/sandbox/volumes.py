"""Named volumes a profile keeps between sessions (``mounts: [{volume: NAME, ...}]``).

A fresh Docker volume's root belongs to root, and the server never runs as root, so a volume
mcpbox creates is handed to the profile's user before its first session. No process runs for
that: a container is created (never started) with the volume mounted, and the engine unpacks a
one-entry archive over the mount point, which sets its owner and mode. So nothing from the
server's image ever runs with more rights than the server itself has.
"""

from __future__ import annotations

import io
import tarfile
from typing import TYPE_CHECKING

from mcpbox.errors import SandboxError
from mcpbox.profile.model import volume_name
from mcpbox.sandbox.spec import mount_body

if TYPE_CHECKING:
    from mcpbox.profile import Profile
    from mcpbox.sandbox.docker import Engine

LABEL_VOLUME_PROFILE = "mcpbox.volume.profile"


def ensure_volumes(engine: Engine, profile: Profile, image: str | None = None) -> list[str]:
    """Create the profile's missing volumes, owned by its user (mode 0700); the names created.
    ``image``: the id the pin was checked against (the name could be retagged in between)."""
    created = []
    uid, _, gid = profile.user.partition(":")
    for mount in profile.mounts:
        if mount.volume is None:
            continue
        name = volume_name(profile.name, mount.volume)
        labels = engine.volume_labels(name)
        if labels is not None:
            if labels.get(LABEL_VOLUME_PROFILE) != profile.name:
                raise SandboxError(
                    f"the Docker volume {name} exists but mcpbox did not make it for profile {profile.name}; "
                    "its data is not known to be this server's.",
                    f"Look at it (docker volume inspect {name}); remove it (docker volume rm {name}) to let "
                    "mcpbox make a fresh one.",
                )
            continue
        engine.create_volume(name, {LABEL_VOLUME_PROFILE: profile.name})
        archive = _owned_dir(mount.target, int(uid), int(gid or uid))
        try:
            engine.put_archive_mounted(image or profile.image, mount_body(profile.name, mount), "/", archive)
        except BaseException:
            # Left behind, a root-owned volume would be taken as ready by every later run.
            engine.remove_volume(name)
            raise
        created.append(name)
    return created


def _owned_dir(target: str, uid: int, gid: int) -> bytes:
    """A tar holding only the mount point itself (its parents are left as they are), owned by uid:gid."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        entry = tarfile.TarInfo(target.lstrip("/"))
        entry.type, entry.uid, entry.gid, entry.mode = tarfile.DIRTYPE, uid, gid, 0o700
        tar.addfile(entry)
    return buffer.getvalue()
