"""`mcpbox build`: a pinned PyPI and npm package into an image built offline, pinned by id, with an SBOM;
`mcpbox run` refuses an image that changed under the profile's name."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import MCPBOX, Home, RawClient, sdk_client

pytestmark = pytest.mark.docker

PROFILES = {
    "time-built": {
        "image": "mcpbox/time-built:test",
        "build": {"pypi": "mcp-server-time==2026.10.19"},
        "command": ["mcp-server-time", "--local-timezone", "UTC"],
    },
    "everything-built": {
        "image": "mcpbox/everything-built:test",
        "build": {"npm": "@modelcontextprotocol/server-everything@2026.8.31"},
        "command": ["mcp-server-everything"],
    },
}


def build(home: Home, profile: str) -> dict[str, Any]:
    done = subprocess.run(
        [MCPBOX, "build", profile, "--json"],
        env=home.full_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    record: dict[str, Any] = json.loads(done.stdout)
    return record


async def call(
    home: Home, profile: str, tool: str | None, arguments: dict[str, Any], env: dict[str, str] | None = None
) -> str:
    """List the tools (as a desktop client does first: the pins are taken there), then call ``tool``."""
    with anyio.fail_after(120):
        async with sdk_client(profile, home, env=env) as client:
            listed = await client.list_tools()
            if tool is None:
                return ""
            assert tool in {t.name for t in listed.tools}, [t.name for t in listed.tools]
            result = await client.call_tool(tool, arguments)
            return str(result.content[0].text)


CALLS = {  # profile -> (tool, arguments, text expected in the answer, the package the SBOM must name)
    "time-built": ("get_current_time", {"timezone": "UTC"}, "+00:00", "mcp-server-time"),
    "everything-built": (
        "echo",
        {"message": "built offline"},
        "built offline",
        "@modelcontextprotocol/server-everything",
    ),
}


@pytest.mark.parametrize("profile", sorted(CALLS))
def test_a_built_image_serves_through_a_real_client_and_has_an_sbom(
    home: Home, docker_clean: Any, profile: str
) -> None:
    tool, arguments, expect, package = CALLS[profile]
    home.write_profile(profile, PROFILES[profile])
    record = build(home, profile)
    assert record["id"].startswith("sha256:") and record["image"] == PROFILES[profile]["image"]
    assert record["resolved"] in (f"{package}==2026.10.19", f"{package}@2026.8.31"), record
    labels = docker_clean.inspect_image(record["id"])["Config"]["Labels"]
    assert labels["org.mcpbox.build.spec"] == record["spec"]
    assert docker_clean.inspect_image(record["content_tag"])["Id"] == record["id"]  # tagged by content too
    sbom = json.loads(Path(record["sbom"]).read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["metadata"]["component"]["version"] == record["id"]
    names = {c["name"] for c in sbom["components"]}
    assert package in names and all(c["purl"].startswith("pkg:") and c.get("hashes") for c in sbom["components"])
    if profile == "everything-built":
        # The reference server adds most of its tools just after its first listing (list_changed): mcpbox
        # pins that first listing and withholds what came later until a person accepts it, as it should.
        anyio.run(lambda: call(home, profile, None, {}))
        accept = [MCPBOX, "pins", "accept", profile, "--yes"]
        subprocess.run(accept, env=home.full_env(), capture_output=True, text=True, check=True, timeout=60)
    assert expect in anyio.run(call, home, profile, tool, arguments)


def test_an_image_that_changed_under_the_profiles_name_is_refused(
    home: Home, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    profile_file = home.write_profile("time-built", PROFILES["time-built"])
    record = build(home, "time-built")
    # The pin is a lock file beside the user's profile, so it travels with it.
    assert record["lock"] == str(profile_file.with_name("time-built.lock.json"))
    assert json.loads(Path(record["lock"]).read_text())["id"] == record["id"]
    repository, tag = record["image"].rsplit(":", 1)
    docker_clean.tag("mcpbox/base:bookworm", repository, tag)  # someone replaces the image
    try:
        client = RawClient("time-built", home)
        raw_clients.append(client)
        message = client.initialize()["error"]["message"]
        assert "mcpbox build time-built" in message and "pinned" in message, message
        assert client.wait() != 0
        doctor = [MCPBOX, "doctor", "--json"]
        done = subprocess.run(doctor, env=home.full_env(), capture_output=True, text=True, check=False, timeout=120)
        checks = {check["name"]: check for check in json.loads(done.stdout)["checks"]}
        assert done.returncode == 1 and "mcpbox build time-built" in checks[f"image {record['image']}"]["fix"]
    finally:
        docker_clean.tag(record["id"], repository, tag)


def test_a_missing_base_image_is_named_with_how_to_make_it(home: Home, docker_clean: Any) -> None:
    home.write_profile(
        "based", {**PROFILES["time-built"], "build": {"pypi": "mcp-server-time", "base": "mcpbox/nobase:1"}}
    )
    done = subprocess.run(
        [MCPBOX, "build", "based"], env=home.full_env(), capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert "mcpbox/nobase:1" in done.stderr and "mcpbox base build" in done.stderr and "never pulls" in done.stderr


def test_base_build_refuses_without_root_before_touching_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    # debootstrap needs root: as another user the refusal comes first, with the sudo that fixes it.
    # (Where the checkout lies, another uid may not reach mcpbox at all: so the uid is what is changed.)
    from mcpbox.base import build_base
    from mcpbox.errors import UsageError

    monkeypatch.setattr(os, "geteuid", lambda: 65534)
    with pytest.raises(UsageError) as refused:
        build_base("mcpbox/never-built:test", log=lambda line: pytest.fail(f"started: {line}"))
    assert "needs root" in refused.value.message and "sudo mcpbox base build" in refused.value.remedy


def test_a_command_the_npm_package_does_not_install_fails_the_build_naming_what_it_does(
    home: Home, docker_clean: Any
) -> None:
    # npx picks the executable from the package's manifest; a guessed name must fail at build, not at each run.
    home.write_profile("guessed", {**PROFILES["everything-built"], "command": ["server-everything"]})
    done = subprocess.run(
        [MCPBOX, "build", "guessed"], env=home.full_env(), capture_output=True, text=True, check=False, timeout=600
    )
    assert done.returncode == 2, done.stderr
    assert "'server-everything' is not an executable" in done.stderr and "mcp-server-everything" in done.stderr


def test_an_unpinned_spec_is_recorded_with_the_version_it_resolved_to(home: Home, docker_clean: Any) -> None:
    home.write_profile(
        "loose", {**PROFILES["time-built"], "image": "mcpbox/loose:test", "build": {"pypi": "mcp-server-time"}}
    )
    record = build(home, "loose")
    sbom = json.loads(Path(record["sbom"]).read_text())
    [server] = [c for c in sbom["components"] if c["name"] == "mcp-server-time"]
    assert record["spec"] == "mcp-server-time" and record["resolved"] == f"mcp-server-time=={server['version']}"
    docker_clean.remove_image(record["content_tag"])
    docker_clean.remove_image("mcpbox/loose:test")


def test_base_build_refuses_to_go_on_without_the_archive_keyring(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The mirror is plain http: without the keyring, debootstrap would only warn and go on unchecked.
    from mcpbox import base
    from mcpbox.errors import SandboxError

    monkeypatch.setattr(base, "KEYRING", tmp_path / "missing.gpg")
    with pytest.raises(SandboxError) as refused:
        base.build_base("mcpbox/never-built:test", log=lambda line: pytest.fail(f"started: {line}"))
    assert "debian-archive-keyring" in refused.value.remedy


def test_base_build_has_debootstrap_check_the_archive_signatures(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the command line is looked at: the build itself runs in `make setup` on every fresh machine.
    from mcpbox import base

    seen: list[list[str]] = []

    class Stop(Exception):
        pass

    def record(argv: list[str], **_: Any) -> None:
        seen.append(argv)
        raise Stop

    monkeypatch.setattr("mcpbox.base.subprocess.run", record)
    with pytest.raises(Stop):
        base.build_base("mcpbox/never-built:test", log=lambda line: None)
    [argv] = seen
    assert argv[0] == "debootstrap" and "--force-check-gpg" in argv and f"--keyring={base.KEYRING}" in argv
