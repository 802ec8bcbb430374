"""Text that reaches a person's terminal: control characters are never passed through."""

from __future__ import annotations


def is_control(char: str) -> bool:
    """C0 and C1 control characters (ESC among them): what lets text drive a terminal."""
    return ord(char) < 32 or 127 <= ord(char) < 160


def printable(text: str) -> str:
    """Control characters shown as escapes: a profile or a peer must not be able to
    drive the terminal (hide lines, rewrite what was printed) through our output."""
    return "".join(c if c == "\n" or not is_control(c) else repr(c)[1:-1] for c in text)
