"""mcpbox: run stdio MCP servers in locked-down containers behind a logging relay.

The library is usable without the CLI::

    from mcpbox import load_profile, run
    result = run("time")  # serves MCP on this process's stdin/stdout

Names are imported on first use (PEP 562), so `import mcpbox` and the CLI's
start-up stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from mcpbox._version import __version__

if TYPE_CHECKING:
    from mcpbox.errors import MCPBoxError
    from mcpbox.launcher import RunResult, dry_run, run
    from mcpbox.profile import Profile, load_profile

_LAZY = {
    "MCPBoxError": "mcpbox.errors",
    "Profile": "mcpbox.profile",
    "RunResult": "mcpbox.launcher",
    "dry_run": "mcpbox.launcher",
    "load_profile": "mcpbox.profile",
    "run": "mcpbox.launcher",
}

__all__ = ["MCPBoxError", "Profile", "RunResult", "__version__", "dry_run", "load_profile", "run"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mcpbox' has no attribute {name!r}")
