"""The one module that talks to the Docker engine (through the Docker SDK).

It translates every docker/requests exception into the MCPBoxError tree, so
nothing above this layer ever sees a library exception or a traceback.
"""

from __future__ import annotations

import contextlib
import io
import socket
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import docker
import docker.errors
import docker.utils
import requests.exceptions

from mcpbox.errors import EngineError, ImageMissingError, MCPBoxError, SessionNotFoundError
from mcpbox.sandbox.spec import (
    LABEL_HOST,
    LABEL_PARENT_PID,
    LABEL_PARENT_STARTED,
    LABEL_PROFILE,
    LABEL_ROLE,
    LABEL_SESSION,
    ImageConfig,
)

T = TypeVar("T")
ENGINE_REMEDY = "Start the Docker engine (e.g. `sudo systemctl start docker`) and check it with `docker info`."
REFUSED_REMEDY = "Check the container configuration with `mcpbox run --dry-run PROFILE` and the profile's mounts."


@dataclass(frozen=True)
class SandboxInfo:
    """A labelled mcpbox container, as `ps` and `gc` see it."""

    id: str
    name: str
    session: str
    profile: str
    parent_pid: int
    parent_started: float
    host: str
    state: str
    created: int
    role: str = "server"  # or "egress": the container holding a session's network allow-list


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except MCPBoxError:
        raise
    except docker.errors.ImageNotFound as exc:
        raise ImageMissingError(
            f"{action}: the image is not present on this Docker engine ({exc.explanation}).",
            "Build it first (see the profile's build: key, or scripts/setup.sh for the bundled images); "
            "mcpbox never pulls images implicitly.",
        ) from exc
    except docker.errors.NotFound as exc:
        raise SessionNotFoundError(f"{action}: no such container ({exc.explanation}).", "Run `mcpbox ps`.") from exc
    except docker.errors.APIError as exc:
        raise EngineError(f"{action}: the Docker engine refused ({exc.explanation or exc}).", REFUSED_REMEDY) from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise EngineError(f"{action}: cannot reach the Docker engine ({exc}).", ENGINE_REMEDY) from exc


def _ignore_gone(call: Callable[[], T]) -> T | None:
    """Run a teardown call; a container that is already gone (or going) is success."""
    try:
        return call()
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # removal already in progress
            return None
        raise


