"""Append-only JSONL session log, one record per message, stderr line or event.

Each record is written with a single ``write(2)`` on an ``O_APPEND`` descriptor
before the message it describes is forwarded, so a crash never hides something
the other side already saw, and the write itself costs one system call.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcpbox import paths
from mcpbox.errors import MCPBoxError

if TYPE_CHECKING:
    from mcpbox.logs.signing import Signer

DIRECTIONS = ("c2s", "s2c", "stderr", "event")
GENESIS = "0" * 64  # the "prev" of a log's first record
MAX_TEXT = 16 * 1024  # non-JSON output is logged, but not without bound
MAX_TEXT_TOTAL = 64 * 1024 * 1024  # per session, for stderr and other non-message output
# Made once: json.dumps() with options builds a new encoder per call, and this runs for every message.
# ASCII-escaped: mcpbox's own fields never contain a byte that a line-oriented tool could
# take for a line break (U+2028, U+0085...). Spliced-in messages are the peers' bytes as
# received: records are separated by "\n" alone, as JSONL says.
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_quote = json.encoder.encode_basestring_ascii  # a JSON string literal, as the encoder above writes it
SEAL_EVERY = 2.0  # seconds: what a SIGKILL can leave unsigned at the end of a log
KEY_WAIT = 10.0  # seconds a closing log waits for a keyring still looking up the key
KEY_DELAY = 1.0  # seconds after start_signing() before the key lookup begins


def _stamp() -> str:
    """A record's time as written: Unix seconds, microseconds."""
    return f"{time.time():.6f}"


