"""Benchmark mcpbox against the plain Docker paths it wraps.

(a) startup: spawn -> `initialize` response, `mcpbox run time` vs
    `docker run -i --rm IMAGE CMD` (plus, for reference, the same create /
    attach / start done in-process with the Docker SDK), interleaved; and
    `mcpbox run` of the same profile with one secret, read from a private
    GNOME Keyring the bench starts and stops (skipped, with a note, if there
    is none), plus that keyring read alone, in a separate process;
(b) round-trip latency of sequential `ping`s through `mcpbox run time` vs a
    direct Docker SDK attach with no relay;
(c) mcpbox's own RSS during the ping run, and its guardian child's;
(d) the same latency with a `log: {payloads: metadata}` profile;
(f) the policy chain's own cost per message, in-process (bench/policy_cost.py):
    a real relay fed in memory, policy off vs on, no Docker;
(g) the session log writer's cost per record, in-process (bench/log_cost.py):
    full payloads vs metadata only vs full with the sealing thread, and one seal;
(h) the network allow-list (bench/network_cost.py): TCP set-up by address and by
    name through a real egress container vs a plain bridge, and the egress side's start.

With the private keyring running, every `mcpbox run` of (a,b,d) seals its log
(the default); without it, the logs are unsigned and (a) says so.

`mcpbox run` always attaches the policy engine, so the mcpbox rows of (b,d)
include the whole chain; (f) shows how much of them it is.

Prints a table and writes the figures as JSON. This is a benchmark, not a
test: it asserts nothing about timings. Every container it causes is checked
to be gone after use, and force-removed (and reported) if it is not.

    .venv/bin/python bench/run.py [--quick] [--runs N] [--pings N] [--policy-rounds N] [--output PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import re
import secrets
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import docker
import docker.errors
import docker.utils
import psutil
import yaml

import log_cost  # bench/, beside this file
import network_cost  # bench/, beside this file
import policy_cost  # bench/, beside this file: `python bench/run.py` puts it on sys.path
from mcpbox import paths
from mcpbox._version import __version__
from mcpbox.profile import Profile, load_profile
from mcpbox.sandbox.spec import Owner, create_body

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "latest.json"
PROFILE = "time"
METADATA_PROFILE = "bench-metadata"
# The time profile plus `secrets: {SECRET_VAR: SECRET_ENTRY}`. Names, not values: the value is random.
SECRET_PROFILE = "bench-secret"  # noqa: S105
SECRET_VAR = "API_TOKEN"  # noqa: S105
SECRET_ENTRY = "bench-token"  # noqa: S105
PROTOCOL = "2025-11-25"

IO_TIMEOUT = 60.0  # no single read may block longer than this
EXIT_TIMEOUT = 30.0
GONE_TIMEOUT = 15.0
WARMUP_PINGS = 100
PING_BLOCK = 100  # pings per target before rotating to the next one
RSS_INTERVAL = 0.02

TARGET_STARTUP_RATIO = 1.0  # mcpbox / docker run -i, medians
TARGET_ADDED_P50 = 0.25  # over a direct SDK attach
TARGET_RSS_BYTES = 60_000_000  # 60 MB, decimal

MB = 1_000_000
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
SESSION_RE = re.compile(rb"mcpbox: session (\S+) ")


def initialize_line(ident: int = 1) -> bytes:
    message = {
        "jsonrpc": "2.0",
        "id": ident,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "mcpbox-bench", "version": __version__},
        },
    }
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def ping_line(ident: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % ident


# ---- blocking line readers --------------------------------------------------


class Lines:
    """Newline-delimited reads from a file descriptor, each bounded by a timeout."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def _wait(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            raise TimeoutError(f"no output within {IO_TIMEOUT:.0f} s")

    def _read(self) -> bytes:
        return os.read(self.fd, 65536)

    def _feed(self, chunk: bytes) -> None:
        self.buf += chunk

    def readline(self, timeout: float = IO_TIMEOUT) -> bytes:
        deadline = time.perf_counter() + timeout
        while (end := self.buf.find(b"\n")) < 0:
            self._wait(deadline - time.perf_counter())
            chunk = self._read()
            if not chunk:
                raise EOFError("the stream closed before a full line")
            self._feed(chunk)
        line = bytes(self.buf[: end + 1])
        del self.buf[: end + 1]
        return line


