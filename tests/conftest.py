"""Shared test set-up: private state dirs, the real Docker engine, profiles, clients.

Integration tests use real parts only: the Docker engine and images that
scripts/setup.sh prepares, the `mcpbox` console script, and the official MCP
SDK client. A missing engine or image fails the test with the fix, it does not
skip it: a skipped security test would look like a passing one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pytest
import yaml
from hypothesis import HealthCheck, settings

from tests.keyring_session import KeyringSession, start_keyring

# Property tests judge behaviour, not speed: on a loaded two-core CI machine, hypothesis's
# per-example deadline and its "generation is slow" check would fail tests for timing alone.
settings.register_profile(
    "mcpbox", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
settings.load_profile("mcpbox")

ROOT = Path(__file__).resolve().parents[1]
MCPBOX = str(Path(sys.executable).parent / "mcpbox")
TIME_IMAGE = "mcpbox/time:2026.10.19"
HOSTILE_IMAGE = "mcpbox/hostile:test"
LABEL = "mcpbox.session"
# Only sandboxes made during this test run are the tests' business: a developer's live
# mcpbox sessions on the same engine are neither counted nor removed.
RUN_STARTED = int(time.time()) - 1


@dataclass
class Home:
    """A private XDG config/state home, so tests never touch the user's own."""

    root: Path
    runtime: Path  # short: approval sockets live here, and socket paths are capped at 107 bytes

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def profiles(self) -> Path:
        return self.config / "mcpbox" / "profiles"

    @property
    def sessions(self) -> Path:
        return self.state / "mcpbox" / "sessions"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "XDG_CONFIG_HOME": str(self.config),
            "XDG_STATE_HOME": str(self.state),
            "XDG_RUNTIME_DIR": str(self.runtime),
            **extra,
        }

    def full_env(self, **extra: str) -> dict[str, str]:
        """The whole environment for subprocess.run: ours plus the private homes."""
        return {**os.environ, **self.env(**extra)}

    def write_profile(self, name: str, data: dict[str, Any]) -> Path:
        self.profiles.mkdir(parents=True, exist_ok=True)
        path = self.profiles / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, **data}))
        return path

    def session_logs(self) -> list[Path]:
        return sorted(self.sessions.glob("*.jsonl")) if self.sessions.is_dir() else []


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    runtime = Path(tempfile.mkdtemp(prefix="mbx-"))
    h = Home(tmp_path / "home", runtime)
    for key, value in h.env().items():
        monkeypatch.setenv(key, value)
    yield h
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_api() -> Any:
    import docker

    try:
        api: Any = docker.APIClient(version="auto")
        api.ping()
    except Exception as exc:
        pytest.fail(f"no Docker engine answers ({exc}); run scripts/setup.sh (make test does)")
    for image in (TIME_IMAGE, HOSTILE_IMAGE):
        try:
            api.inspect_image(image)
        except docker.errors.ImageNotFound:
            pytest.fail(f"image {image} is missing; run scripts/setup.sh (make test does)")
    return api


def labelled(api: Any, session: str | None = None, *, profile: str | None = None) -> list[dict[str, Any]]:
    """mcpbox sandboxes created during this test run (of one session or profile, if given)."""
    label = f"{LABEL}={session}" if session else f"mcpbox.profile={profile}" if profile else LABEL
    return [row for row in api.containers(all=True, filters={"label": label}) if row["Created"] >= RUN_STARTED]


