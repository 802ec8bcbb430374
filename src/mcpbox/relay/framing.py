"""Byte-level framing: newline-delimited lines with a hard size cap, and Docker's
multiplexed attach stream. Pure and synchronous, so they are easy to test.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# Enough of an oversized line to find its "id" and "method" without keeping it whole.
OVERSIZE_PREFIX = 64 * 1024
_STRUCTURE = re.compile(r'["{}\[\]]')
_SPACE = re.compile(r"\s*")
OVERSIZE_TAIL = 1024
# The id as the object's last member: `"id": <string or integer>` then the closing brace, at the line's end.
_LAST_ID = re.compile(rb'"id"\s*:\s*("(?:[^"\\]|\\.){0,512}"|-?\d{1,20})\s*\}\s*$')
_DECODER = json.JSONDecoder()


def top_level_members(prefix: bytes, wanted: frozenset[str]) -> dict[str, Any]:
    """Scalar members of the outermost JSON object found in a (possibly cut) prefix.

    Only members at depth 1 count, so an ``"id"`` inside ``params`` is never taken
    for the message's own id. Values that are not complete in the prefix are skipped.
    """
    text = prefix.decode("utf-8", "replace")
    found: dict[str, Any] = {}
    depth, pos = 0, 0
    while (match := _STRUCTURE.search(text, pos)) is not None:
        pos = match.start()
        char = text[pos]
        if char != '"':
            depth += 1 if char in "{[" else -1
            pos += 1
            continue
        try:
            key, pos = _DECODER.raw_decode(text, pos)
        except ValueError:
            break  # a string cut off by the prefix's end
        if depth != 1 or key not in wanted or key in found:
            continue
        colon = _SPACE.match(text, pos).end()  # type: ignore[union-attr] # \s* always matches
        if not text.startswith(":", colon):
            continue
        start = _SPACE.match(text, colon + 1).end()  # type: ignore[union-attr]
        if start < len(text) and text[start] not in "{[":
            try:
                found[key], pos = _DECODER.raw_decode(text, start)
            except ValueError:
                break
    return found


@dataclass(frozen=True, slots=True)
class Line:
    data: bytes  # including its line ending, exactly as received


@dataclass(frozen=True, slots=True)
class Oversize:
    """A line longer than the cap, dropped as it streamed past."""

    size: int
    prefix: bytes
    tail: bytes = b""

    def request_id(self) -> str | int | None:
        """The message's own id: a top-level member in the first bytes, or the last member.

        Python SDKs write the id first; the TypeScript SDK writes ``{...message, jsonrpc, id}``,
        so its id is the last member, just before the final brace.
        """
        ident = top_level_members(self.prefix, frozenset({"id", "method"})).get("id")
        if ident is None and (match := _LAST_ID.search(self.tail)) is not None:
            ident = json.loads(match.group(1))
        valid = isinstance(ident, str) or (isinstance(ident, int) and not isinstance(ident, bool))
        return ident if valid else None

    def method(self) -> str | None:
        method = top_level_members(self.prefix, frozenset({"id", "method"})).get("method")
        return method if isinstance(method, str) else None


Frame = Line | Oversize


class LineFramer:
    """Splits a byte stream into lines, never holding more than ``limit`` bytes of one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._dropping = False
        self._dropped = 0
        self._prefix = b""
        self._tail = b""

    def feed(self, chunk: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start : end + 1]
            start = len(chunk) if end < 0 else end + 1
            if self._dropping:
                self._dropped += len(piece)
                self._tail = (self._tail + piece)[-OVERSIZE_TAIL:]
                if end >= 0:
                    frames.append(Oversize(self._dropped, self._prefix, self._tail))
                    self._dropping, self._dropped, self._prefix, self._tail = False, 0, b"", b""
                continue
            if len(self._buf) + len(piece) > self.limit + (1 if end >= 0 else 0):
                # Past the cap: keep only a prefix and a tail for the error reply, drop the rest as it arrives.
                self._prefix = bytes(self._buf[:OVERSIZE_PREFIX] + piece[: max(0, OVERSIZE_PREFIX - len(self._buf))])
                self._tail = bytes(self._buf[-OVERSIZE_TAIL:] + piece)[-OVERSIZE_TAIL:]
                self._dropped = len(self._buf) + len(piece)
                self._buf.clear()
                if end >= 0:
                    frames.append(Oversize(self._dropped, self._prefix, self._tail))
                    self._dropped, self._prefix, self._tail = 0, b"", b""
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
            return [Oversize(self._dropped, self._prefix, self._tail)]
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
