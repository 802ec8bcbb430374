"""Byte-level framing: newline-delimited lines with a hard size cap, and Docker's
multiplexed attach stream. Pure and synchronous, so they are easy to test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Enough of an oversized line to find its "id" and "method" without keeping it whole.
OVERSIZE_PREFIX = 64 * 1024
_ID_RE = re.compile(rb'"id"\s*:\s*("(?:[^"\\]|\\.){0,200}"|-?\d{1,20})')
_METHOD_RE = re.compile(rb'"method"\s*:\s*"((?:[^"\\]|\\.){1,200})"')


@dataclass(frozen=True, slots=True)
class Line:
    data: bytes  # including its line ending, exactly as received


@dataclass(frozen=True, slots=True)
class Oversize:
    """A line longer than the cap, dropped as it streamed past."""

    size: int
    prefix: bytes

    def request_id(self) -> str | int | None:
        """The id of the message, if it shows in the first bytes (best effort)."""
        match = _ID_RE.search(self.prefix)
        if match is None:
            return None
        token = match.group(1)
        if token.startswith(b'"'):
            try:
                return str(token[1:-1].decode("utf-8"))
            except UnicodeDecodeError:
                return None
        return int(token)

    def method(self) -> str | None:
        match = _METHOD_RE.search(self.prefix)
        return match.group(1).decode("utf-8", "replace") if match else None


Frame = Line | Oversize


class LineFramer:
    """Splits a byte stream into lines, never holding more than ``limit`` bytes of one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._dropping = False
        self._dropped = 0
        self._prefix = b""

    def feed(self, chunk: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start : end + 1]
            start = len(chunk) if end < 0 else end + 1
            if self._dropping:
                self._dropped += len(piece)
                if end >= 0:
                    frames.append(Oversize(self._dropped, self._prefix))
                    self._dropping, self._dropped, self._prefix = False, 0, b""
                continue
            if len(self._buf) + len(piece) > self.limit + (1 if end >= 0 else 0):
                # Past the cap: keep only a prefix for the error reply, drop the rest as it arrives.
                self._prefix = bytes(self._buf[:OVERSIZE_PREFIX] + piece[: max(0, OVERSIZE_PREFIX - len(self._buf))])
                self._dropped = len(self._buf) + len(piece)
                self._buf.clear()
                if end >= 0:
                    frames.append(Oversize(self._dropped, self._prefix))
                    self._dropped, self._prefix = 0, b""
                else:
                    self._dropping = True
                continue
            self._buf += piece
            if end >= 0:
                frames.append(Line(bytes(self._buf)))
                self._buf.clear()
        return frames

    def close(self) -> list[Frame]:
        """End of stream: a last line without a newline still counts."""
        if self._dropping:
            self._dropping = False
            return [Oversize(self._dropped, self._prefix)]
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            return [Line(data)]
        return []


STDOUT = 1
STDERR = 2


class DockerDemux:
    """Decodes Docker's attach stream for non-TTY containers: 8-byte headers
    ``[stream, 0, 0, 0, size:uint32be]`` each followed by ``size`` payload bytes."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        self._buf += chunk
        out: list[tuple[int, bytes]] = []
        pos = 0
        buf = self._buf
        while len(buf) - pos >= 8:
            size = int.from_bytes(buf[pos + 4 : pos + 8], "big")
            if len(buf) - pos - 8 < size:
                break
            out.append((buf[pos], bytes(buf[pos + 8 : pos + 8 + size])))
            pos += 8 + size
        del buf[:pos]
        return out