def wait_until_gone(api: Any, session: str | None = None, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Poll (bounded) until no labelled container remains; returns what is left."""
    deadline = time.monotonic() + timeout
    left = labelled(api, session)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = labelled(api, session)
    return left


def _orphans(api: Any) -> list[dict[str, Any]]:
    """Sandboxes of this run whose mcpbox process is gone: what a test may have left behind."""
    import psutil

    return [row for row in labelled(api) if not psutil.pid_exists(int(row["Labels"].get("mcpbox.parent_pid", 0)))]


@pytest.fixture
def docker_clean(docker_api: Any) -> Iterator[Any]:
    """The engine; sandboxes a test leaves behind (owner gone, container still there) fail it.

    Live sessions (a concurrent benchmark, a developer's client) are left alone.
    """
    for row in _orphans(docker_api):
        docker_api.remove_container(row["Id"], force=True)
    yield docker_api
    deadline = time.monotonic() + 15
    left = _orphans(docker_api)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _orphans(docker_api)
    for row in left:
        docker_api.remove_container(row["Id"], force=True)
    assert not left, f"sandboxes left behind: {[r['Names'] for r in left]}"


def hostile_profile(home: Home, name: str = "hostile", **extra: Any) -> str:
    data: dict[str, Any] = {"image": HOSTILE_IMAGE, **extra}
    home.write_profile(name, data)
    return name


@contextlib.asynccontextmanager
async def sdk_client(
    profile: str,
    home: Home,
    *,
    mode: str = "auto",
    errlog: TextIO | None = None,
    env: dict[str, str] | None = None,
    **client_kwargs: Any,
) -> AsyncIterator[Any]:
    """The official MCP SDK client, spawning `mcpbox run PROFILE` over stdio.

    Like a desktop client, the SDK passes only a few variables of its own environment on; ``env`` adds more.
    """
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=MCPBOX, args=["run", profile], env=home.env(**(env or {})))
    transport = stdio_client(params, errlog=errlog) if errlog is not None else stdio_client(params)
    async with Client(transport, mode=mode, **client_kwargs) as client:
        yield client


def read_log(path: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in path.read_bytes().split(b"\n") if line]


class RawClient:
    """`mcpbox run` driven byte by byte, for what the SDK would never send or tolerate."""

    def __init__(self, profile: str, home: Home, *, env: dict[str, str] | None = None) -> None:
        import queue
        import subprocess
        import threading

        self.proc = subprocess.Popen(
            [MCPBOX, "run", profile],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=home.full_env(**(env or {})),
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.stderr = b""

        def read_out() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.put(line)

        def read_err() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.stderr += line

        self._threads = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
        for thread in self._threads:
            thread.start()

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, obj: dict[str, Any]) -> None:
        import json

        self.send_raw(json.dumps(obj).encode() + b"\n")

    def recv_line(self, timeout: float = 20.0) -> bytes:
        return self.lines.get(timeout=timeout)

    def recv(self, timeout: float = 20.0) -> dict[str, Any]:
        import json

        result: dict[str, Any] = json.loads(self.recv_line(timeout))
        return result

    def request(
        self, ident: int | str, method: str, params: dict[str, Any] | None = None, timeout: float = 20.0
    ) -> dict[str, Any]:
        """Send a request and return its response, collecting anything else that arrives first."""
        self.send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params or {}})
        self.others: list[dict[str, Any]] = []
        while True:
            message = self.recv(timeout)
            if message.get("id") == ident and "method" not in message:
                return message
            self.others.append(message)

    def initialize(self, version: str = "2025-11-25") -> dict[str, Any]:
        response = self.request(
            0,
            "initialize",
            {
                "protocolVersion": version,
                "capabilities": {"sampling": {}, "roots": {}, "elicitation": {}},
                "clientInfo": {"name": "raw-test", "version": "1"},
            },
        )
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return response

    def call_tool(
        self, ident: int, name: str, arguments: dict[str, Any] | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        return self.request(ident, "tools/call", {"name": name, "arguments": arguments or {}}, timeout=timeout)

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._close_pipes()
        return code

    def _close_pipes(self) -> None:
        for thread in self._threads:
            thread.join(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_pipes()


@pytest.fixture
def raw_clients() -> Iterator[list[RawClient]]:
    """Collects RawClients so a failing test still kills its mcpbox processes."""
    clients: list[RawClient] = []
    yield clients
    for client in clients:
        client.kill()


def container_of(api: Any, mcpbox_pid: int, timeout: float = 20.0) -> dict[str, Any]:
    """The sandbox a given `mcpbox run` process owns (waits for it to appear)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = api.containers(all=True, filters={"label": f"mcpbox.parent_pid={mcpbox_pid}"})
        if rows:
            return dict(rows[0])
        time.sleep(0.05)
    raise AssertionError(f"no sandbox appeared for mcpbox pid {mcpbox_pid}")


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyringSession]:
    """A real, private Secret Service (GNOME Keyring) for one test module."""
    session = start_keyring(tmp_path_factory.mktemp("kr"))
    yield session
    session.stop()


@pytest.fixture
def kr_home(home: Home, keyring: KeyringSession, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A private home whose processes reach the test keyring, with no backend forced from outside."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    for key, value in keyring.env.items():
        monkeypatch.setenv(key, value)
    return home
