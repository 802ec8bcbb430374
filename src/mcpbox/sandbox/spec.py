"""The container a profile gets, as the exact Docker Engine API create body.

Pure: the same profile and session give the same body. `mcpbox run --dry-run`
prints this body and `sandbox.docker` sends it unchanged, so what a person
reviews is what the engine receives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from mcpbox import paths
from mcpbox._version import __version__
from mcpbox.errors import ProfileError
from mcpbox.profile.model import SECRETS_DIR, TMPFS_SIZE, Mount, Profile, volume_name
from mcpbox.secrets import handoff

LABEL_SESSION = "mcpbox.session"
LABEL_PROFILE = "mcpbox.profile"
LABEL_PARENT_PID = "mcpbox.parent_pid"
LABEL_PARENT_STARTED = "mcpbox.parent_started"
LABEL_HOST = "mcpbox.host"
LABEL_VERSION = "mcpbox.version"
LABEL_ROLE = "mcpbox.role"  # "egress" on a session's egress container; the server's has none


@dataclass(frozen=True)
class ImageConfig:
    """What the engine knows of an image and the body depends on."""

    volumes: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    id: str = ""  # sha256:..., checked against the pin `mcpbox build` recorded


@dataclass(frozen=True)
class Owner:
    """The mcpbox process that owns a sandbox; `gc` removes sandboxes whose owner is gone."""

    session: str
    pid: int
    started: float  # process start time, so a recycled pid is not mistaken for the owner
    host: str


@cache
def _seccomp_text(path: str) -> str:
    # Docker wants the profile's content, not its path; compact it to keep the request small.
    try:
        return json.dumps(json.loads(Path(path).read_text(encoding="utf-8")), separators=(",", ":"))
    except (OSError, ValueError) as exc:
        raise ProfileError(
            f"cannot read seccomp profile {path} ({exc}).", "Reinstall mcpbox or fix the profile's seccomp path."
        ) from exc


def seccomp_path(profile: Profile) -> Path:
    if "/" in profile.seccomp:
        return Path(profile.seccomp)
    return paths.seccomp_dir() / f"{profile.seccomp}.json"


def container_name(session: str) -> str:
    return f"mcpbox-{session}"


def scratch_tmpfs(profile: Profile, image_volumes: tuple[str, ...] = ()) -> dict[str, str]:
    """/tmp, and every VOLUME the image declares, as small noexec tmpfs.

    An image VOLUME would otherwise become a writable, executable anonymous
    volume on the host's disk, around the read-only root and the noexec /tmp.
    Secrets given as files get a tmpfs of their own that only the server's user can enter.
    """
    options = f"rw,noexec,nosuid,nodev,size={TMPFS_SIZE},mode=1777"
    mounted = {mount.target for mount in profile.mounts}
    tmpfs = {path: options for path in ("/tmp", *image_volumes) if path not in mounted}
    if any(ref.as_file for ref in profile.secrets):
        uid, _, gid = profile.user.partition(":")
        tmpfs[SECRETS_DIR] = f"rw,noexec,nosuid,nodev,size=1m,mode=0700,uid={uid},gid={gid or uid}"
    return tmpfs


def mount_body(profile_name: str, mount: Mount) -> dict[str, Any]:
    """One entry of HostConfig.Mounts: a host bind, or the profile's named volume (never copied into
    from the image, so what the volume holds is only what the server wrote)."""
    if mount.volume is not None:
        return {
            "Type": "volume",
            "Source": volume_name(profile_name, mount.volume),
            "Target": mount.target,
            "ReadOnly": mount.mode != "rw",
            "VolumeOptions": {"NoCopy": True},
        }
    return {
        "Type": "bind",
        "Source": str(mount.source),
        "Target": mount.target,
        "ReadOnly": mount.mode != "rw",
        "BindOptions": {"Propagation": "rprivate"},
    }


def server_argv(profile: Profile, image: ImageConfig) -> list[str]:
    """The argv the server runs with, as the engine would compose it: the image's entrypoint, then the command."""
    argv = [*image.entrypoint, *(profile.command if profile.command is not None else image.cmd)]
    if not argv:
        raise ProfileError(
            f"profile {profile.name}: the image {profile.image} has no entrypoint or command, and the profile "
            "gives no command: key.",
            "Add command: [the server's executable, args...] to the profile.",
        )
    return argv


