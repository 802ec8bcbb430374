"""The typed, validated profile: what one sandbox may do.

Instances are only made by :mod:`mcpbox.profile.load`, which checks every key;
trust comes from the loader, never from the file. Defaults here are the safe
ones; anything a profile sets beyond them is a *loosening* that
``mcpbox profile show`` prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

MountMode = Literal["ro", "rw"]
Payloads = Literal["full", "metadata"]

DEFAULT_USER = "65534:65534"
DEFAULT_MEMORY = 512 * 1024 * 1024
DEFAULT_CPUS = 1.0
DEFAULT_PIDS = 128
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_SECCOMP = "default"
TMPFS_SIZE = 64 * 1024 * 1024
# Keyring entry names: also file-name and log safe. Names starting otherwise are mcpbox's own (the log key).
ENTRY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SECRETS_DIR = "/run/secrets"  # a tmpfs readable by the server's user alone, when a profile asks for files


@dataclass(frozen=True)
class Mount:
    source: Path  # absolute, resolved host path that existed at load time
    target: str  # absolute path in the container
    mode: MountMode = "ro"


@dataclass(frozen=True)
class Resources:
    memory: int = DEFAULT_MEMORY  # bytes; swap is pinned to the same value
    cpus: float = DEFAULT_CPUS
    pids: int = DEFAULT_PIDS


@dataclass(frozen=True)
class Build:
    pypi: str | None = None
    npm: str | None = None


@dataclass(frozen=True)
class SecretRef:
    """One keyring entry the server receives at start, by name only: values never live in a profile."""

    var: str  # the environment variable in the container (or the file's name under SECRETS_DIR)
    entry: str  # the keyring entry, under the service `mcpbox`
    as_file: bool = False  # a file in a tmpfs, its path in ``{var}_FILE``, instead of the variable itself
    rotate_after_days: int | None = None  # warn once the value is older than this

    @property
    def path(self) -> str:
        return f"{SECRETS_DIR}/{self.var}"


@dataclass(frozen=True)
class Policy:
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class LogSettings:
    payloads: Payloads = "full"


@dataclass(frozen=True)
class Profile:
    name: str
    image: str
    source: Path | None = None  # the YAML file it came from
    description: str = ""
    command: tuple[str, ...] | None = None  # None: the image's own CMD
    env: tuple[tuple[str, str], ...] = ()
    secrets: tuple[SecretRef, ...] = ()
    mounts: tuple[Mount, ...] = ()
    resources: Resources = field(default_factory=Resources)
    seccomp: str = DEFAULT_SECCOMP  # a name in seccomp/ or an absolute path
    user: str = DEFAULT_USER
    build: Build | None = None
    policy: Policy = field(default_factory=Policy)
    log: LogSettings = field(default_factory=LogSettings)

    def loosenings(self) -> list[str]:
        """Every way this profile is less strict than the defaults, in words."""
        found: list[str] = []
        for mount in self.mounts:
            access = "read-write" if mount.mode == "rw" else "read-only"
            found.append(f"mounts host {mount.source} at {mount.target} ({access})")
        if self.resources.memory > DEFAULT_MEMORY:
            found.append(f"memory limit {self.resources.memory} bytes is above the default {DEFAULT_MEMORY}")
        if self.resources.cpus > DEFAULT_CPUS:
            found.append(f"cpus {self.resources.cpus} is above the default {DEFAULT_CPUS}")
        if self.resources.pids > DEFAULT_PIDS:
            found.append(f"pids limit {self.resources.pids} is above the default {DEFAULT_PIDS}")
        if self.user != DEFAULT_USER:
            found.append(
                f"runs as {self.user} instead of {DEFAULT_USER}: files of that uid/gid in mounts become readable"
            )
        if self.seccomp != DEFAULT_SECCOMP:
            found.append(f"uses seccomp profile {self.seccomp} instead of mcpbox's default")
        if self.policy.max_message_bytes > DEFAULT_MAX_MESSAGE_BYTES:
            found.append(
                f"policy.max_message_bytes {self.policy.max_message_bytes} is above the default "
                f"{DEFAULT_MAX_MESSAGE_BYTES}"
            )
        return found
