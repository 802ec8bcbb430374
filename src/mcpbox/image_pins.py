"""Which image a profile's name must resolve to: the id `mcpbox build` pinned.

Kept apart from the build itself so that `mcpbox run` pays only for reading one small JSON
file when it checks the pin.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mcpbox import paths
from mcpbox.errors import MCPBoxError
from mcpbox.profile import Profile


class ImagePinError(MCPBoxError):
    """The image under a profile's name is not the one `mcpbox build` pinned."""


@dataclass(frozen=True)
class Record:
    profile: str
    image: str  # the profile's image: name
    id: str  # the image id (sha256:...) pinned
    spec: str
    content_tag: str
    built: float
    sbom: str
    resolved: str = ""  # the server package and the version installed (records before this field: "")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def records_dir() -> Path:
    """Where SBOMs live, and the pins of profiles whose own folder is not the user's (the built-ins)."""
    return paths.state_dir() / "images"


def record_path(profile: Profile) -> Path:
    """The pin: a lock file beside the profile (``NAME.lock.json``), so it travels with it, for the
    user's own profiles; in the state folder for built-ins, whose folder belongs to the install."""
    source = profile.source
    if source is not None and source.parent.resolve() != paths.builtin_profiles_dir().resolve():
        return source.with_name(f"{source.stem}.lock.json")
    return records_dir() / f"{profile.name}.json"


def pinned(profile: Profile) -> Record | None:
    path = record_path(profile)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Record(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise ImagePinError(
            f"the image record {path} is unreadable ({exc}).",
            f"Rebuild and re-pin with `mcpbox build {profile.name}`.",
        ) from exc


def check_pin(profile: Profile, image_id: str) -> None:
    """Called by `run`: the image under the profile's name must be the one that was built and pinned."""
    record = pinned(profile)
    if record is None or record.image != profile.image or record.id == image_id:
        return
    raise ImagePinError(
        f"the image {profile.image} is {image_id[:19]}, not {record.id[:19]} that `mcpbox build {profile.name}` "
        f"pinned on {time.strftime('%Y-%m-%d %H:%M', time.localtime(record.built))}: it was rebuilt or replaced "
        "outside mcpbox; nothing was started.",
        f"If you trust the change, rebuild and re-pin it with `mcpbox build {profile.name}`; "
        f"to drop the pin, delete {record_path(profile)}.",
    )
