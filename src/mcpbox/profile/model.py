"""The typed, validated profile: what one sandbox may do.

Instances are only made by :mod:`mcpbox.profile.load`, which checks every key;
trust comes from the loader, never from the file. Defaults here are the safe
ones; anything a profile sets beyond them is a *loosening* that
``mcpbox profile show`` prints.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mcpbox.errors import ProfileError

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
ENTRY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
SECRETS_DIR = "/run/secrets"  # a tmpfs readable by the server's user alone, when a profile asks for files


DestinationKind = Literal["name", "wildcard", "ip", "cidr"]


@dataclass(frozen=True)
class Destination:
    """One `network.allow` entry: where the server may open TCP connections.

    ``host`` is a lower-case DNS name (``name``), the suffix after ``*.`` (``wildcard``: any
    name below it), an IP address (``ip``) or a network in CIDR form (``cidr``).
    """

    kind: DestinationKind
    host: str
    port: int
    entry: str  # as the profile wrote it, for messages and `profile show`

    @property
    def by_name(self) -> bool:
        return self.kind in ("name", "wildcard")


@dataclass(frozen=True)
class Network:
    """``network: none`` (no ``allow``, the default) or an egress allow-list."""

    allow: tuple[Destination, ...] = ()
    dns: tuple[str, ...] = ()  # upstream resolvers for listed names; empty: the engine's (the host's)
    docker_networks: tuple[str, ...] = ()  # Docker networks the egress side also joins, to reach their containers

    @property
    def none(self) -> bool:
        return not self.allow


@dataclass(frozen=True)
class Mount:
    """A host folder bound into the container, or (with ``volume``) a named Docker volume mcpbox keeps."""

    source: Path | None  # absolute host path (resolved when it existed at load time); None for a volume
    target: str  # absolute path in the container
    mode: MountMode = "ro"
    volume: str | None = None  # the volume's short name; Docker's name is volume_name(profile, this)
    # A host path that did not exist at load time: the profile still lists, shows and builds, but no
    # session starts until it exists (Profile.check_mounts). Holds the key path, e.g. "mounts[0].source".
    missing: str = ""
    credentials: bool = False  # a credentials folder, mounted because the profile says `credentials: true`


@dataclass(frozen=True)
class Resources:
    memory: int = DEFAULT_MEMORY  # bytes; swap is pinned to the same value
    cpus: float = DEFAULT_CPUS
    pids: int = DEFAULT_PIDS


@dataclass(frozen=True)
class Build:
    pypi: str | None = None
    npm: str | None = None
    apt: tuple[str, ...] = ()  # Debian packages the server needs besides the base (git for mcp-server-git)
    base: str | None = None  # the image to build on; None: mcpbox.base.BASE_IMAGE

    @property
    def package(self) -> str:
        """The server package's name, without version clauses or extras (PyPI names normalized)."""
        if self.pypi is not None:
            return re.split(r"[\s\[<>=!~;]", self.pypi, maxsplit=1)[0].replace("_", "-").replace(".", "-").lower()
        return split_npm(self.npm or "")[0]


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
class NameFilter:
    """Which names (or resource URIs) the client may see and use; entries are exact names or globs."""

    allow: tuple[str, ...] | None = None  # None: everything not denied
    deny: tuple[str, ...] = ()

    def permits(self, name: str) -> bool:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.deny):
            return False
        return self.allow is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allow)

    @property
    def restricts(self) -> bool:
        return self.allow is not None or bool(self.deny)


@dataclass(frozen=True)
class ArgRule:
    """Constraints on one argument's value; a list argument must satisfy them element by element."""

    glob: tuple[str, ...] = ()  # any of these path globs (``**`` crosses ``/``); the path is normalised first
    regex: str | None = None  # the whole value must match
    enum: tuple[str | int | float | bool | None, ...] | None = None


@dataclass(frozen=True)
class ToolRules:
    """`tools.rules`: tool name or glob -> argument name -> constraint."""

    tool: str
    arguments: tuple[tuple[str, ArgRule], ...]


@dataclass(frozen=True)
class Tools(NameFilter):
    approve: tuple[str, ...] = ()  # a person approves each call to these (names or globs)
    rules: tuple[ToolRules, ...] = ()

    def needs_approval(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.approve)

    def rules_for(self, name: str) -> tuple[tuple[str, ArgRule], ...]:
        found: list[tuple[str, ArgRule]] = []
        for entry in self.rules:
            if fnmatch.fnmatchcase(name, entry.tool):
                found.extend(entry.arguments)
        return tuple(found)


ServerRequestMode = Literal["allow", "deny", "approve"]
SERVER_REQUEST_KINDS = {
    "sampling": "sampling/createMessage",
    "elicitation": "elicitation/create",
    "roots": "roots/list",
}


@dataclass(frozen=True)
class ServerRequests:
    """What happens to requests the server sends the client (`policy.server_requests`)."""

    sampling: ServerRequestMode = "approve"  # the server spends the user's model and quota
    elicitation: ServerRequestMode = "allow"  # the client shows it to a person anyway
    roots: ServerRequestMode = "allow"

    def mode(self, method: str) -> ServerRequestMode | None:
        for kind, name in SERVER_REQUEST_KINDS.items():
            if method == name:
                mode: ServerRequestMode = getattr(self, kind)
                return mode
        return None


