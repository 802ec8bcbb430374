"""A person's yes or no for one exact call, by whichever channel the client allows.

Three channels, in order of preference: the client's own elicitation (handshake
era), an ``input_required`` result the client answers on its retry
(2026-07-28), and, for clients with neither, the approval desk: a Unix socket
per live session that `mcpbox approvals` reaches from a terminal. Only the same
user can connect: the socket lives in a 0700 directory and every peer's uid is
checked with SO_PEERCRED.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import socket
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mcpbox import paths
from mcpbox.errors import ApprovalError
from mcpbox.policy.pins import canonical

APPROVAL_KEY = "mcpbox_approval"  # the inputRequests key and the elicitation field mcpbox reads back
MAX_REQUEST_LINE = 64 * 1024
SOCKET_SUFFIX = ".approvals.sock"


def call_digest(tool: str, arguments: object) -> str:
    """What an approval is bound to: the tool and its exact arguments."""
    return hashlib.sha256(canonical({"tool": tool, "arguments": arguments})).hexdigest()


def approval_schema() -> dict[str, Any]:
    """A flat form every elicitation-capable client can render (primitive properties only)."""
    return {
        "type": "object",
        "properties": {
            "approve": {"type": "boolean", "title": "Allow this call", "description": "Yes runs it once, as shown."}
        },
        "required": ["approve"],
    }


def approved(answer: object) -> bool:
    """An ElicitResult that says yes: accepted, with approve set to true. Anything else is no."""
    if not isinstance(answer, dict) or answer.get("action") != "accept":
        return False
    content = answer.get("content")
    return isinstance(content, dict) and content.get("approve") is True


class StateSigner:
    """Integrity-protected ``requestState`` for the 2026-07-28 channel: the client carries it back
    on its retry, and only a state mcpbox made, for that very call, unexpired and unused, opens it."""

    PREFIX = "mcpbox1."

    def __init__(self, session: str, clock: Callable[[], float] = time.time) -> None:
        self.session = session
        self.key = secrets.token_bytes(32)  # per session: a state is worthless outside it
        self.clock = clock
        self.used: set[str] = set()

    def make(self, digest: str, ttl: float) -> str:
        body = {"s": self.session, "d": digest, "n": secrets.token_hex(8), "e": self.clock() + ttl}
        payload = base64.urlsafe_b64encode(canonical(body)).decode().rstrip("=")
        mac = hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()
        return f"{self.PREFIX}{payload}.{mac}"

    def ours(self, state: object) -> bool:
        return isinstance(state, str) and state.startswith(self.PREFIX)

    def open(self, state: str, digest: str) -> str | None:
        """``None`` when the state is good (and now used up), else why not."""
        try:
            payload, mac = state.removeprefix(self.PREFIX).rsplit(".", 1)
        except ValueError:
            return "the approval state is malformed"
        expected = hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, expected):
            return "the approval state was not made by this session or was altered"
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return "the approval state is malformed"
        if not isinstance(body, dict):
            return "the approval state is malformed"
        if body.get("d") != digest:
            return "the call's arguments differ from the ones that were approved"
        if float(body.get("e", 0)) < self.clock():
            return "the approval expired (policy.approval_timeout)"
        if body.get("n") in self.used:
            return "the approval was used already"
        self.used.add(str(body.get("n")))
        return None


@dataclass(frozen=True)
class Ask:
    """One decision a person is asked for, as `mcpbox approvals` shows it."""

    id: str
    session: str
    profile: str
    what: str  # "tool call" | "sampling/createMessage" ...
    tool: str | None
    arguments: Any  # already masked: a secret never reaches the terminal
    deadline: float  # wall clock


Decide = Callable[[bool, str], None]


class Desk:
    """The pending asks of one session, served on its Unix socket."""

    def __init__(self, session: str) -> None:
        self.session = session
        self.asks: dict[str, tuple[Ask, Decide]] = {}
        self.path: Path | None = None  # resolved at the first ask: a session that never asks never needs it
        self._server: asyncio.AbstractServer | None = None
        self._opening: asyncio.Task[None] | None = None

    async def open(self) -> None:
        if self._server is not None:
            return
        directory = private_runtime_dir()
        self.path = path = socket_path(self.session)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(path), limit=MAX_REQUEST_LINE)
        path.chmod(0o600)
        assert path.parent == directory  # noqa: S101 - socket_path() builds it there

    async def close(self) -> None:
        if self._opening is not None:
            with contextlib.suppress(Exception):
                await self._opening
        if self._server is not None:
            self._server.close()
            self._server = None
            if self.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        for ask_id in list(self.asks):
            self.settle(ask_id, False, "the session ended")

    def add(self, ask: Ask, decide: Decide) -> None:
        """Register an ask; the socket opens with the first one (most sessions never need it)."""
        self.asks[ask.id] = (ask, decide)
        if self._server is None and self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(self._open_or_refuse())

    async def _open_or_refuse(self) -> None:
        try:
            await self.open()
        except (OSError, ApprovalError) as exc:
            for ask_id in list(self.asks):
                self.settle(ask_id, False, f"the approval desk could not start: {exc}")

    def settle(self, ask_id: str, approve: bool, how: str) -> bool:
        entry = self.asks.pop(ask_id, None)
        if entry is None:
            return False
        entry[1](approve, how)
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            if uid != os.getuid():
                return  # another user: not even an error message
            line = await asyncio.wait_for(reader.readline(), timeout=30)
            writer.write(json.dumps(self._answer(line)).encode() + b"\n")
            await writer.drain()
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except ValueError:
            return {"error": "not JSON"}
        if not isinstance(request, dict):
            return {"error": "not a JSON object"}
        if request.get("op") == "list":
            return {"asks": [asdict(ask) for ask, _ in self.asks.values()]}
        if request.get("op") == "decide" and isinstance(request.get("id"), str):
            approve = request.get("approve") is True
            done = self.settle(request["id"], approve, "approved in a terminal" if approve else "denied in a terminal")
            return {"ok": done} if done else {"error": f"no pending approval {request['id']}"}
        return {"error": "unknown op"}


def private_runtime_dir() -> Path:
    """The socket directory, created 0700; one that another user owns or could write is refused."""
    directory = paths.runtime_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise ApprovalError(
            f"{directory} is not a directory owned by you; approval sockets cannot be made safe there.",
            "Remove it, or set XDG_RUNTIME_DIR to a private directory.",
        )
    if st.st_mode & 0o077:
        directory.chmod(0o700)
    return directory


def socket_path(session: str) -> Path:
    path = paths.runtime_dir() / f"{session}{SOCKET_SUFFIX}"
    if len(os.fsencode(path)) > 100:
        raise ApprovalError(
            f"the approval socket path {path} is too long for a Unix socket.",
            "Set XDG_RUNTIME_DIR to a shorter directory.",
        )
    return path


def _request(path: Path, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(message).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer = json.loads(data) if data else {}
    return answer if isinstance(answer, dict) else {}


def pending() -> list[Ask]:
    """Every ask of every live session of this user."""
    directory = paths.runtime_dir()
    if not directory.is_dir():
        return []
    found: list[Ask] = []
    for path in sorted(directory.glob(f"*{SOCKET_SUFFIX}")):
        try:
            answer = _request(path, {"op": "list"})
        except (OSError, ValueError):
            continue  # a session that ended without removing its socket
        for raw in answer.get("asks", ()):
            with contextlib.suppress(TypeError):
                found.append(Ask(**raw))
    return found


def decide(ask: Ask, approve: bool) -> None:
    try:
        answer = _request(socket_path(ask.session), {"op": "decide", "id": ask.id, "approve": approve})
    except (OSError, ValueError) as exc:
        raise ApprovalError(
            f"session {ask.session} did not take the answer ({exc}).", "It may have ended; run `mcpbox ps`."
        ) from exc
    if not answer.get("ok"):
        raise ApprovalError(
            f"approval {ask.id} is no longer pending ({answer.get('error', 'no answer')}).",
            "It was answered, withdrawn or timed out; run `mcpbox approvals list`.",
        )
