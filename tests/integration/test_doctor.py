"""`mcpbox doctor` on this machine: healthy, then with a stopped engine, a missing image and a missing secret."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MCPBOX, Home
from tests.keyring_session import KeyringSession

pytestmark = pytest.mark.docker


def doctor(home: Home, **env: str) -> tuple[int, dict[str, dict[str, str]]]:
    done = subprocess.run(
        [MCPBOX, "doctor", "--json"], env=home.full_env(**env), capture_output=True, text=True, check=False, timeout=120
    )
    assert done.stdout, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] == (done.returncode == 0)
    return done.returncode, {check["name"]: check for check in report["checks"]}


def test_a_healthy_host_passes_every_check(
    kr_home: Home, keyring: KeyringSession, docker_clean: Any, tmp_path: Path
) -> None:
    user = tmp_path / "user"  # a HOME with the folders the built-in profiles mount
    for folder in ("Documents", "src/project"):
        (user / folder).mkdir(parents=True)
    code, checks = doctor(kr_home, HOME=str(user))
    assert code == 0, checks
    names = ("engine", "seccomp", "cgroups", "keyring", "base image", "images", "mounts", "network allow-lists")
    for name in (*names, "orphans"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "SecretService" in checks["keyring"]["detail"]


def test_a_stopped_engine_is_reported_with_its_fix_and_nothing_else_is_guessed(kr_home: Home) -> None:
    code, checks = doctor(kr_home, DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert code == 1
    assert checks["engine"]["status"] == "problem" and "Start the Docker engine" in checks["engine"]["fix"]
    for name in ("seccomp", "cgroups", "images", "network allow-lists", "orphans"):
        assert checks[name]["status"] == "skipped", checks[name]


def test_a_missing_image_and_a_missing_secret_are_reported_with_their_fixes(
    kr_home: Home, keyring: KeyringSession, docker_clean: Any
) -> None:
    kr_home.write_profile("ghost", {"image": "mcpbox/no-such-image:1", "secrets": {"TOKEN": "doctor-missing-token"}})
    code, checks = doctor(kr_home)
    assert code == 1
    image = checks["image mcpbox/no-such-image:1"]
    assert image["status"] == "problem" and "ghost" in image["detail"] and "make setup" in image["fix"]
    secret = checks["secret doctor-missing-token"]
    assert secret["status"] == "problem" and secret["fix"] == "mcpbox secret set doctor-missing-token"
    assert checks["engine"]["status"] == "ok" and checks["network allow-lists"]["status"] == "ok"


def test_no_secure_keyring_is_a_problem(home: Home) -> None:
    code, checks = doctor(home, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    assert code == 1 and checks["keyring"]["status"] == "problem" and "gnome-keyring-daemon" in checks["keyring"]["fix"]


def test_a_missing_mount_folder_is_reported_with_its_fix(home: Home, tmp_path: Path) -> None:
    code, checks = doctor(home, HOME=str(tmp_path))
    assert code == 1
    found = checks["profile filesystem"]
    assert found["status"] == "problem" and f"mkdir -p {tmp_path}/Documents" in found["fix"], found
    assert "mounts[0].source" in found["detail"]


def test_a_missing_base_image_is_reported_with_its_fix(home: Home, docker_clean: Any) -> None:
    code, checks = doctor(home, MCPBOX_BASE_IMAGE="mcpbox/no-such-base:1")
    assert code == 1
    base = checks["base image"]
    assert base["status"] == "problem" and "mcpbox/no-such-base:1" in base["detail"], base
    assert "mcpbox base build" in base["fix"]
