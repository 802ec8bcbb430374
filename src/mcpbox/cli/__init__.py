"""Command line: a thin layer that parses, makes one core call, and renders.

`main` is the one place where MCPBoxError is caught and turned into a sentence
and an exit code; nothing below it prints tracebacks at users.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from mcpbox.errors import MCPBoxError

    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) == 2 and args[0] == "run" and not args[1].startswith("-"):
            # The hot path: a desktop client spawns `mcpbox run PROFILE` for every connection,
            # and typer's import alone (~200 ms: it pulls in pydantic) would be most of our start-up.
            from mcpbox.launcher import run

            return run(args[1]).exit_code
        from mcpbox.cli.app import app

        result = app(args=args, prog_name="mcpbox", standalone_mode=False)
    except MCPBoxError as error:
        print(f"mcpbox: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _click_error(exc)
    return result if isinstance(result, int) else 0


def _click_error(exc: Exception) -> int:
    """Typer's own outcomes (it vendors click): --help, usage errors, aborts."""
    import typer

    if isinstance(exc, typer.Exit):
        return int(exc.exit_code)
    if isinstance(exc, typer.Abort):
        return 130
    if isinstance(exc, typer.exceptions.TyperException):
        exc.show()  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    raise exc