class SessionLog:
    def __init__(self, path: Path, *, payloads: str = "full") -> None:
        self.path = path
        self.session = path.stem
        self.full = payloads == "full"
        self.seq = 0
        self.text_bytes = 0
        self.text_suppressed = 0
        self._prev = GENESIS
        self._signer: Signer | None = None
        self._sealed_seq = 0  # the seq of the last seal written
        self._sealer: threading.Thread | None = None
        self.key_delay = KEY_DELAY
        self._loader: tuple[Callable[[], Signer], Callable[[str], None]] | None = None
        self._closing = threading.Event()
        # The relay writes from the event loop; gc and teardown may write from other threads.
        self._lock = threading.Lock()
        try:
            paths.ensure_private_dir(path.parent)
            # 0600: a session log can hold everything the model and the server said.
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise MCPBoxError(
                f"cannot create the session log {path} ({exc.strerror}).",
                "Check that $XDG_STATE_HOME (or ~/.local/state) is writable.",
            ) from exc

    @classmethod
    def for_session(cls, session: str, *, payloads: str = "full") -> SessionLog:
        return cls(paths.sessions_dir() / f"{session}.jsonl", payloads=payloads)

    def _write(self, head: dict[str, Any], raw_json: bytes | None = None) -> None:
        self._emit(_ENCODER.encode(head)[1:-1], raw_json)

    def _emit(self, fields: str, raw_json: bytes | None) -> None:
        """Append one record: ``fields`` is the inside of a JSON object (``"k":v,...``)."""
        with self._lock:
            self._append(fields, raw_json)

    def _append(self, fields: str, raw_json: bytes | None, stamp: str | None = None) -> None:
        if self._fd < 0:
            return  # closed: a late event from a thread that outlived the session has nowhere to go
        self.seq += 1
        # "prev" chains each record to the exact bytes of the one before: an edited, removed,
        # inserted or moved record breaks the chain at the next one (`mcpbox logs verify`).
        line = f'{{"seq":{self.seq},"t":{stamp or _stamp()},"prev":"{self._prev}",{fields}'.encode()
        # A message is already valid JSON: its bytes are spliced in rather than re-encoded.
        line += b"}\n" if raw_json is None else b',"msg":' + raw_json.strip() + b"}\n"
        data = memoryview(line)
        while data:  # a regular file takes it all at once; the loop is for a full disk's partial write
            data = data[os.write(self._fd, data) :]
        self._prev = hashlib.sha256(line).hexdigest()

    def message(
        self,
        direction: str,
        raw: bytes,
        *,
        kind: str,
        method: str | None,
        ident: Any,
        verdict: str = "forward",
        reason: str | None = None,
        rule: str | None = None,
    ) -> None:
        """One JSON-RPC message. Runs for every message, so the record is formatted by hand:
        direction, kind and verdict are mcpbox's own words; everything else is quoted."""
        fields = f'"dir":"{direction}","kind":"{kind}","size":{len(raw)},"verdict":"{verdict}"'
        if rule is not None:
            fields += ',"rule":' + _quote(rule)
        if method is not None:
            fields += ',"method":' + _quote(method)
        if ident is not None:
            fields += ',"id":' + (_quote(ident) if isinstance(ident, str) else str(int(ident)))
        if reason:
            fields += ',"reason":' + _quote(reason)
        self._emit(fields, raw if self.full else None)

    def text(self, direction: str, data: bytes, *, verdict: str, reason: str, rule: str | None = None) -> None:
        """Bytes that are not a JSON-RPC message: stderr lines, stdout noise, oversize prefixes.

        Bounded per session: a server printing without end must not fill the user's disk.
        Past the quota, one event says so and the rest is only counted.
        """
        if self.text_bytes >= MAX_TEXT_TOTAL:
            self.text_suppressed += 1
            if self.text_suppressed == 1:
                self.event("text_quota_reached", limit=MAX_TEXT_TOTAL)
            return
        self.text_bytes += min(len(data), MAX_TEXT)
        head: dict[str, Any] = {
            "dir": direction,
            "kind": "text",
            "size": len(data),
            "verdict": verdict,
            "reason": reason,
        }
        if rule is not None:
            head["rule"] = rule
        if self.full or direction == "stderr":
            head["text"] = data[:MAX_TEXT].decode("utf-8", "replace").rstrip("\r\n")
        self._write(head)

    def event(self, name: str, /, **fields: Any) -> None:
        self._write({"dir": "event", "event": name, **fields})

    # ---- seals ---------------------------------------------------------------

    def sign_with(
        self, load: Callable[[], Signer], warn: Callable[[str], None], *, start: bool = True, delay: float = KEY_DELAY
    ) -> None:
        """Seal this log with the key ``load`` returns: every SEAL_EVERY seconds while records come, and at close.

        ``load`` fetches the key from the OS keyring: ~150 ms of imports and D-Bus, so it runs in
        the sealing thread, ``delay`` seconds after that starts: now, or when :meth:`start_signing`
        is called (`mcpbox run`: once the sandbox is up), and at the latest in :meth:`close`.
        If it fails, the log says so in an ``unsigned`` record and ``warn`` tells the person: the
        session runs, and `verify` will never call its log sealed.
        """
        self._loader = (load, warn)
        self.key_delay = delay
        if start:
            self.start_signing()

    def start_signing(self) -> None:
        if self._loader is None or self._sealer is not None or self._closing.is_set():
            return
        load, warn = self._loader

        def seal_loop() -> None:
            # The lookup is ~150 ms of Python holding the GIL: run it after the server's first answers
            # have gone through, not beside them (a close comes first: then at once).
            self._closing.wait(self.key_delay)
            try:
                signer = load()
            except MCPBoxError as exc:
                self.event("unsigned", reason=exc.message)
                warn(f"this session's log is not signed: {exc.message} {exc.remedy}".rstrip())
                return
            except Exception as exc:  # a keyring backend can raise anything; the session must go on
                self.unsigned(f"the log key could not be loaded ({type(exc).__name__}: {exc})", warn)
                return
            with self._lock:
                self._signer = signer
                if not self._closing.is_set():  # closing: the final seal follows at once
                    self._seal(final=False)
            while not self._closing.wait(SEAL_EVERY):
                with self._lock:
                    if self.seq > self._sealed_seq:
                        self._seal(final=False)

        self._sealer = threading.Thread(target=seal_loop, name="mcpbox-log-sealer", daemon=True)
        self._sealer.start()

    def unsigned(self, reason: str, warn: Callable[[str], None] | None = None) -> None:
        """Record that this log carries no signatures, and why; `verify` reports it."""
        self.event("unsigned", reason=reason)
        if warn is not None:
            warn(f"this session's log is not signed: {reason}")

    def _seal(self, *, final: bool) -> None:
        """Sign the chain head (caller holds the lock). The seal is a record of its own, so it is chained too."""
        assert self._signer is not None  # noqa: S101
        seq, stamp = self.seq + 1, _stamp()
        # The seal signs its own time as written too: the last record of a log is then covered as well.
        sig = self._signer.seal(self.session, seq, self._prev, stamp, final=final)
        fields = f'"dir":"event","event":"seal","key":"{self._signer.key}","sig":"{sig}"'
        self._append(fields + (',"final":true' if final else ""), None, stamp)
        self._sealed_seq = self.seq

    def close(self) -> None:
        """Stop sealing, write the final seal (a log that ends without one was cut short), close."""
        self.start_signing()  # a session refused before its sealing began still gets its seal
        self._closing.set()
        sealer, self._sealer = self._sealer, None
        if sealer is not None and sealer is not threading.current_thread():
            sealer.join(KEY_WAIT)
            if sealer.is_alive():
                self.unsigned(f"the OS keyring did not hand over the log key within {KEY_WAIT:.0f} s")
        with self._lock:
            if self._signer is not None and self._fd >= 0:
                self._seal(final=True)
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