class AttachLines(Lines):
    """The same over a Docker attach socket: frames of ``[stream, 0, 0, 0, size:u32be]``
    plus payload; stdout payloads (stream 1) are kept, stderr is counted and dropped."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock.fileno())
        self.sock = sock
        self.raw = bytearray()
        self.stderr_bytes = 0

    def _read(self) -> bytes:
        return self.sock.recv(65536)

    def _feed(self, chunk: bytes) -> None:
        raw = self.raw
        raw += chunk
        pos = 0
        while len(raw) - pos >= 8:
            size = int.from_bytes(raw[pos + 4 : pos + 8], "big")
            if len(raw) - pos - 8 < size:
                break
            if raw[pos] == 1:
                self.buf += raw[pos + 8 : pos + 8 + size]
            else:
                self.stderr_bytes += size
            pos += 8 + size
        del raw[:pos]


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Conn:
    """A JSON-RPC client over one byte channel: requests are strictly sequential."""

    def __init__(self, send: Callable[[bytes], None], lines: Lines) -> None:
        self.send = send
        self.lines = lines
        self.next_id = 100

    def wait_for(self, ident: int) -> dict[str, Any]:
        while True:
            message = json.loads(self.lines.readline())
            if isinstance(message, dict) and message.get("id") == ident and "method" not in message:
                if "error" in message:
                    raise RuntimeError(f"request {ident} failed: {message['error']}")
                return message
            # anything else (a notification, a server request) is not what we wait for

    def handshake(self) -> None:
        self.send(initialize_line(1))
        self.wait_for(1)
        self.send(INITIALIZED)

    def ping(self) -> float:
        """One round trip, in seconds."""
        self.next_id += 1
        ident = self.next_id
        line = ping_line(ident)
        started = time.perf_counter()
        self.send(line)
        self.wait_for(ident)
        return time.perf_counter() - started


# ---- context ----------------------------------------------------------------


@dataclass
class Context:
    api: docker.APIClient
    profile: Profile
    mcpbox: str
    docker_cli: str
    env: dict[str, str]  # mcpbox's environment: private XDG dirs
    state: Path
    token: str = field(default_factory=lambda: secrets.token_hex(3))
    seq: int = 0
    secret_skipped: str = ""  # why there is no "mcpbox+secret" scenario; empty when there is one

    @property
    def image(self) -> str:
        return self.profile.image

    @property
    def command(self) -> list[str]:
        return list(self.profile.command or ())

    def lockdown_body(self) -> dict[str, Any]:
        """mcpbox's own create body for the profile, with its labels swapped for the bench's
        own, so neither `mcpbox gc`/`ps` nor the test suite's cleanup takes it for a session."""
        started = psutil.Process().create_time()
        owner = Owner(session=f"bench-{self.token}", pid=os.getpid(), started=started, host="mcpbox-bench")
        body = create_body(self.profile, owner)
        body["Labels"] = {"mcpbox-bench": self.token}
        return body

    def name(self, kind: str) -> str:
        self.seq += 1
        return f"mcpbox-bench-{self.token}-{kind}-{self.seq}"


def container_gone(api: docker.APIClient, name: str) -> bool:
    try:
        api.inspect_container(name)
    except docker.errors.NotFound:
        return True
    return False


def ensure_gone(api: docker.APIClient, *, name: str | None = None, session: str | None = None) -> bool:
    """Wait for the container to disappear; force-remove it if it will not. True if it had to be."""

    def remaining() -> list[str]:
        if session is not None:
            rows = api.containers(all=True, filters={"label": f"mcpbox.session={session}"})
            return [str(row["Id"]) for row in rows]
        assert name is not None
        return [] if container_gone(api, name) else [name]

    deadline = time.monotonic() + GONE_TIMEOUT
    while left := remaining():
        if time.monotonic() > deadline:
            for ident in left:
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    api.remove_container(ident, force=True)
            print(f"bench: WARNING: container {left} outlived its session; force-removed", file=sys.stderr)
            return True
        time.sleep(0.05)
    return False


def reap(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def session_of(stderr: IO[bytes]) -> str | None:
    stderr.seek(0)
    match = SESSION_RE.search(stderr.read())
    return match.group(1).decode() if match else None


def session_events(ctx: Context, session: str) -> dict[str, dict[str, Any]]:
    log = ctx.state / "mcpbox" / "sessions" / f"{session}.jsonl"
    events: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(OSError):
        for line in log.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("dir") == "event":
                events.setdefault(str(record["event"]), record)
    return events


# ---- (a) startup ------------------------------------------------------------


@dataclass
class StartupRun:
    kind: str
    seconds: float  # spawn -> initialize response
    teardown: float  # end of input -> everything gone
    phases: dict[str, float]
    leaked: bool


def startup_process(ctx: Context, kind: str) -> StartupRun:
    """`mcpbox run time`, the same with one secret, or `docker run -i --rm IMAGE CMD`, spawned cold."""
    name = ctx.name("cli")
    is_mcpbox = kind.startswith("mcpbox")
    if is_mcpbox:
        argv, env = [ctx.mcpbox, "run", SECRET_PROFILE if kind == "mcpbox+secret" else PROFILE], ctx.env
    else:
        argv, env = [ctx.docker_cli, "run", "-i", "--rm", "--name", name, ctx.image, *ctx.command], None
    with tempfile.TemporaryFile() as err:
        wall0 = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env, bufsize=0)
        try:
            assert proc.stdin is not None and proc.stdout is not None
            stdin_fd = proc.stdin.fileno()
            conn = Conn(lambda data: write_all(stdin_fd, data), Lines(proc.stdout.fileno()))
            conn.send(initialize_line(1))
            conn.wait_for(1)
            t1 = time.perf_counter()
            proc.stdin.close()
            proc.wait(timeout=EXIT_TIMEOUT)
        except BaseException:
            reap(proc)
            if not is_mcpbox:
                ensure_gone(ctx.api, name=name)
            elif failed := session_of(err):
                ensure_gone(ctx.api, session=failed)
            raise
        finally:
            reap(proc)
        session = session_of(err) if is_mcpbox else None
    leaked = ensure_gone(ctx.api, session=session) if session else ensure_gone(ctx.api, name=name)
    t2 = time.perf_counter()
    phases: dict[str, float] = {}
    if session:
        events = session_events(ctx, session)
        if "start" in events and "started" in events:
            start, started = float(events["start"]["t"]), float(events["started"]["t"])
            # Split at the session log's own events, whatever mcpbox does in between.
            phases = {
                "spawn->'start' event": start - wall0,
                "'start'->'started' event": started - start,
                "'started'->initialize response": wall0 + (t1 - t0) - started,
            }
    return StartupRun(kind, t1 - t0, t2 - t1, phases, leaked)


