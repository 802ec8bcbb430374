"""Every built-in profile with a `build:` key builds offline here and answers a tool call through the
real SDK client (the time profile's image also comes from `make setup`; it is rebuilt the same way)."""

from __future__ import annotations

import subprocess
from typing import Any

import anyio
import pytest

from mcpbox import paths
from tests.conftest import MCPBOX, Home
from tests.integration.test_build import build, call

pytestmark = pytest.mark.docker

CALLS: dict[str, tuple[str, dict[str, Any], str]] = {  # profile -> (tool, arguments, text in the answer)
    "time": ("get_current_time", {"timezone": "UTC"}, "+00:00"),
    "everything": ("echo", {"message": "from the catalog"}, "from the catalog"),
    "sequential-thinking": (
        "sequentialthinking",
        {"thought": "one step", "nextThoughtNeeded": False, "thoughtNumber": 1, "totalThoughts": 1},
        "thoughtNumber",
    ),
}


def test_every_catalog_profile_is_covered() -> None:
    built_in = {path.stem for path in paths.builtin_profiles_dir().glob("*.yaml")}
    assert built_in == set(CALLS)


@pytest.mark.parametrize("profile", sorted(CALLS))
def test_a_catalog_profile_builds_and_answers_a_tool_call(home: Home, docker_clean: Any, profile: str) -> None:
    tool, arguments, expect = CALLS[profile]
    assert build(home, profile)["id"].startswith("sha256:")
    # A first session takes the pins; tools a server announces later wait for a person (everything does that).
    anyio.run(call, home, profile, None, {})
    accept = [MCPBOX, "pins", "accept", profile, "--yes"]
    # Exit 2 when nothing waits (time, sequential-thinking list all their tools at once).
    subprocess.run(accept, env=home.full_env(), capture_output=True, text=True, check=False, timeout=60)
    assert expect in anyio.run(call, home, profile, tool, arguments)
