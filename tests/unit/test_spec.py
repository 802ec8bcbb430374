"""The container body a profile yields: locked down whatever the profile says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcpbox.errors import ProfileError
from mcpbox.profile.load import read_profile_file
from mcpbox.sandbox.docker import SandboxInfo
from mcpbox.sandbox.owners import is_orphan
from mcpbox.sandbox.spec import ImageConfig, Owner, create_body
from mcpbox.secrets import handoff

OWNER = Owner(session="s1", pid=4242, started=1.5, host="h")


def body_for(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "image": "img:1", **fields}))
    return create_body(read_profile_file(path), OWNER)


def test_default_body_is_locked_down(tmp_path: Path) -> None:
    body = body_for(tmp_path)
    host = body["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert host["ReadonlyRootfs"] is True
    assert host["NetworkMode"] == "none"
    assert body["NetworkDisabled"] is True
    assert "no-new-privileges:true" in host["SecurityOpt"]
    seccomp = next(o for o in host["SecurityOpt"] if o.startswith("seccomp="))
    assert json.loads(seccomp.removeprefix("seccomp="))["defaultAction"] == "SCMP_ACT_ERRNO"
    assert host["Tmpfs"]["/tmp"].startswith("rw,noexec,nosuid,nodev")
    assert host["Memory"] == host["MemorySwap"] == 512 * 2**20
    assert host["PidsLimit"] == 128
    assert host["Init"] is True
    assert host["IpcMode"] == "private"
    assert host["Devices"] == []
    assert host["Mounts"] == []
    assert host["AutoRemove"] is True
    assert host["LogConfig"]["Type"] == "none"
    assert body["User"] == "65534:65534"
    assert body["StdinOnce"] is True
    assert body["OpenStdin"] is True
    assert body["Tty"] is False
    assert body["Labels"]["mcpbox.session"] == "s1"
    assert body["Labels"]["mcpbox.parent_pid"] == "4242"


def test_mounts_are_read_only_unless_marked(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    body = body_for(tmp_path, mounts=[{"source": "a", "target": "/a"}, {"source": "a", "target": "/b", "mode": "rw"}])
    mounts = body["HostConfig"]["Mounts"]
    assert [(m["Target"], m["ReadOnly"]) for m in mounts] == [("/a", True), ("/b", False)]
    assert all(m["Type"] == "bind" and m["Source"] == str((tmp_path / "a").resolve()) for m in mounts)


def test_resources_follow_the_profile(tmp_path: Path) -> None:
    host = body_for(tmp_path, resources={"memory": "256m", "cpus": 0.5, "pids": 64})["HostConfig"]
    assert host["Memory"] == 256 * 2**20
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 64


def info(**kw: Any) -> SandboxInfo:
    base: dict[str, Any] = {
        "id": "c",
        "name": "n",
        "session": "s",
        "profile": "p",
        "parent_pid": 10,
        "parent_started": 100.0,
        "host": "h",
        "state": "running",
        "created": 0,
    }
    return SandboxInfo(**{**base, **kw})


@pytest.mark.parametrize(
    ("sandbox", "alive", "orphan"),
    [
        (info(), True, False),
        (info(), False, True),
        (info(parent_pid=0), True, True),
        (info(host="other"), False, False),  # another machine's sandbox on a shared engine is never ours to remove
    ],
)
def test_orphans_are_sandboxes_whose_owner_is_gone(sandbox: SandboxInfo, alive: bool, orphan: bool) -> None:
    assert is_orphan(sandbox, "h", lambda _pid, _started: alive) is orphan


def test_own_start_time_matches_psutil() -> None:
    import psutil

    from mcpbox.sandbox.owners import _own_start_time

    assert abs(_own_start_time() - psutil.Process().create_time()) < 0.05


def test_secrets_wrap_the_image_command_and_add_no_values(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "s",
                "image": "img:1",
                "user": "1000:1001",
                "secrets": {"A": "a-entry", "B": {"entry": "b", "as": "file"}},
            }
        )
    )
    profile = read_profile_file(path)
    body = create_body(profile, OWNER, ImageConfig(entrypoint=("/entry",), cmd=("serve", "--stdio")))
    assert body["Entrypoint"] == handoff.entrypoint()
    assert body["Cmd"] == ["/entry", "serve", "--stdio"]  # what the engine itself would have run
    assert body["Env"] == []
    assert body["HostConfig"]["Tmpfs"]["/run/secrets"].endswith("mode=0700,uid=1000,gid=1001")
    plain = body_for(tmp_path, secrets={"A": "a-entry"}, command=["serve"])
    assert "/run/secrets" not in plain["HostConfig"]["Tmpfs"]
    assert "Entrypoint" not in body_for(tmp_path)  # no secrets: the image's own entrypoint, untouched
    with pytest.raises(ProfileError, match="no entrypoint or command"):
        create_body(profile, OWNER, ImageConfig())
