"""Where each desktop client keeps its MCP servers, and how to tell what an entry is.

Paths follow each client's documentation: Claude Desktop (``claude_desktop_config.json`` in its
app-data folder, key ``mcpServers``), Cursor (``~/.cursor/mcp.json``), VS Code and VS Code Insiders (the user
profile's ``mcp.json`` with ``servers``, the older ``"mcp": {"servers": ...}`` in ``settings.json``,
and the workspace's ``.vscode/mcp.json``),
Claude Code (``~/.claude.json``, top level and per project, and a project's ``.mcp.json``) and
Windsurf (``~/.codeium/windsurf/mcp_config.json``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcpbox.errors import UsageError

# A key path to a map of servers; "*" stands for every key of the object at that level.
KeyPath = tuple[str, ...]


@dataclass(frozen=True)
class ConfigFile:
    client: str
    path: Path
    server_maps: tuple[KeyPath, ...]


@dataclass(frozen=True)
class Place:
    """Where the files are looked for: the real machine by default, a test's fake one otherwise."""

    home: Path
    platform: str
    environ: Mapping[str, str]
    project: Path  # Claude Code's project `.mcp.json` is looked for here

    @classmethod
    def here(cls) -> Place:
        return cls(Path.home(), sys.platform, os.environ, Path.cwd())

    def app_data(self) -> Path:
        """Electron's appData: where Claude Desktop and VS Code keep their user files."""
        if self.platform == "darwin":
            return self.home / "Library" / "Application Support"
        if self.platform.startswith("win"):
            appdata = self.environ.get("APPDATA", "")
            return Path(appdata) if appdata else self.home / "AppData" / "Roaming"
        xdg = self.environ.get("XDG_CONFIG_HOME", "")
        # Electron honours XDG_CONFIG_HOME on Linux; relative values are invalid per the XDG spec.
        return Path(xdg) if xdg and Path(xdg).is_absolute() else self.home / ".config"


CLIENTS: dict[str, str] = {
    "claude-desktop": "Claude Desktop",
    "claude-code": "Claude Code",
    "cursor": "Cursor",
    "vscode": "VS Code",
    "windsurf": "Windsurf",
}


def config_files(client: str, place: Place | None = None) -> list[ConfigFile]:
    """Every file ``client`` may keep servers in, whether or not it exists."""
    place = place or Place.here()
    home = place.home
    files: dict[str, list[tuple[Path, tuple[KeyPath, ...]]]] = {
        "claude-desktop": [(place.app_data() / "Claude" / "claude_desktop_config.json", (("mcpServers",),))],
        "claude-code": [
            (home / ".claude.json", (("mcpServers",), ("projects", "*", "mcpServers"))),
            (place.project / ".mcp.json", (("mcpServers",),)),
        ],
        "cursor": [(home / ".cursor" / "mcp.json", (("mcpServers",),))],
        "vscode": [
            *(
                item
                for edition in ("Code", "Code - Insiders")
                for item in (
                    (place.app_data() / edition / "User" / "mcp.json", (("servers",),)),
                    (place.app_data() / edition / "User" / "settings.json", (("mcp", "servers"),)),
                )
            ),
            (place.project / ".vscode" / "mcp.json", (("servers",),)),  # the workspace's own
        ],
        "windsurf": [(home / ".codeium" / "windsurf" / "mcp_config.json", (("mcpServers",),))],
    }
    if client not in files:
        raise UsageError(f"unknown client {client!r}.", f"Use one of: {', '.join(CLIENTS)}.")
    return [ConfigFile(client, path, maps) for path, maps in files[client]]


def server_entries(data: Any, maps: tuple[KeyPath, ...]) -> Iterator[tuple[KeyPath, str, Any]]:
    """(key path of the entry, server name, entry) for every server in a parsed config."""
    for key_path in maps:
        yield from _walk(data, key_path, ())


def _walk(node: Any, rest: KeyPath, done: KeyPath) -> Iterator[tuple[KeyPath, str, Any]]:
    if not isinstance(node, dict):
        return
    if not rest:
        for name, entry in node.items():
            yield (*done, name), name, entry
        return
    head, tail = rest[0], rest[1:]
    keys = list(node) if head == "*" else [head] if head in node else []
    for key in keys:
        yield from _walk(node[key], tail, (*done, key))


def sandboxed_profile(entry: Any) -> str | None:
    """The profile an entry already runs under mcpbox, or None."""
    if not isinstance(entry, dict):
        return None
    command, args = entry.get("command"), entry.get("args")
    if not isinstance(command, str) or Path(command).name not in ("mcpbox", "mcpbox.exe"):
        return None
    if isinstance(args, list) and len(args) >= 2 and args[0] == "run" and isinstance(args[1], str):
        return args[1]
    return None


def is_stdio(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("command"), str) and "url" not in entry
