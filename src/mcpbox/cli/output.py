"""Rendering helpers shared by commands: JSON for machines, tables and lines for people.

In a terminal, tables are drawn with rich (borders, colour, wrapping to the width); piped,
they are plain aligned text that stays stable for grep and scripts. Either way every cell
goes through :func:`printable`, and rich only ever receives ``Text`` objects, never strings:
rich would read ``[red]`` in a string as markup and ``:smile:`` as an emoji code, and text
from a log is written by an untrusted server.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from mcpbox._text import printable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

# How a Styled cell's tone looks in a terminal.
TONES = {"bad": "bold red", "warn": "yellow", "good": "green", "dim": "dim"}


@dataclass(frozen=True)
class Styled:
    """A cell with a tone (a key of :data:`TONES`): coloured in a terminal, plain text when piped."""

    text: str
    tone: str | None = None

    def __str__(self) -> str:
        return self.text


def is_terminal(stream: IO[str] | None = None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


@contextmanager
def _pipe_guard() -> Iterator[None]:
    """A reader that goes away (`| head`) ends the command quietly, as it would a Unix tool."""
    try:
        yield
    except BrokenPipeError:
        import typer

        # Python flushes stdout once more at exit: point it at /dev/null so that flush cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise typer.Exit(141) from None  # 128 + SIGPIPE: what the shell shows for a tool the pipe closed on


def emit_text(text: str) -> None:
    with _pipe_guard():
        sys.stdout.write(printable(text) + "\n")
        sys.stdout.flush()


def emit_json(data: Any) -> None:
    # ASCII-escaped (the default): a control character in a value cannot reach a terminal raw.
    with _pipe_guard():
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def emit_jsonl(data: Any) -> None:
    """One compact JSON value per line, flushed: for streams a program reads as they come."""
    with _pipe_guard():
        sys.stdout.write(json.dumps(data, separators=(",", ":"), default=str) + "\n")
        sys.stdout.flush()


def emit_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None, wrap: Sequence[str] = ()
) -> None:
    """A table: drawn with rich in a terminal, plain aligned text when piped.

    ``wrap`` names the columns of free text that may wrap in a narrow terminal, so that short
    ones (times, counts) stay on one line; without it any column may wrap.
    """
    with _pipe_guard():
        write_table(sys.stdout, headers, rows, rich=is_terminal(), title=title, wrap=wrap)


def write_table(
    stream: IO[str],
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    rich: bool,
    title: str | None = None,
    wrap: Sequence[str] = (),
    width: int | None = None,
) -> None:
    """``emit_table`` to any stream; ``rich`` draws it for a terminal ``width`` wide (default: the terminal's)."""
    if rich:
        _rich_table(_console(stream, width), headers, rows, title, wrap)
        return
    if title:
        stream.write(printable(title) + "\n")
    cells = [[_plain(c) for c in headers], *[[_plain(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        stream.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def emit_line(parts: Sequence[Any], widths: Sequence[int] = ()) -> None:
    """One row of a stream (`logs tail`): fields padded to ``widths``, coloured by tone in a terminal."""
    with _pipe_guard():
        write_line(sys.stdout, parts, widths, rich=is_terminal())
        sys.stdout.flush()


def write_line(
    stream: IO[str], parts: Sequence[Any], widths: Sequence[int] = (), *, rich: bool, width: int | None = None
) -> None:
    padded = [_plain(part).ljust(widths[i]) if i < len(widths) else _plain(part) for i, part in enumerate(parts)]
    if not rich:
        stream.write("  ".join(padded).rstrip() + "\n")
        return
    from rich.text import Text

    line = Text()
    for index, (part, text) in enumerate(zip(parts, padded, strict=True)):
        if index:
            line.append("  ")
        line.append(text, style=_style(part) or "")
    line.rstrip()
    _console(stream, width).print(line, soft_wrap=True)


def emit_block(text: str, indent: int = 4) -> None:
    """A block under a line (a pretty-printed payload), indented."""
    pad = " " * indent
    with _pipe_guard():
        sys.stdout.write("".join(pad + line + "\n" for line in printable(text).splitlines()))


def _plain(value: Any) -> str:
    return printable("" if value is None else str(value))


def _style(value: Any) -> str | None:
    return TONES.get(value.tone or "") if isinstance(value, Styled) else None


def _console(stream: IO[str], width: int | None = None) -> Console:
    from rich.console import Console

    # markup/emoji/highlight off: no string is ever interpreted, and no colour is guessed from content.
    # force_terminal: the caller has decided this output is for a terminal (NO_COLOR is still honoured).
    return Console(file=stream, markup=False, emoji=False, highlight=False, force_terminal=True, width=width)


def _text(value: Any) -> Text:
    from rich.text import Text

    return Text(_plain(value), style=_style(value) or "")


def _rich_table(
    console: Console, headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None, wrap: Sequence[str]
) -> None:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, header_style="bold", title=_text(title) if title else None, title_justify="left")
    for header in headers:
        free = not wrap or header in wrap
        table.add_column(_text(header), overflow="fold" if free else "ellipsis", no_wrap=not free)
    for row in rows:
        table.add_row(*(_text(c) for c in row))
    console.print(table)
