"""Every built-in profile with a `build:` key builds offline here and answers a tool call through the
real SDK client (the time profile's image also comes from `make setup`; it is rebuilt the same way).

Profiles that name host folders (filesystem: ~/Documents, git: ~/src/project) run with HOME set
to a folder of the test's own, for the `mcpbox run` process only: the build keeps the real HOME,
where pip's and npm's own settings live. The memory profile's data lives in a Docker volume named
after the profile, so its test runs a copy under another name and never touches a user's memory.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from mcpbox import paths
from tests.conftest import MCPBOX, Home, RawClient, read_log
from tests.integration.test_build import build, call
from tests.integration.test_network import Lab, lab  # noqa: F401 - the fixture, shared

pytestmark = pytest.mark.docker

CALLS: dict[str, tuple[str, dict[str, Any], str]] = {  # profile -> (tool, arguments, text in the answer)
    "time": ("get_current_time", {"timezone": "UTC"}, "+00:00"),
    "everything": ("echo", {"message": "from the catalog"}, "from the catalog"),
    "sequential-thinking": (
        "sequentialthinking",
        {"thought": "one step", "nextThoughtNeeded": False, "thoughtNumber": 1, "totalThoughts": 1},
        "thoughtNumber",
    ),
    "filesystem": ("read_text_file", {"path": "/data/Documents/notes.txt"}, "a note from the catalog test"),
    "git": ("git_log", {"repo_path": "/repo"}, "catalog commit"),
}


def test_every_catalog_profile_is_covered() -> None:
    built_in = {path.stem for path in paths.builtin_profiles_dir().glob("*.yaml")}
    # memory and fetch need more than one call: their own tests, below, must exist.
    own: dict[str, object] = {
        "memory": test_the_memory_profile_keeps_its_graph_between_sessions,
        "fetch": test_the_fetch_profile_reads_a_listed_site_and_nothing_else,
    }
    assert built_in == set(CALLS) | set(own) and all(map(callable, own.values()))


@pytest.fixture
def user_home(tmp_path: Path) -> Path:
    """A HOME with the folders the catalog mounts: ~/Documents with a note, ~/src/project a Git repository."""
    root = tmp_path / "user"
    (root / "Documents").mkdir(parents=True)
    (root / "Documents" / "notes.txt").write_text("a note from the catalog test\n")
    repo = root / "src" / "project"
    repo.mkdir(parents=True)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "README").write_text("x\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "catalog commit"], check=True)
    return root


def take_pins(home: Home, profile: str, env: dict[str, str] | None = None) -> None:
    """A first session takes the pins; tools a server announces later wait for a person (everything does that)."""
    anyio.run(call, home, profile, None, {}, env)
    accept = [MCPBOX, "pins", "accept", profile, "--yes"]
    # Exit 2 when nothing waits (most servers list all their tools at once).
    subprocess.run(accept, env=home.full_env(), capture_output=True, text=True, check=False, timeout=60)


@pytest.mark.parametrize("profile", sorted(CALLS))
def test_a_catalog_profile_builds_and_answers_a_tool_call(
    home: Home, docker_clean: Any, user_home: Path, profile: str
) -> None:
    tool, arguments, expect = CALLS[profile]
    assert build(home, profile)["id"].startswith("sha256:")
    env = {"HOME": str(user_home)}
    take_pins(home, profile, env)
    assert expect in anyio.run(call, home, profile, tool, arguments, env)


def test_the_filesystem_profile_cannot_write_to_the_folder(home: Home, docker_clean: Any, user_home: Path) -> None:
    build(home, "filesystem")
    env = {"HOME": str(user_home)}
    answer = anyio.run(call, home, "filesystem", "write_file", {"path": "/data/Documents/x", "content": "y"}, env)
    assert "read-only" in answer.lower() or "EROFS" in answer, answer
    assert not (user_home / "Documents" / "x").exists()


@pytest.fixture
def memory_copy(home: Home, docker_api: Any) -> Iterator[str]:
    """The catalog's memory profile under another name, so its volume is the test's own."""
    name = "memory-catalog-test"
    data = yaml.safe_load((paths.builtin_profiles_dir() / "memory.yaml").read_text())
    home.write_profile(name, {key: value for key, value in data.items() if key != "name"})
    volume = f"mcpbox.{name}.data"
    yield name
    docker_api.remove_volume(volume, force=True)


def test_the_memory_profile_keeps_its_graph_between_sessions(
    home: Home, docker_clean: Any, docker_api: Any, memory_copy: str
) -> None:
    build(home, memory_copy)
    entity = {"name": "mcpbox", "entityType": "project", "observations": ["sandboxes MCP servers"]}
    anyio.run(call, home, memory_copy, "create_entities", {"entities": [entity]})
    # A new session, a new container: the graph is still there, in the volume.
    graph = anyio.run(call, home, memory_copy, "read_graph", {})
    assert "sandboxes MCP servers" in graph
    volume = docker_api.inspect_volume(f"mcpbox.{memory_copy}.data")
    assert volume["Labels"]["mcpbox.volume.profile"] == memory_copy
    # The volume belongs to the server's unprivileged user, and only it can enter.
    listing = docker_api.create_container(
        "mcpbox/base:bookworm",
        ["stat", "-c", "%u:%g %a", "/v"],
        host_config=docker_api.create_host_config(binds={volume["Name"]: {"bind": "/v", "mode": "ro"}}),
    )
    try:
        docker_api.start(listing["Id"])
        docker_api.wait(listing["Id"], timeout=30)
        assert docker_api.logs(listing["Id"]).decode().split() == ["65534:65534", "700"]
    finally:
        docker_api.remove_container(listing["Id"], force=True)


def test_the_fetch_profile_reads_a_listed_site_and_nothing_else(
    home: Home,
    docker_clean: Any,
    lab: Lab,  # noqa: F811 - the shared fixture
) -> None:
    """The catalog's fetch profile, with its allow-list pointed at the test's own web server."""
    data = yaml.safe_load((paths.builtin_profiles_dir() / "fetch.yaml").read_text())
    data["network"] = {"allow": ["web.mcpbox.test:8080"], "dns": [lab.dns], "docker_networks": [lab.network]}
    # The lab's addresses are in 198.18.0.0/15, which the server's own SSRF guard counts as private.
    data["command"] = [*data["command"], "--allow-private-ips"]
    home.write_profile("fetch", {key: value for key, value in data.items() if key != "name"})
    build(home, "fetch")
    page = anyio.run(call, home, "fetch", "fetch", {"url": "http://web.mcpbox.test:8080/"})
    assert "Directory listing" in page or "etc/" in page, page
    refused = anyio.run(call, home, "fetch", "fetch", {"url": f"http://{lab.other}:8080/", "raw": True})
    assert "Directory listing" not in refused and "error" in refused.lower(), refused
    net = [r for path in home.session_logs() for r in read_log(path) if r.get("event") == "net"]
    other = [r for r in net if f"{lab.other}:8080" in json.dumps(r)]
    assert other and all(r.get("verdict") == "refuse" for r in other), net
    assert any(r.get("verdict") == "allow" and lab.web in json.dumps(r) for r in net), net


def test_a_volume_mcpbox_did_not_make_for_the_profile_is_refused(
    home: Home, docker_clean: Any, docker_api: Any, raw_clients: list[RawClient]
) -> None:
    """Someone else's volume under the profile's volume name is not handed to the server."""
    name = "memory-foreign"
    data = yaml.safe_load((paths.builtin_profiles_dir() / "memory.yaml").read_text())
    home.write_profile(name, {key: value for key, value in data.items() if key != "name"})
    volume = f"mcpbox.{name}.data"
    docker_api.create_volume(volume)
    try:
        client = RawClient(name, home)
        raw_clients.append(client)
        message = client.initialize()["error"]["message"]
        assert volume in message and "did not make it" in message, message
        assert client.wait() != 0
    finally:
        docker_api.remove_volume(volume, force=True)


def test_preparing_a_volume_runs_nothing_and_leaves_no_anonymous_volume(
    home: Home, docker_clean: Any, docker_api: Any, tmp_path: Path
) -> None:
    """The image's own VOLUMEs would become anonymous volumes of the never-started helper container."""
    import io

    from mcpbox.profile.load import read_profile_file
    from mcpbox.sandbox.docker import Engine
    from mcpbox.sandbox.volumes import ensure_volumes

    dockerfile = b'FROM mcpbox/base:bookworm\nVOLUME /cache\nENTRYPOINT ["sh", "-c", "touch /d/ran"]\n'
    list(docker_api.build(fileobj=io.BytesIO(dockerfile), tag="mcpbox/volume-test:1", network_mode="none", rm=True))
    profile_file = tmp_path / "vt.yaml"
    profile_file.write_text(
        yaml.safe_dump(
            {"name": "vt", "image": "mcpbox/volume-test:1", "mounts": [{"volume": "d", "target": "/d", "mode": "rw"}]}
        )
    )
    before = {v["Name"] for v in docker_api.volumes()["Volumes"] or []}
    try:
        assert ensure_volumes(Engine(), read_profile_file(profile_file)) == ["mcpbox.vt.d"]
        after = {v["Name"] for v in docker_api.volumes()["Volumes"] or []}
        assert after - before == {"mcpbox.vt.d"}, after - before
        assert ensure_volumes(Engine(), read_profile_file(profile_file)) == []  # made once
        # Nothing of the image ran: its entrypoint would have left a file in the volume.
        binds = {"mcpbox.vt.d": {"bind": "/v", "mode": "ro"}}
        listing = docker_api.create_container(
            "mcpbox/base:bookworm", ["ls", "-A", "/v"], host_config=docker_api.create_host_config(binds=binds)
        )
        docker_api.start(listing["Id"])
        docker_api.wait(listing["Id"], timeout=30)
        assert docker_api.logs(listing["Id"]) == b""
        docker_api.remove_container(listing["Id"], force=True)
    finally:
        docker_api.remove_volume("mcpbox.vt.d", force=True)
        docker_api.remove_image("mcpbox/volume-test:1", force=True)
