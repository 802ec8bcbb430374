"""`mcpbox run` is spawned for every client connection: its start-up must stay lean."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import MCPBOX, Home


def imported_by(args: list[str], home: Home) -> set[str]:
    """Modules (and their top-level packages) the command imports, from `python -X importtime`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", MCPBOX, *args],
        capture_output=True,
        text=True,
        env=home.full_env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    modules = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    return modules | {name.split(".")[0] for name in modules}


def test_run_skips_typer_and_pydantic(home: Home) -> None:
    # A missing profile: the run path up to its refusal, without needing an engine.
    imports = imported_by(["run", "no-such-profile"], home)
    assert "mcpbox.launcher" in imports
    assert "typer" not in imports
    assert "pydantic" not in imports


def test_version_and_listing_import_no_engine_client(home: Home) -> None:
    for args in (["--version"], ["profile", "list"]):
        imports = imported_by(args, home)
        assert "docker" not in imports
        assert "asyncio" not in imports
