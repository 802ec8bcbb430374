"""`mcpbox client install claude-desktop` end to end, as a subprocess, with a real Secret Service keyring.

The servers themselves are not started: that needs images from `mcpbox build`, which does not exist
yet. Only the time server's profile points at a real image (`--image`), checked with `profile show`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import MCPBOX, TIME_IMAGE, Home
from tests.keyring_session import KeyringSession

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
