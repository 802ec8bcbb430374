"""`mcpbox client install claude-desktop` end to end, as a subprocess, with a real Secret Service keyring.

The time server's profile points at the bundled image (`--image`); the filesystem server's image is
built with `mcpbox build` from the npm package the entry named; a real SDK client then calls a tool
on each through the rewritten entry. The github entry is only translated (its server needs the internet).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp_types import TextContent

from tests.conftest import MCPBOX, TIME_IMAGE, Home
from tests.keyring_session import KeyringSession

pytestmark = pytest.mark.docker

TOKEN = "ghp_" + "Zx9" * 12


def original(data_dir: Path) -> bytes:
    config = {
        "mcpServers": {
            "time": {"command": "uvx", "args": ["mcp-server-time", "--local-timezone", "UTC"]},
            "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", str(data_dir)]},
            "github": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-github"],
                "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": TOKEN},
            },
            "remote": {"type": "http", "url": "https://mcp.example.com/mcp"},
        },
        "globalShortcut": "",
    }
    return (json.dumps(config, indent=2) + "\n").encode()


async def call_through_config(entry: dict[str, Any], env: dict[str, str], tool: str, arguments: dict[str, Any]) -> str:
    """What the desktop client does with the rewritten entry: spawn its command, list tools, call one."""
    keep: dict[str, str] = {
        k: env[k] for k in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "HOME") if k in env
    }
    params = StdioServerParameters(
        command=entry["command"], args=entry["args"], env={**get_default_environment(), **keep}
    )
    with anyio.fail_after(120):
        async with Client(stdio_client(params)) as client:
            await client.list_tools()
            result = await client.call_tool(tool, arguments)
            return " ".join(block.text for block in result.content if isinstance(block, TextContent))


def test_install_sandboxes_stdio_servers_moves_the_token_and_uninstall_restores_the_bytes(
    kr_home: Home, keyring: KeyringSession, tmp_path: Path
) -> None:
    user = tmp_path / "user"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    config = user / ".config" / "Claude" / "claude_desktop_config.json"  # Claude Desktop's Linux path
    config.parent.mkdir(parents=True)
    before = original(data_dir)
    config.write_bytes(before)
    # The client's ~/.config and mcpbox's own config home are the same folder, as on a real machine.
    env = kr_home.full_env(HOME=str(user), XDG_CONFIG_HOME=str(user / ".config"))

    def mcpbox(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([MCPBOX, *args], capture_output=True, text=True, env=env, timeout=60, check=False)

    done = mcpbox("client", "install", "claude-desktop", "--image", f"time={TIME_IMAGE}", "--json")
    assert done.returncode == 0, done.stderr
    outcomes = {o["server"]: o for o in json.loads(done.stdout)}
    assert {s: o["action"] for s, o in outcomes.items()} == {
        "time": "sandboxed",
        "filesystem": "sandboxed",
        "github": "sandboxed",
        "remote": "left",
    }
    assert "remote" in outcomes["remote"]["reason"]

    servers = json.loads(config.read_text())["mcpServers"]
    for name in ("time", "filesystem", "github"):
        entry = servers[name]
        assert Path(entry["command"]).is_absolute() and Path(entry["command"]).name == "mcpbox"
        assert entry["args"] == ["run", outcomes[name]["profile"]]
        assert "env" not in entry
    assert servers["remote"] == {"type": "http", "url": "https://mcp.example.com/mcp"}

    profiles = user / ".config" / "mcpbox" / "profiles"
    for path in [config, *profiles.iterdir()]:
        assert TOKEN.encode() not in path.read_bytes(), path
    # Not in mcpbox's own files either (the kept original included): the keyring alone holds it.
    kept = [path for path in kr_home.state.rglob("*") if path.is_file()]
    assert kept and not [path for path in kept if TOKEN.encode() in path.read_bytes()]
    assert outcomes["github"]["secrets"] == ["github.GITHUB_PERSONAL_ACCESS_TOKEN"]
    probe = subprocess.run(
        [
            str(Path(MCPBOX).parent / "python"),
            "-c",
            "from mcpbox.secrets.store import SecretStore; "
            "print(SecretStore().get('github.GITHUB_PERSONAL_ACCESS_TOKEN'))",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert probe.stdout.strip() == TOKEN, probe.stderr

    fs_profile = (profiles / f"{outcomes['filesystem']['profile']}.yaml").read_text()
    assert "npm: '@modelcontextprotocol/server-filesystem'" in fs_profile
    assert f"source: {data_dir}" in fs_profile and "mode: ro" in fs_profile
    shown = mcpbox("profile", "show", outcomes["time"]["profile"], "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["image"] == TIME_IMAGE

    # The rewritten config starts each server through mcpbox: build the images, then a real SDK client calls a
    # tool on each, with the command and args now in the config (the github server would need the internet).
    profile = outcomes["filesystem"]["profile"]
    built = subprocess.run(
        [MCPBOX, "build", profile], capture_output=True, text=True, env=env, timeout=900, check=False
    )
    assert built.returncode == 0, built.stderr
    (data_dir / "note.txt").write_text("read through the sandbox\n")
    calls = {"time": ("get_current_time", {"timezone": "UTC"}, "+00:00")}
    calls["filesystem"] = ("read_text_file", {"path": str(data_dir / "note.txt")}, "read through the sandbox")
    for name, (tool, arguments, expect) in calls.items():
        assert expect in anyio.run(call_through_config, servers[name], env, tool, arguments), name

    again = mcpbox("client", "install", "claude-desktop")
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout and "left as is remote" in again.stdout

    status = mcpbox("client", "status", "claude-desktop", "--json")
    assert {r["server"]: r["sandboxed"] for r in json.loads(status.stdout)} == {
        "time": True,
        "filesystem": True,
        "github": True,
        "remote": False,
    }

    undone = mcpbox("client", "uninstall", "claude-desktop")
    assert undone.returncode == 0, undone.stderr
    assert "mcpbox secret rm github.GITHUB_PERSONAL_ACCESS_TOKEN" in undone.stdout
    assert config.read_bytes() == before
