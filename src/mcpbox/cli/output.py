"""Rendering helpers shared by commands: JSON for machines, aligned text for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from mcpbox._text import printable


def emit_text(text: str) -> None:
    sys.stdout.write(printable(text) + "\n")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table: readable in a terminal and stable when piped."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        sys.stdout.write(printable("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()) + "\n")
