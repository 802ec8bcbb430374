"""Masking: no secret value reaches the model, the session log or a terminal.

A server holds its own token and may echo it, by mistake or on purpose, and a
model that sees it can be talked into sending it anywhere. Every line relayed
toward the client, every stderr line and every log record passes through
:meth:`Masker.mask`, which replaces each value with ``[secret:NAME]`` in the
forms a token is commonly carried in: as is, base64 (standard and URL-safe, at
any alignment inside a larger blob, e.g. HTTP Basic credentials), hex and
URL-encoded.

JSON can spell one string many ways (``\\u0041`` is ``A``), so a byte search
alone would be evaded. A line whose bytes contain no form of any value and no
escape that could hide one is passed through untouched (the common case, one
``in`` test per form); any other line is decoded and every string, key and
number is checked, and only a line that really carried a value is re-encoded.

What it cannot do: a server that splits, reverses or encrypts its token can
still print it; the sandbox (no network) is what keeps that value in.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from mcpbox.secrets.store import Resolved

# ASCII output: a masked line is plain JSON for any reader; no NaN/Infinity, which JSON does not have.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_STR_ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|["\\/bfnrt])')
# Each character JSON may write as a backslash and one letter, and that letter.
_SHORT_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}
_UNESCAPE = {letter.encode(): char.encode() for char, letter in _SHORT_ESCAPES.items()}
_JSON_ESCAPE = re.compile(rb'\\(u[0-9a-fA-F]{4}|["\\/bfnrt])')


def _base64_forms(value: bytes) -> set[str]:
    """The characters of the value's base64 that do not depend on neighbouring bytes, at each alignment."""
    forms: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + value).decode("ascii")
        start = -(-8 * shift // 6)  # the first character made only of the value's bits
        end = (8 * (shift + len(value))) // 6  # past the last such character
        inner = encoded[start:end]
        forms.update({inner, inner.replace("+", "-").replace("/", "_")})
    return forms


def forms_of(value: bytes) -> set[str]:
    """Every spelling of ``value`` that is masked."""
    text = value.decode("utf-8", "surrogateescape")
    forms = {text, value.hex(), value.hex().upper()}
    # URL encoders differ in what they leave alone: everything (quote), "/" (Python's default),
    # JavaScript's encodeURIComponent set, and "+" for spaces in forms; %xx in either case.
    for safe in ("", "/", "!*'()"):
        for percent in (quote(value, safe=safe), quote_plus(value, safe=safe)):
            forms |= {percent, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), percent)}
    forms |= _base64_forms(value)
    return {form for form in forms if form}


class Masker:
    def __init__(self, secrets: Iterable[Resolved]) -> None:
        pairs: list[tuple[str, str]] = []
        for item in secrets:
            pairs.extend((form, f"[secret:{item.ref.entry}]") for form in forms_of(item.value))
        # Longest first: a long spelling is replaced whole before a shorter one could cut into it.
        pairs.sort(key=lambda pair: len(pair[0]), reverse=True)
        self._text = pairs
        self._bytes = [(form.encode("utf-8", "surrogateescape"), label.encode()) for form, label in pairs]
        self.longest = max((len(form) for form, _ in self._bytes), default=0)
        self.shortest = min((len(form) for form, _ in pairs), default=0)
        # Which JSON escapes could hide a character of some form; \\u can hide any.
        chars = {c for form, _ in pairs for c in form}
        hiding = "".join(re.escape(esc) for char, esc in _SHORT_ESCAPES.items() if char in chars)
        self._risky_escape = re.compile(rb"\\u" + (rb"|\\[" + hiding.encode() + rb"]" if hiding else b""))

    def __bool__(self) -> bool:
        return bool(self._text)

    def mask(self, raw: bytes, obj: Any = None) -> tuple[bytes, set[str]]:
        """``raw`` with every value masked, and the labels found. ``obj`` is ``raw`` decoded, when it is JSON."""
        if not self._text:
            return raw, set()
        present = any(form in raw for form, _ in self._bytes)
        if not present and not self._risky_escape.search(raw):
            return raw, set()
        found: set[str] = set()
        if obj is not None:
            masked = self._walk(obj, found)
            if found:
                ending = raw[len(raw.rstrip(b"\r\n")) :]
                try:
                    raw = _ENCODER.encode(masked).encode("ascii") + ending
                except ValueError:  # a number JSON cannot spell (1e400 parsed as inf): mask the bytes instead
                    raw = self._unescaped(raw, found)
        else:
            raw = self._unescaped(raw, found)
        # Whatever the decoded view missed (a value spanning JSON syntax, say) is cut out of the bytes too.
        for form, label in self._bytes:
            if form in raw:
                raw = raw.replace(form, label)
                found.add(label.decode())
        return raw, found

    def mask_text(self, text: str, found: set[str]) -> str:
        if len(text) < self.shortest:  # most strings and numbers of a large message: one comparison each
            return text
        for form, label in self._text:
            if form in text:
                text = text.replace(form, label)
                found.add(label)
        if "\\" in text:
            # JSON inside a JSON string (a tool returning a document) may escape a value once more.
            inner = _STR_ESCAPE.sub(lambda m: _unescape(m.group(1).encode()).decode("utf-8", "surrogatepass"), text)
            if inner != text and any(form in inner for form, _ in self._text):
                return self.mask_text(inner, found)
        return text

    def _walk(self, obj: Any, found: set[str]) -> Any:
        """Mask every string, key and number of a decoded JSON value, in place where possible."""
        root = [obj]
        stack: list[list[Any] | dict[str, Any]] = [root]
        while stack:  # iterative: a deeply nested message must not be a way around the check
            node = stack.pop()
            if isinstance(node, list):
                for index, value in enumerate(node):
                    node[index] = self._leaf(value, found, stack)
            else:
                for key in list(node):
                    value = self._leaf(node.pop(key), found, stack)
                    node[self.mask_text(key, found)] = value
        return root[0]

    def _leaf(self, value: Any, found: set[str], stack: list[list[Any] | dict[str, Any]]) -> Any:
        if isinstance(value, str):  # also HugeInt, a number kept as its digits: it becomes a string if masked
            return self.mask_text(value, found)
        if isinstance(value, list | dict):
            stack.append(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            text = repr(value)
            masked = self.mask_text(text, found)
            if masked != text:
                return masked
        return value

    def _unescaped(self, raw: bytes, found: set[str]) -> bytes:
        """Not JSON (stderr, a broken line): also look through JSON-style escapes, and mask what they hid."""
        if not self._risky_escape.search(raw):
            return raw
        plain = _JSON_ESCAPE.sub(lambda m: _unescape(m.group(1)), raw).decode("utf-8", "surrogateescape")
        before = len(found)
        masked = self.mask_text(plain, found)
        if len(found) == before:
            return raw
        return masked.encode("utf-8", "surrogateescape")

    def trim(self, prefix: bytes) -> bytes:
        """A prefix cut from a longer line: drop the bytes where a value could start but not end.

        Six bytes per character, since each may be spelled as a ``\\uXXXX`` escape."""
        return prefix[: max(0, len(prefix) - 6 * self.longest)] if self.longest else prefix


def _unescape(escape: bytes) -> bytes:
    if escape.startswith(b"u"):
        return chr(int(escape[1:], 16)).encode("utf-8", "surrogatepass")
    return _UNESCAPE[escape]