def labels(owner: Owner, profile_name: str) -> dict[str, str]:
    """What marks a container or network as a session's, and whose: `ps`, `stop` and `gc` go by these."""
    return {
        LABEL_SESSION: owner.session,
        LABEL_PROFILE: profile_name,
        LABEL_PARENT_PID: str(owner.pid),
        LABEL_PARENT_STARTED: f"{owner.started:.3f}",
        LABEL_HOST: owner.host,
        LABEL_VERSION: __version__,
    }


def create_body(
    profile: Profile, owner: Owner, image: ImageConfig | None = None, *, egress: str | None = None
) -> dict[str, Any]:
    """The `POST /containers/create` body for ``profile``, locked down.

    ``egress``: the id of the session's egress container, whose network namespace (and so its
    rules and resolver) the server joins; without one the server has no network at all."""
    profile.check_mounts()
    image = image or ImageConfig()
    res = profile.resources
    host_config: dict[str, Any] = {
        "CapDrop": ["ALL"],
        "CapAdd": None,
        "Privileged": False,
        "SecurityOpt": [
            "no-new-privileges:true",
            f"seccomp={_seccomp_text(str(seccomp_path(profile)))}",
        ],
        "ReadonlyRootfs": True,
        # noexec: nothing the server downloads or writes can be executed.
        "Tmpfs": scratch_tmpfs(profile, image.volumes),
        "NetworkMode": "none",
        "Mounts": [mount_body(profile.name, mount) for mount in profile.mounts],
        "Memory": res.memory,
        "MemorySwap": res.memory,  # equal to Memory: no swap on top of the limit
        "NanoCpus": round(res.cpus * 1e9),
        "PidsLimit": res.pids,
        "Ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}],
        # The sandbox, not the user's desktop, is what the kernel kills first under memory pressure.
        "OomScoreAdj": 500,
        "Init": True,
        "IpcMode": "private",
        "PidMode": "",
        "CgroupnsMode": "private",
        "Devices": [],
        "DeviceCgroupRules": [],
        # No log driver: attach carries the streams, and nothing the server prints lands on disk
        # under /var/lib/docker, where secrets it echoes would outlive the session.
        "LogConfig": {"Type": "none", "Config": {}},
        # Removed by the engine the moment it exits, whoever caused the exit.
        "AutoRemove": True,
    }
    body: dict[str, Any] = {
        "Image": profile.image,
        "Cmd": list(profile.command) if profile.command is not None else None,
        "Env": [f"{name}={value}" for name, value in profile.env],
        "User": profile.user,
        "Hostname": "sandbox",
        "Labels": labels(owner, profile.name),
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "OpenStdin": True,
        # The container's stdin closes when mcpbox's attach connection does, even if mcpbox is SIGKILLed.
        "StdinOnce": True,
        "Tty": False,
        "NetworkDisabled": True,
        "StopSignal": "SIGTERM",
        "StopTimeout": 2,
        "HostConfig": host_config,
    }
    if egress is not None:
        # The egress container's namespace: its interfaces, its nftables rules (which the server,
        # with no capability, cannot change) and its resolver. A hostname cannot be set there.
        host_config["NetworkMode"] = f"container:{egress}"
        body["NetworkDisabled"] = False
        del body["Hostname"]
    if profile.secrets:
        # Values never enter this body: the shim receives them over stdin (see mcpbox.secrets.handoff).
        body["Entrypoint"] = handoff.entrypoint()
        body["Cmd"] = server_argv(profile, image)
    return body
