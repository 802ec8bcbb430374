"""A hostile server inside the sandbox tries every escape; each attempt must fail.

One sandbox (the default lockdown, plus a read-only and a read-write mount) is
started through `mcpbox run` for the module; each test asks the hostile server
to try one escape and asserts the sandbox held. The hostile server reports
``escaped: null`` when a probe could not run at all, which fails these tests
too: an attack that did not happen proves nothing.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HOSTILE_IMAGE, Home, RawClient

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, docker_api: Any) -> Iterator[tuple[RawClient, Path, Path]]:
    root = tmp_path_factory.mktemp("attacks")
    home = Home(root / "home", root / "run")
    readonly, writable = root / "ro", root / "rw"
    readonly.mkdir()
    writable.mkdir()
    writable.chmod(0o777)  # the sandbox user (65534) may write here; only the mount mode may stop it
    readonly.chmod(0o777)
    home.write_profile(
        "hostile",
        {
            "image": HOSTILE_IMAGE,
            "mounts": [
                {"source": str(readonly), "target": "/data"},
                {"source": str(writable), "target": "/out", "mode": "rw"},
            ],
        },
    )
    client = RawClient("hostile", home)
    assert "result" in client.initialize()
    yield client, readonly, writable
    client.close_stdin()
    assert client.wait(timeout=30) == 0


_ids = iter(range(100, 10_000))


def attempt(client: RawClient, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.call_tool(next(_ids), tool, arguments, timeout=120)
    assert "result" in response, response
    report: dict[str, Any] = json.loads(response["result"]["content"][0]["text"])
    assert report["escaped"] is not None, f"{tool} could not run: {report['detail']}"
    return report


ESCAPES = [
    "escape_root",
    "escape_setuid",
    "escape_capabilities",
    "escape_no_new_privs",
    "escape_write_rootfs",
    "escape_exec_tmp",
    "escape_raw_socket",
    "escape_unshare",
    "escape_clone_namespace",
    "escape_mount",
    "escape_ptrace",
    "escape_keyctl",
    "escape_bpf",
    "escape_perf_event_open",
    "escape_userfaultfd",
    "escape_io_uring",
    "escape_process_vm_readv",
    "escape_init_module",
    "escape_kexec",
    "escape_docker_socket",
    "escape_devices",
    "escape_proc_info",
]


@pytest.mark.parametrize("tool", ESCAPES)
def test_escape_attempt_fails(sandbox: tuple[RawClient, Path, Path], tool: str) -> None:
    report = attempt(sandbox[0], tool)
    assert report["escaped"] is False, report["detail"]


def test_no_network_interface_and_bridge_gateway_unreachable(
    sandbox: tuple[RawClient, Path, Path], docker_api: Any
) -> None:
    config = docker_api.inspect_network("bridge")["IPAM"]["Config"][0]
    gateway = config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))
    # Something really listens there, so a sandbox with a network would connect.
    with socket.create_server((gateway, 0)) as listener:
        port = listener.getsockname()[1]
        report = attempt(sandbox[0], "escape_network", {"host": gateway, "port": port, "timeout": 2})
    assert report["escaped"] is False, report["detail"]
    assert "ENETUNREACH" in report["detail"] or "unreachable" in report["detail"].lower()


def test_read_only_mount_cannot_be_written(sandbox: tuple[RawClient, Path, Path]) -> None:
    client, readonly, _ = sandbox
    report = attempt(client, "escape_write_path", {"path": "/data"})
    assert report["escaped"] is False, report["detail"]
    assert list(readonly.iterdir()) == []


def test_read_write_mount_is_writable_so_the_probe_can_tell(sandbox: tuple[RawClient, Path, Path]) -> None:
    # The control for the test above: the same probe on a rw mount does report success.
    report = attempt(sandbox[0], "escape_write_path", {"path": "/out"})
    assert report["escaped"] is True, report["detail"]


def test_fork_bomb_stops_at_the_pids_limit(sandbox: tuple[RawClient, Path, Path]) -> None:
    report = attempt(sandbox[0], "escape_fork_bomb", {"max": 2000})
    assert report["escaped"] is False, report["detail"]
    # The server still answers afterwards: the bomb was contained, not fatal.
    assert "result" in sandbox[0].request(next(_ids), "ping")


def test_memory_past_the_limit_is_killed(sandbox: tuple[RawClient, Path, Path]) -> None:
    report = attempt(sandbox[0], "escape_memory", {"mb": 1024})
    assert report["escaped"] is False, report["detail"]
    assert "result" in sandbox[0].request(next(_ids), "ping")


def test_an_image_volume_is_no_way_around_the_read_only_root(
    tmp_path_factory: pytest.TempPathFactory, docker_api: Any
) -> None:
    # An image may declare a VOLUME; Docker would give it a writable, executable
    # anonymous volume on the host's disk. mcpbox covers it with a noexec tmpfs.
    context = tmp_path_factory.mktemp("volume-image")
    (context / "Dockerfile").write_text(
        f"FROM {HOSTILE_IMAGE}\nUSER 0:0\nRUN mkdir -m 1777 /data-volume\nVOLUME /data-volume\nUSER 65534:65534\n"
    )
    image = "mcpbox/hostile-volume:test"
    for _ in docker_api.build(path=str(context), tag=image, network_mode="none", rm=True, decode=True):
        pass
    try:
        home = Home(tmp_path_factory.mktemp("volume-home") / "home", Path("/tmp"))
        home.write_profile("volume", {"image": image})
        client = RawClient("volume", home)
        try:
            assert "result" in client.initialize()
            report = attempt(client, "escape_exec_tmp")
            assert "/data-volume: absent" not in report["detail"]
            assert report["escaped"] is False, report["detail"]
            row = docker_api.containers(filters={"label": "mcpbox.parent_pid=" + str(client.proc.pid)})[0]
            mounts = docker_api.inspect_container(row["Id"])["Mounts"]
            assert [m for m in mounts if m["Type"] == "volume"] == []
        finally:
            client.close_stdin()
            client.wait(timeout=30)
    finally:
        docker_api.remove_image(image, force=True)