class Engine:
    """A connection to the Docker engine, configured from the environment like the docker CLI."""

    def __init__(self, timeout: int = 30) -> None:
        with _translated("connecting"):
            kwargs = docker.utils.kwargs_from_env()
            self.api = docker.APIClient(version="auto", timeout=timeout, **kwargs)
        self._attached: dict[str, Any] = {}  # container id -> the SDK's attach wrapper, kept alive (see attach)

    def image_config(self, image: str) -> ImageConfig:
        """The image's VOLUMEs, entrypoint and command; raises ImageMissingError if the image is not here."""
        with _translated(f"inspecting image {image}"):
            inspected = self.api.inspect_image(image)  # type: ignore[no-untyped-call]
        config = inspected.get("Config") or {}
        return ImageConfig(
            id=str(inspected.get("Id", "")),
            volumes=tuple(sorted(config.get("Volumes") or {})),
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
        )

    def create(self, body: dict[str, Any], name: str) -> str:
        with _translated(f"creating the sandbox for image {body.get('Image')}"):
            result = self.api.create_container_from_config(body, name=name)  # type: ignore[no-untyped-call]
            return str(result["Id"])

    def attach(self, container_id: str) -> socket.socket:
        """A raw socket carrying the container's stdin (to write) and multiplexed stdout/stderr."""
        with _translated("attaching to the sandbox"):
            sock = self.api.attach_socket(container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        # The SDK's wrapper holds the HTTP response, which sits in a reference cycle: were it dropped,
        # a garbage collection at any moment later would close the socket under the running session.
        self._attached[container_id] = sock
        raw = getattr(sock, "_sock", sock)
        if not isinstance(raw, socket.socket):
            raise EngineError(
                f"attaching to the sandbox gave a {type(raw).__name__}, not a socket.",
                "Use a local Docker engine over its unix socket (DOCKER_HOST=unix://...).",
            )
        return raw

    def detach(self, container_id: str) -> None:
        """Let go of the SDK's attach wrapper (and its HTTP response), once the session is over."""
        wrapper = self._attached.pop(container_id, None)
        response = getattr(wrapper, "_response", None)
        for part in (wrapper, response):
            with contextlib.suppress(Exception):  # already closed with the socket: nothing to report
                part.close()  # type: ignore[union-attr]

    def start(self, container_id: str) -> None:
        with _translated("starting the sandbox"):
            self.api.start(container_id)

    def wait_removed(self, container_id: str) -> int:
        """Block until the (auto-removed) container is gone; its exit code, or -1 if unknown."""
        with _translated("waiting for the sandbox"):
            try:
                result = self.api.wait(container_id, timeout=None, condition="removed")
            except docker.errors.NotFound:
                return -1
            return int(result.get("StatusCode", -1))

    def stop(self, container_id: str, timeout: int) -> None:
        with _translated("stopping the sandbox"):
            _ignore_gone(lambda: self.api.stop(container_id, timeout=timeout))

    def remove(self, container_id: str) -> None:
        with _translated("removing the sandbox"):
            _ignore_gone(lambda: self.api.remove_container(container_id, force=True))

    def create_network(self, name: str, labels: dict[str, str]) -> str:
        """A bridge network of its own for one session's egress side (no IPv6, not attachable by others)."""
        with _translated(f"creating the network {name}"):
            result = self.api.create_network(name, driver="bridge", labels=labels, check_duplicate=True)
            return str(result["Id"])

    def has_network(self, network: str) -> bool:
        with _translated(f"looking up the network {network}"):
            try:
                self.api.inspect_network(network)
            except docker.errors.NotFound:
                return False
            return True

    def connect(self, network: str, container_id: str) -> None:
        with _translated(f"joining the Docker network {network}"):
            self.api.connect_container_to_network(container_id, network)

    def remove_network(self, network: str) -> None:
        with _translated(f"removing the network {network}"):
            _ignore_gone(lambda: self.api.remove_network(network))

    def networks(self, session: str | None = None) -> list[SandboxInfo]:
        """mcpbox's own networks (labelled like its containers), for `gc`."""
        label = f"{LABEL_SESSION}={session}" if session else LABEL_SESSION
        with _translated("listing networks"):
            rows = self.api.networks(filters={"label": label})
        # A network row has a name (not names), an ISO creation time and no state: shaped like a container's.
        return [_info({**row, "Names": [row.get("Name", "?")], "Created": 0, "State": "network"}) for row in rows]

    def output_lines(self, container_id: str) -> Iterator[bytes]:
        """The container's stdout and stderr, line by line, from now until it exits.
        Called before the container starts, so that nothing it prints first is missed."""
        with _translated("attaching to the egress container"):
            chunks = self.api.attach(container_id, stdout=True, stderr=True, stream=True, logs=False, demux=True)

        def lines() -> Iterator[bytes]:
            pending = {0: b"", 1: b""}
            try:
                for pair in chunks:
                    for index, chunk in enumerate(pair):
                        if chunk:
                            *done, pending[index] = (pending[index] + chunk).split(b"\n")
                            yield from done
            except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
                return  # the container is gone: its output ends here

        return lines()

    def volume_labels(self, name: str) -> dict[str, str] | None:
        """The volume's labels ({} when it has none), or None when there is no such volume."""
        with _translated(f"looking up the volume {name}"):
            try:
                return dict(self.api.inspect_volume(name).get("Labels") or {})
            except docker.errors.NotFound:
                return None

    def remove_volume(self, name: str) -> None:
        with _translated(f"removing the volume {name}"):
            _ignore_gone(lambda: self.api.remove_volume(name, force=True))

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        with _translated(f"creating the volume {name}"):
            self.api.create_volume(name, driver="local", labels=labels)

    @contextmanager
    def _never_started(self, image: str, mounts: list[dict[str, Any]], action: str) -> Iterator[str]:
        """A container of ``image`` that is created and never started: its files, read or written
        through the engine's archive API, without running anything from the image."""
        body: dict[str, Any] = {"Image": image, "Entrypoint": ["true"], "Cmd": [], "NetworkDisabled": True}
        body["HostConfig"] = {"Mounts": mounts, "NetworkMode": "none", "CapDrop": ["ALL"]}
        with _translated(action):
            cid = str(self.api.create_container_from_config(body, name=None)["Id"])  # type: ignore[no-untyped-call]
            try:
                yield cid
            finally:
                # v=True: an image VOLUME would otherwise leave an anonymous volume behind.
                _ignore_gone(lambda: self.api.remove_container(cid, force=True, v=True))

    def put_archive_mounted(self, image: str, mount: dict[str, Any], path: str, archive: bytes) -> None:
        """Unpack ``archive`` at ``path`` in a container of ``image`` with ``mount``."""
        with self._never_started(image, [mount], f"preparing the volume {mount.get('Source')}") as cid:
            self.api.put_archive(cid, path, archive)

    def read_file(self, image: str, path: str) -> bytes:
        """One regular file of ``image`` (symlinks are not followed: name the real path)."""
        with self._never_started(image, [], f"reading {path} from {image}") as cid:
            try:
                stream, _ = self.api.get_archive(cid, path)
            except docker.errors.NotFound as exc:
                raise EngineError(f"{image} has no file {path}.", "Use a Debian-based image.") from exc
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.extractfile(tar.getmembers()[0])
                if member is None:
                    raise EngineError(f"{path} in {image} is not a regular file.", "Name the file it links to.")
                return member.read()

    def sandboxes(self, session: str | None = None) -> list[SandboxInfo]:
        label = f"{LABEL_SESSION}={session}" if session else LABEL_SESSION
        with _translated("listing sandboxes"):
            rows = self.api.containers(all=True, filters={"label": label})
        return [_info(row) for row in rows]


def _info(row: dict[str, Any]) -> SandboxInfo:
    labels: dict[str, str] = row.get("Labels") or {}

    def number(key: str) -> float:
        try:
            return float(labels.get(key, "0"))
        except ValueError:
            return 0.0

    names = row.get("Names") or ["?"]
    return SandboxInfo(
        id=str(row["Id"]),
        name=str(names[0]).lstrip("/"),
        session=labels.get(LABEL_SESSION, ""),
        profile=labels.get(LABEL_PROFILE, ""),
        parent_pid=int(number(LABEL_PARENT_PID)),
        parent_started=number(LABEL_PARENT_STARTED),
        host=labels.get(LABEL_HOST, ""),
        state=str(row.get("State", "")),
        created=int(row.get("Created", 0)),
        role=labels.get(LABEL_ROLE, "server"),
    )
