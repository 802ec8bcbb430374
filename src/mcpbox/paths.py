"""Where mcpbox keeps things (XDG base directories). No side effects at import."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var, "")
    # The XDG spec says relative values are invalid and must be ignored.
    if value and Path(value).is_absolute():
        return Path(value)
    return Path.home() / fallback


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "mcpbox"


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "mcpbox"


def user_profiles_dir() -> Path:
    return config_dir() / "profiles"


def sessions_dir() -> Path:
    return state_dir() / "sessions"


def pins_dir() -> Path:
    return state_dir() / "pins"


def runtime_dir() -> Path:
    """Where live sessions put their approval sockets: short (socket paths are capped at 107
    bytes), per user, and gone at logout when the system provides $XDG_RUNTIME_DIR."""
    value = os.environ.get("XDG_RUNTIME_DIR", "")
    if value and Path(value).is_absolute():
        return Path(value) / "mcpbox"
    return Path(f"/tmp/mcpbox-{os.getuid()}")


def _data_dir(name: str) -> Path:
    """Built-in data: inside the wheel under ``mcpbox/_data``, else the source checkout."""
    packaged = Path(__file__).parent / "_data" / name
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / name


def builtin_profiles_dir() -> Path:
    return _data_dir("profiles")


def seccomp_dir() -> Path:
    return _data_dir("seccomp")


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` readable by the user alone: logs and pins are nobody else's business."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path
