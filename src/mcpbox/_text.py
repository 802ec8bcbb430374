"""Text that reaches a person's terminal: control characters are never passed through."""

from __future__ import annotations


def is_control(char: str) -> bool:
    """C0 and C1 control characters (ESC among them): what lets text drive a terminal."""
    return ord(char) < 32 or 127 <= ord(char) < 160


def printable(text: str) -> str:
    """Control characters shown as escapes: a profile or a peer must not be able to
    drive the terminal (hide lines, rewrite what was printed) through our output."""
    return "".join(c if c == "\n" or not is_control(c) else repr(c)[1:-1] for c in text)


def visible(text: str) -> str:
    """Every character a person could not see (controls, zero-width, bidi, tag characters)
    written as an escape: what a reviewer approves must be all there is."""
    import unicodedata  # noqa: PLC0415 - only the review commands need it

    out = []
    for char in text:
        if char == "\n" or not unicodedata.category(char).startswith(("C", "Z")) or char == " ":
            out.append(char)
        else:
            code = ord(char)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out)
