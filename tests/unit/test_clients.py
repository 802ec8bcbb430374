"""Client config translation and rewriting, without a keyring: secrets go to a dict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcpbox.clients.configs import Place, config_files
from mcpbox.clients.install import install, replace_values, status, uninstall
from mcpbox.clients.translate import Untranslatable, looks_secret, profile_name, translate
from mcpbox.errors import UsageError
from tests.conftest import Home

EXE = "/opt/mcpbox/bin/mcpbox"
TOKEN = "ghp_" + "a1B2" * 9


def tr(command: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"command": command, "args": list(args)}
    if env:
        entry["env"] = env
    return translate("srv", entry, name="srv").profile


def test_npx_becomes_an_npm_build_with_the_package_executable() -> None:
    profile = tr("npx", "-y", "@modelcontextprotocol/server-filesystem@2025.1.1", "--flag")
    assert profile["build"] == {"npm": "@modelcontextprotocol/server-filesystem@2025.1.1"}
    assert profile["command"] == ["mcp-server-filesystem", "--flag"]
    assert profile["image"] == "mcpbox/srv:latest"


def test_uvx_and_python_m_become_pypi_builds() -> None:
    assert tr("uvx", "mcp-server-time", "--local-timezone", "UTC")["build"] == {"pypi": "mcp-server-time"}
    assert tr("uvx", "mcp-server-time@1.2")["build"] == {"pypi": "mcp-server-time==1.2"}
    assert tr("uvx", "--from", "git-tools==3", "git-mcp")["command"] == ["git-mcp"]
    profile = tr("python3", "-m", "mcp_server_fetch", "--x")
    assert profile["build"] == {"pypi": "mcp-server-fetch"}
    assert profile["command"] == ["python", "-m", "mcp_server_fetch", "--x"]


def test_host_paths_become_read_only_mounts_and_tilde_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "notes").mkdir()
    (tmp_path / "proj").mkdir()
    root = tmp_path / "proj"
    profile = tr("npx", "-y", "pkg", "~/notes", f"--root={root}", "/no/such/dir")
    assert profile["command"] == ["pkg", str(tmp_path / "notes"), f"--root={root}", "/no/such/dir"]
    assert profile["mounts"] == [
        {"source": str(tmp_path / "notes"), "target": str(tmp_path / "notes"), "mode": "ro"},
        {"source": str(root), "target": str(root), "mode": "ro"},
    ]


def test_secrets_are_told_apart_by_name_or_format() -> None:
    assert looks_secret("GITHUB_PERSONAL_ACCESS_TOKEN", "x")
    assert looks_secret("OPENAI_API_KEY", "whatever")
    assert looks_secret("DB_PASSWORD", "hunter22")
    assert looks_secret("UPSTREAM", TOKEN)
    assert looks_secret("SLACK", "xoxb-1234567890-abcdef")
    assert looks_secret("AWS", "AKIAABCDEFGHIJKLMNOP")
    assert not looks_secret("LOG_LEVEL", "debug")
    translation = translate("gh", {"command": "npx", "args": ["-y", "x"], "env": {"GH": TOKEN, "TZ": "UTC"}}, name="gh")
    assert translation.secrets == {"GH": ("gh.GH", TOKEN)}
    assert translation.profile["secrets"] == {"GH": "gh.GH"}
    assert translation.profile["env"] == {"TZ": "UTC"}
    assert TOKEN not in json.dumps(translation.profile)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"url": "https://example.com/mcp"}, "remote"),
        ({"type": "sse", "command": "x"}, "remote"),
        ({"command": "docker", "args": ["run", "-i", "img"]}, "container"),
        ({"command": "/usr/local/bin/my-server"}, "not 'my-server'"),
        ({"command": "npx", "args": ["-y", "x"], "env": {"API_KEY": "short"}}, "shorter than"),
        ({"command": "npx", "args": ["-y", "x", "${input:dir}"]}, "${...}"),
    ],
)
def test_untranslatable_entries_say_why(entry: dict[str, Any], reason: str) -> None:
    with pytest.raises(Untranslatable, match=reason.replace("$", r"\$").replace("{", r"\{").replace(".", r"\.")):
        translate("s", entry, name="s")


def test_profile_names_are_lowercase_dashes_and_unique() -> None:
    assert profile_name("GitHub API", set()) == "github-api"
    assert profile_name("time", {"time", "time-2"}) == "time-3"
    assert profile_name("!!!", set()) == "server"


def test_only_the_replaced_value_changes() -> None:
    text = '{\n\t"a": [1, 2],\n\t"m": {"s": {"command": "x"}, "t": 1}\n}'
    out = replace_values(text, {("m", "s"): {"command": "y", "args": ["run", "p"]}})
    assert out == '{\n\t"a": [1, 2],\n\t"m": {"s": {\n\t\t"command": "y",\n\t\t"args": ["run", "p"]\n\t}, "t": 1}\n}'


ORIGINAL = """{
    "theme": "dark",
    "mcpServers": {
        "time": {"command": "uvx", "args": ["mcp-server-time"]},
        "GitHub": {
            "type": "stdio",
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-github"],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "TOKEN_HERE", "LOG_LEVEL": "debug"}
        },
        "remote": {"url": "https://example.com/mcp"}
    },
    "zLast": [1, 2, 3]
}
""".replace("TOKEN_HERE", TOKEN)


@pytest.fixture
def desktop(home: Home, tmp_path: Path) -> tuple[Place, Path, dict[str, str]]:
    place = Place(tmp_path / "user", "linux", {}, tmp_path / "project")
    path = config_files("claude-desktop", place)[0].path
    path.parent.mkdir(parents=True)
    path.write_text(ORIGINAL)
    path.chmod(0o640)
    return place, path, {}


def run_install(desktop: tuple[Place, Path, dict[str, str]], **kw: Any) -> list[Any]:
    place, _, stored = desktop
    return install("claude-desktop", place=place, store=stored.__setitem__, executable=EXE, **kw)


def test_install_rewrites_stdio_entries_and_keeps_the_rest(
    home: Home, desktop: tuple[Place, Path, dict[str, str]]
) -> None:
    _, path, stored = desktop
    outcomes = {o.server: o for o in run_install(desktop)}
    assert outcomes["time"].action == outcomes["GitHub"].action == "sandboxed"
    assert outcomes["remote"].action == "left" and "remote" in outcomes["remote"].reason
    text = path.read_text()
    data = json.loads(text)
    assert data["mcpServers"]["time"] == {"command": EXE, "args": ["run", "time-2"]}  # `time` is a built-in
    assert data["mcpServers"]["GitHub"] == {"command": EXE, "args": ["run", "github"], "type": "stdio"}
    assert data["mcpServers"]["remote"] == {"url": "https://example.com/mcp"}
    assert list(data) == ["theme", "mcpServers", "zLast"]
    assert text.startswith('{\n    "theme": "dark",\n') and text.endswith('    "zLast": [1, 2, 3]\n}\n')
    assert '        "remote": {"url": "https://example.com/mcp"}\n' in text
    assert path.stat().st_mode & 0o777 == 0o640
    assert stored == {"github.GITHUB_PERSONAL_ACCESS_TOKEN": TOKEN}
    assert TOKEN not in text
    for profile in home.profiles.iterdir():
        assert TOKEN not in profile.read_text()
    assert "LOG_LEVEL: debug" in (home.profiles / "github.yaml").read_text()
    assert [(s.server, s.profile) for s in status("claude-desktop", desktop[0])] == [
        ("time", "time-2"),
        ("GitHub", "github"),
        ("remote", None),
    ]


def test_install_twice_changes_nothing(home: Home, desktop: tuple[Place, Path, dict[str, str]]) -> None:
    _, path, _ = desktop
    run_install(desktop)
    after = path.read_bytes()
    profiles = sorted(home.profiles.iterdir())
    assert {o.action for o in run_install(desktop)} == {"already", "left"}
    assert path.read_bytes() == after
    assert sorted(home.profiles.iterdir()) == profiles


def test_server_limits_install_to_one_entry(home: Home, desktop: tuple[Place, Path, dict[str, str]]) -> None:
    _, path, stored = desktop
    assert [o.server for o in run_install(desktop, only="time")] == ["time"]
    data = json.loads(path.read_text())
    assert data["mcpServers"]["GitHub"]["command"] == "npx"
    assert stored == {}
    with pytest.raises(UsageError, match="no server named 'nope'"):
        run_install(desktop, only="nope")


def test_uninstall_restores_the_original_bytes(home: Home, desktop: tuple[Place, Path, dict[str, str]]) -> None:
    place, path, stored = desktop
    run_install(desktop, only="time")
    run_install(desktop)  # a second install must not replace the backup of the original
    # ... and the token it moved to the keyring leaves the backup too: only the keyring holds it.
    state = home.state / "mcpbox" / "clients"
    kept = [f.read_bytes() for f in state.rglob("*") if f.is_file()]
    assert kept and not any(TOKEN.encode() in data for data in kept)
    (restored,) = uninstall("claude-desktop", place=place, load=stored.get)
    assert path.read_text() == ORIGINAL
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(Path(p).name for p in restored.profiles) == ["github.yaml", "time-2.yaml"]
    assert restored.secrets == ["github.GITHUB_PERSONAL_ACCESS_TOKEN"]
    with pytest.raises(UsageError, match="has not rewritten"):
        uninstall("claude-desktop", place=place)


def test_uninstall_force_restores_the_whole_original_over_later_edits(
    home: Home, desktop: tuple[Place, Path, dict[str, str]]
) -> None:
    place, path, stored = desktop
    run_install(desktop)
    path.write_text(path.read_text().replace("dark", "light"))
    uninstall("claude-desktop", place=place, force=True, load=stored.get)
    assert path.read_text() == ORIGINAL


def test_uninstall_into_a_file_the_client_changed_puts_back_only_its_entries(
    home: Home, desktop: tuple[Place, Path, dict[str, str]]
) -> None:
    # Claude Code writes its own state into ~/.claude.json all the time: that must survive an uninstall.
    place, path, stored = desktop
    run_install(desktop)
    edited = json.loads(path.read_text())
    edited["theme"] = "light"
    edited["mcpServers"]["added-later"] = {"command": "uvx", "args": ["other"]}
    del edited["mcpServers"]["time"]  # the user removed one sandboxed entry: it stays removed
    path.write_text(json.dumps(edited, indent=2))
    (restored,) = uninstall("claude-desktop", place=place, load=stored.get)
    assert restored.entries_only and restored.left == ["time"]
    now = json.loads(path.read_text())
    before = json.loads(ORIGINAL)
    assert now["theme"] == "light" and "added-later" in now["mcpServers"] and "time" not in now["mcpServers"]
    assert now["mcpServers"]["GitHub"] == before["mcpServers"]["GitHub"]  # token and all, from the keyring


def test_uninstall_without_the_token_in_the_keyring_says_how_to_put_it_back(
    home: Home, desktop: tuple[Place, Path, dict[str, str]]
) -> None:
    place, path, stored = desktop
    run_install(desktop)
    written = path.read_bytes()
    with pytest.raises(UsageError, match=r"mcpbox secret set github\.GITHUB_PERSONAL_ACCESS_TOKEN"):
        uninstall("claude-desktop", place=place, load=lambda entry: None)
    assert path.read_bytes() == written  # nothing half-restored
    uninstall("claude-desktop", place=place, load=stored.get)
    assert path.read_text() == ORIGINAL


def test_commented_json_is_refused_not_mangled(home: Home, tmp_path: Path) -> None:
    place = Place(tmp_path, "linux", {}, tmp_path)
    settings = config_files("vscode", place)[1].path
    settings.parent.mkdir(parents=True)
    settings.write_text('{\n  // mine\n  "mcp": {"servers": {"t": {"command": "uvx", "args": ["x"]}}}\n}\n')
    before = settings.read_bytes()
    mcp_json = config_files("vscode", place)[0].path
    mcp_json.write_text('{"servers": {"time": {"command": "uvx", "args": ["mcp-server-time"]}}}\n')
    outcomes = {(o.file, o.action): o for o in install("vscode", place=place, executable=EXE)}
    assert "not plain JSON" in outcomes[(settings, "left")].reason  # left, and said so ...
    assert settings.read_bytes() == before
    assert (mcp_json, "sandboxed") in outcomes  # ... while the other file is done


def test_clients_files_per_platform(tmp_path: Path) -> None:
    mac = Place(tmp_path, "darwin", {}, tmp_path)
    win = Place(tmp_path, "win32", {"APPDATA": "C:/Users/u/AppData/Roaming"}, tmp_path)
    assert config_files("claude-desktop", mac)[0].path == (
        tmp_path / "Library/Application Support/Claude/claude_desktop_config.json"
    )
    assert config_files("claude-desktop", win)[0].path == Path(
        "C:/Users/u/AppData/Roaming/Claude/claude_desktop_config.json"
    )
    assert config_files("windsurf", mac)[0].path == tmp_path / ".codeium/windsurf/mcp_config.json"
    assert config_files("cursor", mac)[0].path == tmp_path / ".cursor/mcp.json"
    assert [c.path.name for c in config_files("claude-code", mac)] == [".claude.json", ".mcp.json"]


def test_claude_code_project_servers_are_found(home: Home, tmp_path: Path) -> None:
    place = Place(tmp_path, "linux", {}, tmp_path / "proj")
    (tmp_path / ".claude.json").write_text(
        json.dumps({"projects": {"/p": {"mcpServers": {"t": {"command": "uvx", "args": ["mcp-server-time"]}}}}})
    )
    (outcome,) = install("claude-code", place=place, executable=EXE)
    assert outcome.action == "sandboxed"
    data = json.loads((tmp_path / ".claude.json").read_text())
    assert data["projects"]["/p"]["mcpServers"]["t"]["args"] == ["run", "t"]


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("uvx", ["--from", "git+https://example.invalid/x.git", "server"]),
        ("npx", ["-y", "github:someone/server"]),
        ("npx", ["-y", "./local-server"]),
    ],
)
def test_a_package_that_is_not_a_registry_spec_is_left_alone_with_the_reason(command: str, args: list[str]) -> None:
    with pytest.raises(Untranslatable, match="registry package"):
        translate("srv", {"command": command, "args": args}, name="srv")


@pytest.mark.parametrize(
    "args",
    [
        ["-y", "-p", "@acme/tools@1.2.0", "acme-mcp", "--flag"],
        ["--yes", "--package=@acme/tools@1.2.0", "acme-mcp", "--flag"],
    ],
)
def test_npx_with_a_named_package_runs_the_named_executable(args: list[str]) -> None:
    profile = translate("srv", {"command": "npx", "args": args}, name="srv").profile
    assert profile["build"] == {"npm": "@acme/tools@1.2.0"}
    assert profile["command"] == ["acme-mcp", "--flag"]


def test_npx_with_two_packages_is_left_alone() -> None:
    with pytest.raises(Untranslatable, match="more than one package"):
        translate("srv", {"command": "npx", "args": ["-p", "a", "-p", "b", "x"]}, name="srv")


def test_a_windows_cmd_wrapper_is_seen_through() -> None:
    entry = {"command": "cmd", "args": ["/c", "npx", "-y", "@modelcontextprotocol/server-memory@2026.8.31"]}
    profile = translate("memory", entry, name="memory").profile
    assert profile["build"] == {"npm": "@modelcontextprotocol/server-memory@2026.8.31"}
    assert profile["command"] == ["mcp-server-memory"]


def test_vscode_insiders_and_workspace_files_are_looked_at(tmp_path: Path) -> None:
    place = Place(tmp_path / "user", "linux", {}, tmp_path / "project")
    files = [config.path for config in config_files("vscode", place)]
    assert tmp_path / "user" / ".config" / "Code - Insiders" / "User" / "mcp.json" in files
    assert tmp_path / "project" / ".vscode" / "mcp.json" in files


def test_a_file_with_many_tokens_comes_back_exactly(home: Home, tmp_path: Path) -> None:
    # Twelve tokens make markers …-1 and …-10: neither may be taken for the start of the other.
    place = Place(tmp_path / "user", "linux", {}, tmp_path / "project")
    path = config_files("claude-desktop", place)[0].path
    path.parent.mkdir(parents=True)
    servers = {
        f"s{i}": {"command": "npx", "args": ["-y", f"pkg{i}"], "env": {"API_TOKEN": f"tok-{i:02d}-abcdefghijkl"}}
        for i in range(12)
    }
    original = json.dumps({"mcpServers": servers}, indent=2) + "\n"
    path.write_text(original)
    stored: dict[str, str] = {}
    install("claude-desktop", place=place, store=stored.__setitem__, executable=EXE)
    uninstall("claude-desktop", place=place, load=stored.get)
    assert path.read_text() == original


def test_a_server_added_between_two_installs_is_not_lost_by_uninstall(
    home: Home, desktop: tuple[Place, Path, dict[str, str]]
) -> None:
    place, path, stored = desktop
    run_install(desktop, only="time")
    data = json.loads(path.read_text())
    data["mcpServers"]["added"] = {"command": "uvx", "args": ["mcp-server-fetch"], "env": {"KEY": "sk-added-123"}}
    path.write_text(json.dumps(data, indent=2))
    run_install(desktop, only="added")
    assert "sk-added-123" not in path.read_text()
    (restored,) = uninstall("claude-desktop", place=place, load=stored.get)
    assert restored.entries_only
    now = json.loads(path.read_text())
    assert now["mcpServers"]["added"] == {
        "command": "uvx",
        "args": ["mcp-server-fetch"],
        "env": {"KEY": "sk-added-123"},
    }
    assert now["mcpServers"]["time"] == json.loads(ORIGINAL)["mcpServers"]["time"]


def test_uvx_latest_is_the_unpinned_package_and_nested_cmd_wrappers_are_left_alone() -> None:
    profile = translate("t", {"command": "uvx", "args": ["mcp-server-time@latest"]}, name="t").profile
    assert profile["build"] == {"pypi": "mcp-server-time"} and profile["command"] == ["mcp-server-time"]
    tower = ["/c", "cmd"] * 1500 + ["/c", "npx", "-y", "pkg"]
    with pytest.raises(Untranslatable, match="nests"):
        translate("t", {"command": "cmd", "args": tower}, name="t")


def test_a_server_name_cannot_smuggle_invisible_or_bidi_text_into_the_profile() -> None:
    profile = translate("\u202eevil\u200b", {"command": "uvx", "args": ["mcp-server-time"]}, name="evil").profile
    assert profile["description"] == "\\u202eevil\\u200b"


def test_a_server_name_cannot_write_profile_keys_through_the_header(home: Home, tmp_path: Path) -> None:
    # A project's .mcp.json is somebody else's text: its server names must stay inside the comment.
    place = Place(tmp_path / "user", "linux", {}, tmp_path / "project")
    path = config_files("claude-code", place)[1].path  # the project's .mcp.json
    path.parent.mkdir(parents=True)
    name = "x\nmounts: [{source: /, target: /host, mode: rw}]\n#"
    path.write_text(json.dumps({"mcpServers": {name: {"command": "uvx", "args": ["mcp-server-time"]}}}))
    [outcome] = install("claude-code", place=place, executable=EXE)
    from mcpbox.profile.load import read_profile_file

    profile = read_profile_file(home.profiles / f"{outcome.profile}.yaml")
    assert profile.mounts == ()


@pytest.mark.parametrize("arg", ["~/.ssh", "~/.aws/credentials", "~", "~/.config", "~/.SSH"])
def test_a_config_cannot_get_credentials_mounted(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arg: str
) -> None:
    # A project's .mcp.json is somebody else's text: naming ~/.ssh must not hand it to their server.
    user = tmp_path / "user"
    monkeypatch.setenv("HOME", str(user))
    (user / ".ssh").mkdir(parents=True)
    (user / ".SSH").mkdir()
    (user / ".aws").mkdir()
    (user / ".aws" / "credentials").write_text("x")
    (user / ".config" / "gcloud").mkdir(parents=True)
    place = Place(user, "linux", {}, tmp_path / "project")
    path = config_files("claude-code", place)[1].path  # the project's .mcp.json
    path.parent.mkdir(parents=True)
    entry = {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", arg]}
    path.write_text(json.dumps({"mcpServers": {"fs": entry}}))
    [outcome] = install("claude-code", place=place, executable=EXE)
    # (The whole home folder also holds the rootless Docker socket's path: refused for either reason.)
    assert outcome.action == "left" and ("credentials" in outcome.reason or "control socket" in outcome.reason)


def test_a_credentials_mount_a_person_wrote_loads_and_a_later_symlink_swap_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcpbox.errors import ProfileError
    from mcpbox.profile.load import read_profile_file

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / "proj" / "data").mkdir(parents=True)
    said = {"name": "p", "image": "x:1", "mounts": [{"source": "~/.ssh", "target": "/k", "credentials": True}]}
    allowed = read_profile_file(write_yaml(tmp_path / "said.yaml", said))
    assert allowed.mounts[0].source == tmp_path / ".ssh"
    assert any("a credentials folder: credentials: true" in item for item in allowed.loosenings())
    plain = {"name": "p", "image": "x:1", "mounts": [{"source": str(tmp_path / "proj" / "data"), "target": "/d"}]}
    profile_file = write_yaml(tmp_path / "plain.yaml", plain)
    read_profile_file(profile_file)
    (tmp_path / "proj" / "data").rmdir()
    (tmp_path / "proj" / "data").symlink_to(tmp_path / ".ssh")  # a `git pull` later
    with pytest.raises(ProfileError, match="credentials"):
        read_profile_file(profile_file)


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data))
    return path


def test_a_short_token_is_sealed_where_it_stands_and_nowhere_else(home: Home, tmp_path: Path) -> None:
    # "postgres" is the password, and also the package's and the database's name.
    place = Place(tmp_path / "user", "linux", {}, tmp_path / "project")
    path = config_files("claude-desktop", place)[0].path
    path.parent.mkdir(parents=True)
    args = ["-y", "@modelcontextprotocol/server-postgres", "postgresql://app@localhost/postgres"]
    original = json.dumps(
        {"mcpServers": {"postgres": {"command": "npx", "args": args, "env": {"PGPASSWORD": "postgres"}}}}
    )
    path.write_text(original)
    stored: dict[str, str] = {}
    install("claude-desktop", place=place, store=stored.__setitem__, executable=EXE)
    stored["postgres.PGPASSWORD"] = "rotated"  # `mcpbox secret set` since: the new value goes back
    uninstall("claude-desktop", place=place, load=stored.get)
    assert json.loads(path.read_text()) == json.loads(
        original.replace('"PGPASSWORD": "postgres"', '"PGPASSWORD": "rotated"')
    )


def test_a_failed_config_write_leaves_nothing_uninstall_would_misread(
    home: Home, desktop: tuple[Place, Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mcpbox.clients.install as installing

    place, path, stored = desktop
    run_install(desktop, only="time")
    written = path.read_bytes()
    real_write = installing.write_atomic

    def disk_full(target: Path, data: bytes, mode: int) -> None:
        if target == path:
            raise OSError(28, "No space left on device")
        real_write(target, data, mode)

    monkeypatch.setattr(installing, "write_atomic", disk_full)
    with pytest.raises(OSError):
        run_install(desktop)  # moves the GitHub token, then cannot write the config
    monkeypatch.setattr(installing, "write_atomic", real_write)
    assert path.read_bytes() == written
    uninstall("claude-desktop", place=place, load=stored.get)
    assert path.read_text() == ORIGINAL  # the token back, no marker


def test_a_deleted_profile_name_is_not_reused_while_a_record_needs_its_token(
    home: Home, desktop: tuple[Place, Path, dict[str, str]], tmp_path: Path
) -> None:
    place, path, stored = desktop
    run_install(desktop)
    (home.profiles / "github.yaml").unlink()  # the user deletes a profile; the record still needs its token
    cursor = config_files("cursor", place)[0].path
    cursor.parent.mkdir(parents=True)
    cursor.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "GitHub": {
                        "command": "npx",
                        "args": ["-y", "x"],
                        "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "other-value"},
                    }
                }
            }
        )
    )
    [outcome] = install("cursor", place=place, store=stored.__setitem__, executable=EXE)
    assert outcome.profile != "github" and stored["github.GITHUB_PERSONAL_ACCESS_TOKEN"] == TOKEN
    uninstall("claude-desktop", place=place, load=stored.get)
    assert path.read_text() == ORIGINAL