def start_direct(ctx: Context, name: str, body: dict[str, Any] | None) -> tuple[str, socket.socket, list[float]]:
    """create -> attach -> start with the SDK; returns the id, raw socket and the three step times."""
    marks = [time.perf_counter()]
    if body is None:
        # With detach=False (the default), stdin_open=True also sets AttachStdin and StdinOnce:
        # the SDK has no separate stdin_once argument.
        host_config = ctx.api.create_host_config(auto_remove=True)
        created = ctx.api.create_container(
            ctx.image, ctx.command, stdin_open=True, tty=False, host_config=host_config, name=name
        )
    else:
        created = ctx.api.create_container_from_config(body, name=name)  # type: ignore[no-untyped-call]
    cid = str(created["Id"])
    marks.append(time.perf_counter())
    wrapped = ctx.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    sock = getattr(wrapped, "_sock", wrapped)
    assert isinstance(sock, socket.socket), type(sock)
    marks.append(time.perf_counter())
    ctx.api.start(cid)
    marks.append(time.perf_counter())
    return cid, sock, [b - a for a, b in itertools.pairwise(marks)]


def startup_sdk(ctx: Context, kind: str) -> StartupRun:
    """Reference: create/attach/start in this (already warm) process, with a plain
    create (``sdk``) or with mcpbox's locked-down create body (``sdk-lockdown``)."""
    name = ctx.name("sdk")
    body = ctx.lockdown_body() if kind == "sdk-lockdown" else None
    t0 = time.perf_counter()
    cid, sock, steps = start_direct(ctx, name, body)
    try:
        conn = Conn(sock.sendall, AttachLines(sock))
        conn.send(initialize_line(1))
        conn.wait_for(1)
        t1 = time.perf_counter()
        sock.shutdown(socket.SHUT_WR)
    finally:
        sock.close()
    leaked = ensure_gone(ctx.api, name=cid)
    phases = {"create": steps[0], "attach": steps[1], "start": steps[2], "server boot": t1 - t0 - sum(steps)}
    return StartupRun(kind, t1 - t0, time.perf_counter() - t1, phases, leaked)


T = TypeVar("T")
ATTEMPTS = 3
# What a session that someone else ended looks like from here: an error reply, a closed
# stream, silence. Such a sample says nothing about speed; it is retried, and counted.
SESSION_LOST = (RuntimeError, EOFError, TimeoutError, ConnectionError)


def retried(what: str, measure: Callable[[], T], failures: list[str]) -> T:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return measure()
        except SESSION_LOST as exc:
            failures.append(f"{what}: {type(exc).__name__}: {exc}")
            print(
                f"bench: WARNING: {what} failed ({type(exc).__name__}: {exc}); was the sandbox removed by "
                f"something else, e.g. a test suite's cleanup? attempt {attempt}/{ATTEMPTS}",
                file=sys.stderr,
            )
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def run_startup(ctx: Context, runs: int, failures: list[str]) -> dict[str, list[StartupRun]]:
    kinds = ["mcpbox", "docker", "sdk", "sdk-lockdown"] + ([] if ctx.secret_skipped else ["mcpbox+secret"])

    def once(kind: str) -> StartupRun:
        if kind.startswith("sdk"):
            return retried(f"startup {kind}", lambda: startup_sdk(ctx, kind), failures)
        return retried(f"startup {kind}", lambda: startup_process(ctx, kind), failures)

    for kind in kinds:  # warm-up, not counted: page cache, first-use costs in the engine
        once(kind)
    results: dict[str, list[StartupRun]] = {kind: [] for kind in kinds}
    for i in range(runs):
        order = kinds[i % len(kinds) :] + kinds[: i % len(kinds)]  # rotate who goes first
        for kind in order:
            result = once(kind)
            results[kind].append(result)
            print(f"  startup {i + 1}/{runs} {kind:13} {result.seconds * 1000:7.1f} ms", file=sys.stderr)
    return results


# What `mcpbox run` of a profile with secrets does before the sandbox exists (launcher._secrets),
# alone: import keyring and choose the backend (which probes the Secret Service over D-Bus),
# then read the profile's values. Run as `python -c KEYRING_LOOKUP PROFILE VARIANT`; prints
# seconds as JSON. The "docker SDK first" variant imports mcpbox's engine client beforehand:
# the modules both need (urllib.request, http.client, logging...) are then already loaded, as
# they would be, a little later, in `mcpbox run` itself.
KEYRING_LOOKUP = r"""
import json, sys, time
from mcpbox.profile import load_profile

profile = load_profile(sys.argv[1])  # `mcpbox run` has loaded the profile, and these modules, by then
if sys.argv[2] == "docker SDK first":
    import mcpbox.sandbox.docker
t0 = time.perf_counter()
from mcpbox.secrets.store import SecretStore

store = SecretStore()
t1 = time.perf_counter()
values = store.resolve(profile.secrets)
t2 = time.perf_counter()
assert len(values) == len(profile.secrets)
print(json.dumps({"import keyring + choose backend": t1 - t0, "read the value": t2 - t1, "total": t2 - t0}))
"""


KEYRING_VARIANTS = ("cold", "docker SDK first")


def run_keyring_lookup(ctx: Context, runs: int) -> dict[str, dict[str, float]]:
    """Median seconds of each step of KEYRING_LOOKUP, per variant, over ``runs`` fresh interpreters each."""
    samples: dict[str, list[dict[str, float]]] = {variant: [] for variant in KEYRING_VARIANTS}
    for _ in range(runs):
        for variant in KEYRING_VARIANTS:
            out = subprocess.run(
                [sys.executable, "-c", KEYRING_LOOKUP, SECRET_PROFILE, variant],
                capture_output=True,
                text=True,
                env=ctx.env,
                timeout=EXIT_TIMEOUT,
                check=True,
            )
            samples[variant].append(json.loads(out.stdout))
    return {
        variant: {step: statistics.median(sample[step] for sample in taken) for step in taken[0]}
        for variant, taken in samples.items()
    }


# ---- (b, c, d) round trips and memory --------------------------------------


@dataclass
class Target:
    label: str
    conn: Conn
    close: Callable[[], bool]  # returns True if a container had to be force-removed
    pid: int | None = None  # the relay process (mcpbox or a reference relay), when there is one


