"""Every built-in profile with a `build:` key builds offline here and answers a tool call through the
real SDK client (the time profile's image also comes from `make setup`; it is rebuilt the same way)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import anyio
import pytest

from mcpbox import paths
from tests.conftest import MCPBOX, Home, sdk_client

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


async def listed_then_called(home: Home, profile: str, tool: str | None, arguments: dict[str, Any]) -> str:
    with anyio.fail_after(120):
        async with sdk_client(profile, home) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            if tool is None:
                return ""
            assert tool in names, names
            result = await client.call_tool(tool, arguments)
            return " ".join(getattr(block, "text", "") for block in result.content)


@pytest.mark.parametrize("profile", sorted(CALLS))
def test_a_catalog_profile_builds_and_answers_a_tool_call(home: Home, docker_clean: Any, profile: str) -> None:
    tool, arguments, expect = CALLS[profile]
    built = subprocess.run(
        [MCPBOX, "build", profile, "--json"],
        env=home.full_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["id"].startswith("sha256:")
    # A first session takes the pins; tools a server announces later wait for a person (everything does that).
    anyio.run(listed_then_called, home, profile, None, {})
    accept = [MCPBOX, "pins", "accept", profile, "--yes"]
    subprocess.run(
        accept, env=home.full_env(), capture_output=True, text=True, check=False, timeout=60
    )  # 2: none pending
    assert expect in anyio.run(listed_then_called, home, profile, tool, arguments)