DEFAULT_CALLS_PER_MINUTE = 120
DEFAULT_MAX_CONCURRENT_CALLS = 16
DEFAULT_MAX_ARGUMENT_CHARS = 100_000
DEFAULT_CALL_TIMEOUT = 300.0
DEFAULT_APPROVAL_TIMEOUT = 60.0


@dataclass(frozen=True)
class Policy:
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    pin_tools: bool = True  # trust on first use; a changed or new tool is withheld until `mcpbox pins accept`
    block_suspicious: bool = True  # withhold tools whose definitions hide instructions, not only warn
    strict_arguments: bool = True  # arguments the tool's schema does not declare are refused
    max_argument_chars: int = DEFAULT_MAX_ARGUMENT_CHARS  # per string value in a call's arguments
    sanitize_output: bool = True  # strip terminal escapes and invisible Unicode on the way to the client
    redact_tokens: bool = True  # replace well-known credential formats on the way to the client
    wrap_untrusted: bool = False  # put tool text inside delimited untrusted-content tags
    calls_per_minute: int = DEFAULT_CALLS_PER_MINUTE  # all tools together
    tool_calls_per_minute: tuple[tuple[str, int], ...] = ()  # tool name or glob -> its own limit
    max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS
    call_timeout: float = DEFAULT_CALL_TIMEOUT  # seconds; then the client gets an error, the server a cancel
    approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT  # seconds a call waits for a person, then it is denied
    server_requests: ServerRequests = field(default_factory=ServerRequests)

    def tool_limit(self, name: str) -> int | None:
        for pattern, limit in self.tool_calls_per_minute:
            if fnmatch.fnmatchcase(name, pattern):
                return limit
        return None


@dataclass(frozen=True)
class LogSettings:
    payloads: Payloads = "full"
    sign: bool = True  # seal the log with the keyring's Ed25519 key
    keep_days: int = 30  # `mcpbox logs prune` (and each run) removes this profile's older logs


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
    network: Network = field(default_factory=Network)
    resources: Resources = field(default_factory=Resources)
    seccomp: str = DEFAULT_SECCOMP  # a name in seccomp/ or an absolute path
    user: str = DEFAULT_USER
    build: Build | None = None
    tools: Tools = field(default_factory=Tools)
    prompts: NameFilter = field(default_factory=NameFilter)
    mcp_resources: NameFilter = field(default_factory=NameFilter)  # by URI; `resources:` holds the limits
    policy: Policy = field(default_factory=Policy)
    log: LogSettings = field(default_factory=LogSettings)

    def check_mounts(self) -> None:
        """Refuse to start a session while a mounted host path is missing (a folder the user has yet to make)."""
        for mount in self.mounts:
            if mount.missing:
                raise ProfileError(
                    f"{self.source}: {mount.missing}: {mount.source} does not exist, so it cannot be mounted.",
                    f"Create it (mkdir -p {mount.source}) or point the mount at an existing folder "
                    "in your own copy of the profile.",
                )

    def loosenings(self) -> list[str]:  # noqa: PLR0912 - one branch per key, flat on purpose
        """Every way this profile is less strict than the defaults, in words."""
        found: list[str] = []
        for mount in self.mounts:
            access = "read-write" if mount.mode == "rw" else "read-only"
            if mount.volume is not None:
                found.append(
                    f"keeps data in volume {volume_name(self.name, mount.volume)} at {mount.target} ({access})"
                )
            else:
                said = ", a credentials folder: credentials: true" if mount.credentials else ""
                found.append(f"mounts host {mount.source} at {mount.target} ({access}{said})")
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
        policy, safe = self.policy, Policy()
        for key in ("pin_tools", "block_suspicious", "strict_arguments", "sanitize_output", "redact_tokens"):
            if getattr(safe, key) and not getattr(policy, key):
                found.append(f"policy.{key} is off")
        if policy.max_argument_chars > safe.max_argument_chars:
            found.append(f"policy.max_argument_chars {policy.max_argument_chars} is above the default")
        if policy.calls_per_minute > safe.calls_per_minute:
            found.append(f"policy.calls_per_minute {policy.calls_per_minute} is above the default")
        if policy.max_concurrent_calls > safe.max_concurrent_calls:
            found.append(f"policy.max_concurrent_calls {policy.max_concurrent_calls} is above the default")
        for kind in SERVER_REQUEST_KINDS:
            mode, default = getattr(policy.server_requests, kind), getattr(safe.server_requests, kind)
            if mode != default and (mode == "allow" or default == "deny"):
                found.append(f"policy.server_requests.{kind} is {mode} instead of {default}")
        for destination in self.network.allow:
            found.append(f"network: may open TCP connections to {destination.entry}")
        for name in self.network.docker_networks:
            found.append(f"network: joins the Docker network {name}")
        if not self.log.sign:
            found.append("log.sign is off: this profile's session logs carry no signatures")
        return found


def volume_name(profile: str, volume: str) -> str:
    """The Docker volume behind a profile's ``{volume: NAME}`` mount: one per profile and name, so
    two profiles never share data by choosing the same short name. The dots cannot occur in either
    name: `git-hub` + `data` and `git` + `hub-data` stay two volumes."""
    return f"mcpbox.{profile}.{volume}"


def split_npm(spec: str) -> tuple[str, str | None]:
    """``@scope/pkg@1.2`` -> (``@scope/pkg``, ``1.2``): a scope's leading @ is part of the name."""
    at = spec.find("@", 1)
    return (spec, None) if at < 0 else (spec[:at], spec[at + 1 :])