def open_mcpbox(ctx: Context, label: str, profile: str, stack: contextlib.ExitStack) -> Target:
    err = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - the stack closes it
    proc = subprocess.Popen(
        [ctx.mcpbox, "run", profile],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=err,
        env=ctx.env,
        bufsize=0,
    )
    stack.callback(reap, proc)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdin_fd = proc.stdin, proc.stdin.fileno()
    conn = Conn(lambda data: write_all(stdin_fd, data), Lines(proc.stdout.fileno()))
    conn.handshake()

    def close() -> bool:
        session = session_of(err)
        stdin.close()
        try:
            proc.wait(timeout=EXIT_TIMEOUT)
        finally:
            reap(proc)
        return ensure_gone(ctx.api, session=session) if session else False

    return Target(label, conn, close, proc.pid)


def open_direct(ctx: Context, label: str, body: dict[str, Any] | None, stack: contextlib.ExitStack) -> Target:
    name = ctx.name("attach")
    cid, sock, _ = start_direct(ctx, name, body)
    stack.callback(sock.close)
    conn = Conn(sock.sendall, AttachLines(sock))
    conn.handshake()

    def close() -> bool:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        sock.close()
        return ensure_gone(ctx.api, name=cid)

    return Target(label, conn, close)


# Reference relays with nothing but the copying: no parsing, no policy, no log. They
# show what one extra Python hop costs by itself, with a selectors loop and with
# asyncio streams (mcpbox's own architecture). Run as `python -c FLOOR_RELAY MODE NAME IMAGE CMD...`.
FLOOR_RELAY = r"""
import asyncio, os, selectors, socket, sys
import docker

mode, name, image, *command = sys.argv[1:]
api = docker.APIClient(version="auto")
config = api.create_host_config(auto_remove=True)
cid = api.create_container(image, command, stdin_open=True, host_config=config, name=name)["Id"]
wrapped = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
sock = getattr(wrapped, "_sock", wrapped)
api.start(cid)


def stdout_of(buf):
    out, pos = bytearray(), 0
    while len(buf) - pos >= 8:
        size = int.from_bytes(buf[pos + 4 : pos + 8], "big")
        if len(buf) - pos - 8 < size:
            break
        if buf[pos] == 1:
            out += buf[pos + 8 : pos + 8 + size]
        pos += 8 + size
    del buf[:pos]
    return bytes(out)


def selectors_relay():
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ)
    sel.register(sock, selectors.EVENT_READ)
    buf = bytearray()
    while True:
        for key, _ in sel.select():
            if key.fd == 0:
                data = os.read(0, 262144)
                if data:
                    sock.sendall(data)
                else:
                    sel.unregister(0)
                    sock.shutdown(socket.SHUT_WR)
            else:
                data = sock.recv(262144)
                if not data:
                    return
                buf += data
                if out := stdout_of(buf):
                    os.write(1, out)


async def asyncio_relay():
    loop = asyncio.get_running_loop()
    client_in = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(client_in), os.fdopen(0, "rb", buffering=0))
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(1, "wb", buffering=0)
    )
    client_out = asyncio.StreamWriter(transport, protocol, None, loop)
    server_in, server_out = await asyncio.open_connection(sock=sock)

    async def up():
        while data := await client_in.read(262144):
            server_out.write(data)
            await server_out.drain()
        server_out.write_eof()

    async def down():
        buf = bytearray()
        while data := await server_in.read(262144):
            buf += data
            if out := stdout_of(buf):
                client_out.write(out)
                await client_out.drain()

    await asyncio.gather(up(), down())


if mode == "selectors":
    selectors_relay()
else:
    asyncio.run(asyncio_relay())
"""


def open_floor(ctx: Context, label: str, mode: str, stack: contextlib.ExitStack) -> Target:
    name = ctx.name("floor")
    proc = subprocess.Popen(
        [sys.executable, "-c", FLOOR_RELAY, mode, name, ctx.image, *ctx.command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        bufsize=0,
    )
    stack.callback(ensure_gone, ctx.api, name=name)
    stack.callback(reap, proc)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdin_fd = proc.stdin, proc.stdin.fileno()
    conn = Conn(lambda data: write_all(stdin_fd, data), Lines(proc.stdout.fileno()))
    conn.handshake()

    def close() -> bool:
        stdin.close()
        try:
            proc.wait(timeout=EXIT_TIMEOUT)
        finally:
            reap(proc)
        return ensure_gone(ctx.api, name=name)

    return Target(label, conn, close, proc.pid)


@dataclass
class Memory:
    """One relay process (mcpbox: and its guardian child), in bytes."""

    rss_peak: int = 0  # sampled every RSS_INTERVAL during the pings
    rss_start: int = 0  # after the handshake
    hwm: int = 0  # the kernel's high-water mark (VmHWM) at the end
    uss: int = 0  # memory only this process has, at the end
    guardian_rss_peak: int = 0
    guardian_uss: int = 0
    samples: int = 0
    cpu_seconds: float = 0.0  # user+system during the measured pings


class Sampler:
    """Samples RSS of the relay processes (and their children) on a thread while pings run."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {label: psutil.Process(pid) for label, pid in pids.items()}
        # The guardian is forked before the sandbox starts, so it exists by now; looking
        # children up once keeps the sampling loop from scanning /proc every time.
        self.children = {label: proc.children() for label, proc in self.procs.items()}
        self.memory = {label: Memory() for label in pids}
        self.cpu0 = {label: _cpu(proc) for label, proc in self.procs.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        for label, proc in self.procs.items():
            self.memory[label].rss_start = proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for label, proc in self.procs.items():
            memory = self.memory[label]
            memory.cpu_seconds = _cpu(proc) - self.cpu0[label]
            memory.hwm = _vm_hwm(proc.pid)
            memory.uss = proc.memory_full_info().uss
            for child in self.children[label]:
                memory.guardian_uss += child.memory_full_info().uss

    def _loop(self) -> None:
        while not self._stop.wait(RSS_INTERVAL):
            for label, proc in self.procs.items():
                memory = self.memory[label]
                with contextlib.suppress(psutil.Error):
                    memory.rss_peak = max(memory.rss_peak, proc.memory_info().rss)
                    guardian = sum(child.memory_info().rss for child in self.children[label])
                    memory.guardian_rss_peak = max(memory.guardian_rss_peak, guardian)
                    memory.samples += 1


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _vm_hwm(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def run_latency(ctx: Context, pings: int, warmup: int) -> tuple[dict[str, list[float]], dict[str, Memory], bool]:
    """All targets open at once; blocks of PING_BLOCK pings rotate among them, so
    noise from whatever else the machine does lands on every target alike."""
    leaked = False
    with contextlib.ExitStack() as stack:
        targets = [
            open_direct(ctx, "direct", None, stack),
            open_mcpbox(ctx, "mcpbox", PROFILE, stack),
            open_mcpbox(ctx, "mcpbox-metadata", METADATA_PROFILE, stack),
            open_direct(ctx, "direct-lockdown", ctx.lockdown_body(), stack),
            open_floor(ctx, "floor-selectors", "selectors", stack),
            open_floor(ctx, "floor-asyncio", "asyncio", stack),
        ]
        for target in targets:
            for _ in range(warmup):
                target.conn.ping()
        samples: dict[str, list[float]] = {target.label: [] for target in targets}
        pids = {target.label: target.pid for target in targets if target.pid is not None}
        with Sampler(pids) as sampler:
            done, rotation = 0, 0
            while done < pings:
                block = min(PING_BLOCK, pings - done)
                for target in targets[rotation:] + targets[:rotation]:
                    samples[target.label] += [target.conn.ping() for _ in range(block)]
                done += block
                rotation = (rotation + 1) % len(targets)
        for target in targets:
            leaked |= target.close()
    return samples, sampler.memory, leaked


# ---- (e) where startup goes: interpreter and imports ------------------------

ALONE_IMPORTS = ["mcpbox.cli.app", "typer._adapters", "mcpbox.relay.session", "mcpbox.sandbox.docker"]
SHOWN_IMPORT_MS = 3.0  # smaller top-level imports are summed as "other"


def top_level_imports(stderr: str) -> dict[str, float]:
    """Cumulative ms of each top-level import in `-X importtime` output (nested ones are inside)."""
    found: dict[str, float] = {}
    for line in stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[0].startswith("import time:") or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        if name.startswith(("  ", "\t")) or not name.strip():
            continue
        found[name.strip()] = found.get(name.strip(), 0.0) + int(parts[1]) / 1000
    return found


def median_imports(samples: list[dict[str, float]]) -> dict[str, float]:
    names = {name for sample in samples for name in sample}
    medians = {name: statistics.median(sample.get(name, 0.0) for sample in samples) for name in names}
    shown = {name: ms for name, ms in sorted(medians.items(), key=lambda kv: -kv[1]) if ms >= SHOWN_IMPORT_MS}
    return {**shown, "other": sum(medians.values()) - sum(shown.values()), "total": sum(medians.values())}


def run_imports(ctx: Context, runs: int) -> dict[str, float]:
    """What a real `mcpbox run` imports: the client closes stdin at once, so the session
    starts a sandbox and shuts down. Median top-level cumulative ms over ``runs``."""
    samples = []
    for _ in range(runs):
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", ctx.mcpbox, "run", PROFILE],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ctx.env,
            text=True,
        )
        try:
            _, stderr = proc.communicate(input="", timeout=EXIT_TIMEOUT)
        finally:
            reap(proc)
        match = SESSION_RE.search(stderr.encode())
        if match:
            ensure_gone(ctx.api, session=match.group(1).decode())
        samples.append(top_level_imports(stderr))
    return median_imports(samples)


def alone_imports(module: str, runs: int) -> float:
    """Median cumulative ms of importing ``module`` into a bare interpreter."""
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, check=True, text=True
        )
        samples.append(top_level_imports(out.stderr).get(module, 0.0))
    return statistics.median(samples)


def wall_times(argvs: dict[str, list[str]], runs: int, env: dict[str, str]) -> dict[str, float]:
    medians: dict[str, float] = {}
    for label, argv in argvs.items():
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True, env=env)
            samples.append(time.perf_counter() - started)
        medians[label] = statistics.median(samples)
    return medians


# ---- reporting --------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "min": min(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


def machine(ctx: Context) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    engine = ctx.api.version()
    cli = subprocess.run(
        [ctx.docker_cli, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True, check=False
    )
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    changed = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_bytes": psutil.virtual_memory().total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker_engine": engine.get("Version"),
        "docker_api": engine.get("ApiVersion"),
        "docker_cli": cli.stdout.strip(),
        "mcpbox": __version__,
        "git_commit": commit.stdout.strip(),
        "src_changed": [line[3:] for line in changed.stdout.splitlines()],  # uncommitted edits under src/
    }


LATENCY_ROWS = {
    "direct": "direct SDK attach (plain create)",
    "direct-lockdown": "direct SDK attach (mcpbox's create body)",
    "mcpbox": f"mcpbox run {PROFILE} (payloads: full)",
    "mcpbox-metadata": "mcpbox run (payloads: metadata)",
    "floor-selectors": "reference: bare relay, selectors loop",
    "floor-asyncio": "reference: bare relay, asyncio streams",
}


def secret_lines(secret: dict[str, Any]) -> list[str]:
    if "skipped" in secret:
        return [f"    mcpbox run with 1 secret: SKIPPED ({secret['skipped']})"]
    lines = [
        f"    1 secret costs: medians apart {secret['added_median'] * 1000:+.0f} ms, "
        f"median of per-round differences {secret['added_paired_median'] * 1000:+.0f} ms, "
        f"mins apart {secret['added_min'] * 1000:+.0f} ms",
        "    the keyring read alone, in a fresh interpreter (median ms):",
    ]
    for variant, steps in secret["keyring_alone"].items():
        lines.append(f"      {variant + ':':18}" + ", ".join(f"{step} {s * 1000:.0f}" for step, s in steps.items()))
    return lines


def phase_lines(start: dict[str, Any]) -> list[str]:
    lines = []
    for kind in ("mcpbox", "mcpbox+secret", "sdk", "sdk-lockdown"):
        if phases := start.get(kind, {}).get("phases_median"):
            parts = ", ".join(f"{name} {seconds * 1000:.0f}" for name, seconds in phases.items())
            lines.append(f"    {kind} phases (median ms): {parts}")
    return lines


def report(results: dict[str, Any]) -> str:
    out: list[str] = []
    add = out.append
    info, config = results["machine"], results["config"]
    add(
        f"mcpbox {info['mcpbox']} ({info['git_commit']}{'+uncommitted src' if info['src_changed'] else ''}) bench: "
        f"{info['cpus']} CPUs {info['cpu_model']}, "
        f"Docker {info['docker_engine']}, Python {info['python']}, kernel {info['kernel']}"
    )
    add(f"load average before / after: {results['load_before']} / {results['load_after']}")
    add("")
    start = results["startup"]
    add(f"(a) startup: spawn -> initialize response, {config['runs']} runs each, interleaved, after 1 warm-up each")
    add(f"    {'':38}{'min':>10}{'median':>10}{'teardown':>10}")
    labels = {
        "mcpbox": f"mcpbox run {PROFILE}",
        "docker": "docker run -i --rm IMAGE CMD",
        "sdk": "SDK create/attach/start, in-process",
        "sdk-lockdown": "the same with mcpbox's create body",
    }
    if "mcpbox+secret" in start:
        labels["mcpbox+secret"] = f"mcpbox run with 1 secret ({SECRET_PROFILE})"
    for kind, label in labels.items():
        row = start[kind]
        figures = "".join(f"{row[stat] * 1000:8.0f}ms" for stat in ("min", "median", "teardown_median"))
        add(f"    {label:38}{figures}")
    ratio = start["ratio"]
    add(f"    {'ratio mcpbox / docker run':38}{ratio['min']:9.2f}x{ratio['median']:9.2f}x")
    median = {kind: start[kind]["median"] * 1000 for kind in labels}
    add(
        f"    medians apart: mcpbox - SDK with its body {median['mcpbox'] - median['sdk-lockdown']:+.0f} ms "
        f"(mcpbox's own process), docker run - SDK plain {median['docker'] - median['sdk']:+.0f} ms (the CLI), "
        f"SDK plain - SDK mcpbox body {median['sdk'] - median['sdk-lockdown']:+.0f} ms (engine config)"
    )
    out += secret_lines(results["secret"])
    out += phase_lines(start)
    add("")
    lat = results["latency"]
    out += [
        f"(b,d) round trip: sequential ping, {config['pings']} per target after {config['warmup']} warm-up, "
        f"blocks of {PING_BLOCK} rotated",
        "    the mcpbox rows include the policy chain: `mcpbox run` always attaches the engine (see (f))",
    ]
    add(f"    {'':44}{'p50':>9}{'p99':>9}{'mean':>9}{'p50 vs direct':>19}{'relay CPU':>11}")
    memory = results["memory"]
    for label, name in LATENCY_ROWS.items():
        row = lat[label]
        added = f"{row['added_p50_seconds'] * 1e3:+.3f}ms {row['added_p50'] * 100:+3.0f}%" if label != "direct" else ""
        cpu = f"{memory[label]['cpu_seconds'] / config['pings'] * 1e6:.0f} us/ping" if label in memory else ""
        figures = "".join(f"{row[stat] * 1e3:7.3f}ms" for stat in ("p50", "p99", "mean"))
        add(f"    {name:44}{figures}{added:>19}{cpu:>14}")
    add("")
    add(f"(c) mcpbox memory during the ping run (MB = 10^6 bytes; RSS sampled every {RSS_INTERVAL * 1000:.0f} ms)")
    for label in ("mcpbox", "mcpbox-metadata"):
        row = memory[label]
        add(
            f"    {label:16} RSS peak {row['rss_peak'] / MB:5.1f} MB (after handshake {row['rss_start'] / MB:.1f}, "
            f"VmHWM {row['hwm'] / MB:.1f}, USS {row['uss'] / MB:.1f}); "
            f"guardian RSS peak {row['guardian_rss_peak'] / MB:.1f} MB (USS {row['guardian_uss'] / MB:.1f})"
        )
    imports = results["imports"]
    add("")
    add("(e) interpreter and imports (median of wall / -X importtime cumulative)")
    add("    " + ", ".join(f"{label} {seconds * 1000:.0f} ms" for label, seconds in imports["wall"].items()))
    add("    top-level imports of a real `mcpbox run` (ms):")
    add("      " + ", ".join(f"{m} {ms:.0f}" for m, ms in imports["run_ms"].items()))
    add("    each alone in a bare interpreter (ms):")
    add("      " + ", ".join(f"{m} {ms:.0f}" for m, ms in imports["alone_ms"].items()))
    add("")
    out += [
        *policy_cost.lines(results["policy"]),
        "",
        *log_cost.lines(results["log"]),
        "",
        *network_cost.lines(results["network"]),
        "",
        "targets",
    ]
    for target in results["targets"]:
        add(f"    {target['name']:44} {target['measured']:>14}   {verdict(target['met'])}")
    if results["retried"]:
        add(f"WARNING: {len(results['retried'])} measurement(s) failed and were retried (see stderr and the JSON)")
    if results["leaked"]:
        add("WARNING: some containers outlived their session and were force-removed (see stderr)")
    return "\n".join(out)


# ---- main -------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (3 startups, 200 pings each)")
    parser.add_argument("--runs", type=int, help="startup runs per command (default 10)")
    parser.add_argument("--pings", type=int, help="measured pings per target (default 2000)")
    parser.add_argument(
        "--policy-rounds",
        type=int,
        help=f"policy-chain rounds per relay (default {policy_cost.ROUNDS}, quick {policy_cost.QUICK_ROUNDS})",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"JSON results (default {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    if any(value is not None and value < 1 for value in (args.runs, args.pings, args.policy_rounds)):
        parser.error("--runs, --pings and --policy-rounds must be at least 1")
    args.runs = args.runs or (3 if args.quick else 10)
    args.pings = args.pings or (200 if args.quick else 2000)
    args.warmup = 20 if args.quick else WARMUP_PINGS
    args.import_runs = 2 if args.quick else 5
    args.policy_rounds = args.policy_rounds or (policy_cost.QUICK_ROUNDS if args.quick else policy_cost.ROUNDS)
    args.policy_warmup = policy_cost.QUICK_WARMUP_ROUNDS if args.quick else policy_cost.WARMUP_ROUNDS
    return args


@contextlib.contextmanager
def private_dirs(profile: Profile) -> Iterator[tuple[dict[str, str], Path]]:
    with tempfile.TemporaryDirectory(prefix="mcpbox-bench-") as tmp:
        state, config = Path(tmp) / "state", Path(tmp) / "config"
        profiles = config / "mcpbox" / "profiles"
        profiles.mkdir(parents=True)
        user_profile = {
            "name": METADATA_PROFILE,
            "description": f"{profile.name} with metadata-only session logs (bench)",
            "image": profile.image,
            "command": list(profile.command or ()),
            "env": dict(profile.env),
            "log": {"payloads": "metadata"},
        }
        (profiles / f"{METADATA_PROFILE}.yaml").write_text(yaml.safe_dump(user_profile), encoding="utf-8")
        secret_profile = {  # the built-in profile's logging, unlike the metadata one
            **{key: value for key, value in user_profile.items() if key != "log"},
            "name": SECRET_PROFILE,
            "description": f"{profile.name} with one secret from the OS keyring (bench)",
            "secrets": {SECRET_VAR: SECRET_ENTRY},
        }
        (profiles / f"{SECRET_PROFILE}.yaml").write_text(yaml.safe_dump(secret_profile), encoding="utf-8")
        env = {**os.environ, "XDG_STATE_HOME": str(state), "XDG_CONFIG_HOME": str(config)}
        yield env, state


@contextlib.contextmanager
def private_keyring(root: Path, env: dict[str, str], mcpbox: str) -> Iterator[tuple[dict[str, str], str]]:
    """A private headless GNOME Keyring (the test suite's helper) holding SECRET_ENTRY, for the
    duration: yields (mcpbox's environment with it, "") or (``env`` unchanged, why not)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # tests/ is not installed; its keyring helper is shared
    from tests.keyring_session import start_keyring

    try:
        keyring = start_keyring(root)
    except (RuntimeError, OSError) as exc:  # no gnome-keyring or D-Bus here, or it would not start
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
    else:
        why = ""
    if why:
        yield env, why
        return
    try:
        keyring_env = {**env, **keyring.env}
        keyring_env.pop("PYTHON_KEYRING_BACKEND", None)  # as the tests do: no backend forced from outside
        done = subprocess.run(
            [mcpbox, "secret", "set", SECRET_ENTRY],
            input=secrets.token_urlsafe(24) + "\n",
            capture_output=True,
            text=True,
            env=keyring_env,
            timeout=EXIT_TIMEOUT,
            check=False,
        )
        if done.returncode == 0:
            yield keyring_env, ""
        else:
            yield env, f"`mcpbox secret set {SECRET_ENTRY}` failed: {done.stderr.strip()}"
    finally:
        keyring.stop()


def secret_summary(
    startup: dict[str, list[StartupRun]],
    startup_out: dict[str, Any],
    skipped: str,
    keyring_alone: dict[str, dict[str, float]],
) -> dict[str, Any]:
    """What one secret adds to `mcpbox run`'s startup, in seconds."""
    if skipped:
        return {"skipped": skipped}
    plain, with_secret = startup_out["mcpbox"], startup_out["mcpbox+secret"]
    rounds = zip(startup["mcpbox"], startup["mcpbox+secret"], strict=True)  # the same round, interleaved
    return {
        "added_median": with_secret["median"] - plain["median"],
        "added_min": with_secret["min"] - plain["min"],
        "added_paired_median": statistics.median(b.seconds - a.seconds for a, b in rounds),
        "keyring_alone": keyring_alone,
    }


def run_policy_cost(args: argparse.Namespace) -> dict[str, Any]:
    """(f): the policy chain's own cost per message, in-process (bench/policy_cost.py)."""
    print(f"bench: the policy chain in-process, {args.policy_rounds} rounds per relay ...", file=sys.stderr)
    return policy_cost.run(args.policy_rounds, args.policy_warmup)


def run_network_cost(args: argparse.Namespace) -> dict[str, Any]:
    """(h): the network allow-list's connection set-up and start-up (bench/network_cost.py)."""
    print("bench: the network allow-list ...", file=sys.stderr)
    quick = args.quick
    return network_cost.run(
        network_cost.QUICK_CONNECTS if quick else network_cost.CONNECTS,
        network_cost.QUICK_STARTS if quick else network_cost.STARTS,
    )


def run_log_cost(args: argparse.Namespace) -> dict[str, Any]:
    """(g): the session log writer's own cost per record, in-process (bench/log_cost.py)."""
    print("bench: the session log writer in-process ...", file=sys.stderr)
    return log_cost.run(log_cost.QUICK_RECORDS if args.quick else log_cost.RECORDS)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = load_profile(str(paths.builtin_profiles_dir() / f"{PROFILE}.yaml"))
    mcpbox = str(Path(sys.executable).with_name("mcpbox"))
    if not Path(mcpbox).exists():
        mcpbox = shutil.which("mcpbox") or "mcpbox"
    docker_cli = shutil.which("docker") or "/usr/local/bin/docker"
    api = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())
    try:
        api.inspect_image(profile.image)  # type: ignore[no-untyped-call]
    except docker.errors.ImageNotFound:
        print(f"bench: image {profile.image} is missing; run `bash scripts/setup.sh` first", file=sys.stderr)
        return 2

    with contextlib.ExitStack() as dirs:
        env, state = dirs.enter_context(private_dirs(profile))
        print("bench: starting a private keyring for the secret scenario ...", file=sys.stderr)
        env, secret_skipped = dirs.enter_context(private_keyring(state.parent / "keyring", env, mcpbox))
        if secret_skipped:
            print(f"bench: NOTE: skipping the mcpbox+secret scenario: {secret_skipped}", file=sys.stderr)
        ctx = Context(api, profile, mcpbox, docker_cli, env, state, secret_skipped=secret_skipped)
        results: dict[str, Any] = {
            "machine": machine(ctx),
            "config": {
                "runs": args.runs,
                "pings": args.pings,
                "warmup": args.warmup,
                "ping_block": PING_BLOCK,
                "policy_rounds": args.policy_rounds,
                "quick": args.quick,
                "image": ctx.image,
                "command": ctx.command,
            },
            "load_before": [round(x, 2) for x in os.getloadavg()],
        }
        print(f"bench: startup, {args.runs} runs each ...", file=sys.stderr)
        failures: list[str] = []
        startup = run_startup(ctx, args.runs, failures)
        keyring_alone: dict[str, dict[str, float]] = {}
        if not secret_skipped:
            print(f"bench: the keyring read alone, {args.runs} runs ...", file=sys.stderr)
            keyring_alone = run_keyring_lookup(ctx, args.runs)
        print(f"bench: round trips, {args.pings} pings per target ...", file=sys.stderr)
        samples, memory, latency_leaked = retried(
            "the round-trip run", lambda: run_latency(ctx, args.pings, args.warmup), failures
        )
        print("bench: interpreter and import times ...", file=sys.stderr)
        imports = {
            "wall": wall_times(
                {
                    "python -c pass": [sys.executable, "-c", "pass"],
                    "mcpbox --version": [mcpbox, "--version"],
                    "mcpbox run --dry-run": [mcpbox, "run", "--dry-run", PROFILE],
                },
                args.import_runs,
                env,
            ),
            "run_ms": run_imports(ctx, args.import_runs),
            "alone_ms": {module: alone_imports(module, args.import_runs) for module in ALONE_IMPORTS},
        }
        results.update(policy=run_policy_cost(args), log=run_log_cost(args), network=run_network_cost(args))
        results["load_after"] = [round(x, 2) for x in os.getloadavg()]
        results["retried"] = failures

    startup_out: dict[str, Any] = {}
    for kind, runs in startup.items():
        seconds = [run.seconds for run in runs]
        phase_names = runs[0].phases.keys() if runs and runs[0].phases else []
        startup_out[kind] = {
            "min": min(seconds),
            "median": statistics.median(seconds),
            "teardown_median": statistics.median(run.teardown for run in runs),
            "phases_median": {
                name: statistics.median(run.phases[name] for run in runs if name in run.phases) for name in phase_names
            },
            "runs": [asdict(run) for run in runs],
        }
    ratio = {stat: startup_out["mcpbox"][stat] / startup_out["docker"][stat] for stat in ("min", "median")}
    startup_out["ratio"] = ratio
    secret_out = secret_summary(startup, startup_out, secret_skipped, keyring_alone)
    direct_p50 = percentile(samples["direct"], 50)
    latency_out: dict[str, Any] = {}
    for label, values in samples.items():
        stats = summary(values)
        latency_out[label] = {
            **stats,
            "added_p50": stats["p50"] / direct_p50 - 1,  # the target's measure: relative to the base
            "added_p50_seconds": stats["p50"] - direct_p50,  # steadier across runs than the ratio
        }
    rss_peak = max(memory[label].rss_peak for label in ("mcpbox", "mcpbox-metadata"))
    results.update(
        startup=startup_out,
        secret=secret_out,
        latency=latency_out,
        memory={label: asdict(m) for label, m in memory.items()},
        imports=imports,
        leaked=latency_leaked or any(run.leaked for runs in startup.values() for run in runs),
        targets=[
            {
                "name": "startup: mcpbox / docker run -i (median) <= 1.0x",
                "measured": f"{ratio['median']:.3f}x",  # 3 places: 1.004 is not met
                "met": ratio["median"] <= TARGET_STARTUP_RATIO,
            },
            {
                "name": "round trip: added p50 over direct attach <= 25%",
                "measured": f"{latency_out['mcpbox']['added_p50'] * 100:+.0f}%",
                "met": latency_out["mcpbox"]["added_p50"] <= TARGET_ADDED_P50,
            },
            {
                "name": "memory: mcpbox RSS (sampled peak) < 60 MB",
                "measured": f"{rss_peak / MB:.1f} MB",
                "met": rss_peak < TARGET_RSS_BYTES,
            },
        ],
    )
    print(report(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
