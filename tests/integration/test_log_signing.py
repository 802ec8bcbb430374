"""Signed session logs on real sessions: the SDK client, a sandboxed server, a real Secret Service.

Each kind of tampering is done to the log of a real session and `mcpbox logs verify`
must name it; a session killed with SIGKILL must be reported as ended without seal at
its last signed point; without a secure keyring the log must say it is unsigned.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import MCPBOX, Home, RawClient, hostile_profile, read_log, sdk_client
from tests.keyring_session import KeyringSession

pytestmark = pytest.mark.docker


def verify(home: Home, *args: str) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run(
        [MCPBOX, "logs", "verify", *args, "--json"], env=home.full_env(), capture_output=True, text=True, check=False
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)["logs"]


async def a_session(home: Home, env: dict[str, str]) -> None:
    async with sdk_client("time", home, env=env) as client:
        await client.list_tools()
        for zone in ("UTC", "Europe/Paris", "Asia/Tokyo"):
            await client.call_tool("get_current_time", {"timezone": zone})
            await anyio.sleep(1)  # seals come while the session runs, not only at its end


@pytest.fixture
def sealed_log(kr_home: Home, keyring: KeyringSession, docker_clean: Any) -> Path:
    anyio.run(a_session, kr_home, keyring.env)
    (path,) = kr_home.session_logs()
    return path


def tampered(lines: list[bytes], how: str) -> list[bytes]:
    if how == "one byte changed":
        # What the server answered: the time in Paris becomes another time.
        index = next(i for i, line in enumerate(lines) if b"Europe/Paris" in line and b'"s2c"' in line)
        lines[index] = lines[index].replace(b'\\"is_dst', b'\\"is_DST', 1)
    elif how == "a record deleted":
        index = next(i for i, line in enumerate(lines) if b'"tools/call"' in line)
        del lines[index]
    elif how == "two records swapped":
        index = next(i for i, line in enumerate(lines) if b'"tools/call"' in line)
        lines[index], lines[index + 1] = lines[index + 1], lines[index]
    elif how == "the tail cut off":
        lines = lines[: len(lines) // 2]
    elif how == "a line cut in half":
        lines[-1] = lines[-1][:20]
    return lines


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ("one byte changed", "altered"),
        ("a record deleted", "altered"),
        ("two records swapped", "altered"),
        ("the tail cut off", "unsealed"),
        ("a line cut in half", "altered"),
    ],
)
def test_verify_passes_on_a_real_log_and_names_each_tampering(
    kr_home: Home, sealed_log: Path, how: str, status: str
) -> None:
    code, (report,) = verify(kr_home, sealed_log.stem)
    assert code == 0 and report["status"] == "sealed", report
    assert report["records"] == len(read_log(sealed_log)) and report["ended"]
    records = read_log(sealed_log)
    assert records[-1]["event"] == "seal" and records[-1]["final"] is True
    lines = sealed_log.read_bytes().splitlines(keepends=True)
    changed = tampered(list(lines), how)
    assert changed != lines
    copy = kr_home.root / f"{how.replace(' ', '-')}.jsonl"
    copy.write_bytes(b"".join(changed))
    code, (report,) = verify(kr_home, str(copy))
    assert code == 1 and report["status"] == status, (how, report)
    if status == "altered":
        assert report["bad_record"] is not None and f"{report['bad_record']}" in report["problem"], report
        first_difference = next(i for i, (a, b) in enumerate(zip(lines, changed, strict=False), start=1) if a != b)
        assert first_difference <= report["bad_record"] <= first_difference + 1, (how, report)
    else:
        assert report["detail"].startswith("ended without seal: signed through record"), report


def test_a_killed_session_ends_without_seal_at_its_last_signed_point(
    kr_home: Home, keyring: KeyringSession, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    client = RawClient("time", kr_home, env=keyring.env)
    raw_clients.append(client)
    client.initialize()
    assert "result" in client.call_tool(1, "get_current_time", {"timezone": "UTC"})
    time.sleep(3)  # past a sealing interval: what came so far is signed
    assert "result" in client.call_tool(2, "get_current_time", {"timezone": "Asia/Tokyo"})
    client.kill()  # SIGKILL: mcpbox gets no chance to write anything more
    (path,) = kr_home.session_logs()
    records = read_log(path)
    seals = [r["seq"] for r in records if r.get("event") == "seal"]
    assert seals and not records[-1].get("final"), records[-1]
    code, (report,) = verify(kr_home, path.stem)
    assert code == 1 and report["status"] == "unsealed", report
    assert report["signed_through"] == seals[-1] < len(records), report
    assert report["detail"].startswith(f"ended without seal: signed through record {seals[-1]}"), report
    # The records after the last seal are still readable and chained: the second call is there.
    assert any("Asia/Tokyo" in json.dumps(r) for r in records if r["seq"] > seals[-1])


def test_without_a_secure_keyring_the_log_says_it_is_unsigned(home: Home, docker_clean: Any) -> None:
    with tempfile.TemporaryFile("w+") as errlog:  # the SDK wants a real file for the server's stderr
        anyio.run(_time_once, home, errlog)
        errlog.seek(0)
        stderr = errlog.read()
    assert "mcpbox: warning: this session's log is not signed: no secure OS keyring" in stderr
    (path,) = home.session_logs()
    assert [r for r in read_log(path) if r.get("event") == "seal"] == []
    code, (report,) = verify(home, path.stem)
    assert code == 1 and report["status"] == "unsigned" and "no secure OS keyring" in report["detail"], report


async def _time_once(home: Home, errlog: Any) -> None:
    # The SDK passes on only a few variables: this client's mcpbox finds no Secret Service.
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    async with sdk_client("time", home, errlog=errlog, env=env) as client:
        await client.call_tool("get_current_time", {"timezone": "UTC"})


def test_a_profile_can_turn_signing_off_and_says_so(kr_home: Home, keyring: KeyringSession, docker_clean: Any) -> None:
    hostile_profile(kr_home, "unsigned-hostile", log={"sign": False})
    show = [MCPBOX, "profile", "show", "unsigned-hostile"]
    shown = subprocess.run(show, env=kr_home.full_env(), capture_output=True, text=True, check=False)
    assert "log.sign is off" in shown.stdout, shown.stdout + shown.stderr
    anyio.run(_add_once, kr_home, keyring.env)
    (path,) = kr_home.session_logs()
    code, (report,) = verify(kr_home, path.stem)
    assert code == 1 and report["status"] == "unsigned" and "log.sign: false" in report["detail"]


async def _add_once(home: Home, env: dict[str, str]) -> None:
    async with sdk_client("unsigned-hostile", home, env=env) as client:
        await client.call_tool("add", {"a": 1, "b": 2})


def test_the_public_key_checks_logs_where_no_keyring_is(kr_home: Home, sealed_log: Path, tmp_path: Path) -> None:
    pem = tmp_path / "mcpbox-log.pem"
    exported = subprocess.run(
        [MCPBOX, "logs", "pubkey", "-o", str(pem), "--json"],
        env=kr_home.full_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert exported.returncode == 0, exported.stderr
    assert pem.read_text().startswith("-----BEGIN PUBLIC KEY-----") and (pem.stat().st_mode & 0o777) == 0o600
    (report,) = verify(kr_home, sealed_log.stem)[1]
    assert json.loads(exported.stdout)["key"] == report["key"]
    # Elsewhere: no keyring at all. The seals can be checked with the exported key only.
    elsewhere = kr_home.full_env(PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    args = [MCPBOX, "logs", "verify", str(sealed_log), "--json"]
    unchecked = subprocess.run(args, env=elsewhere, capture_output=True, text=True, check=False)
    assert unchecked.returncode == 1 and json.loads(unchecked.stdout)["logs"][0]["status"] == "unchecked"
    checked = subprocess.run([*args, "--pubkey", str(pem)], env=elsewhere, capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and json.loads(checked.stdout)["logs"][0]["status"] == "sealed", checked.stdout


@pytest.mark.parametrize("end", ["SIGTERM", "SIGHUP", "server crash", "mcpbox stop", "missing image"])
def test_every_supervised_end_seals_the_log(
    kr_home: Home, keyring: KeyringSession, docker_clean: Any, raw_clients: list[RawClient], end: str
) -> None:
    profile = hostile_profile(kr_home, "gone", image="mcpbox/no-such-image:1") if end == "missing image" else "hostile"
    hostile_profile(kr_home)
    client = RawClient(profile, kr_home)
    raw_clients.append(client)
    answer = client.initialize()
    assert ("error" in answer) == (end == "missing image"), answer
    if end.startswith("SIG"):
        client.proc.send_signal(getattr(signal, end))
    elif end == "server crash":
        client.send({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "crash", "arguments": {}}})
    elif end == "mcpbox stop":
        (log,) = kr_home.session_logs()
        subprocess.run([MCPBOX, "stop", log.stem], env=kr_home.full_env(), check=True, timeout=60, capture_output=True)
    client.wait(timeout=60)
    (log,) = kr_home.session_logs()
    code, (report,) = verify(kr_home, log.stem)
    assert code == 0 and report["status"] == "sealed", (end, report)
    last_word = [r for r in read_log(log) if r.get("event") != "seal"][-1]
    assert last_word["event"] == ("start_failed" if end == "missing image" else "end")  # the final seal follows it


def test_the_session_bus_is_found_when_the_client_passes_no_address(
    kr_home: Home, keyring: KeyringSession, docker_clean: Any
) -> None:
    # The SDK passes no DBUS_SESSION_BUS_ADDRESS; systemd puts the bus at $XDG_RUNTIME_DIR/bus.
    bus = keyring.env["DBUS_SESSION_BUS_ADDRESS"].removeprefix("unix:path=")
    (kr_home.runtime / "bus").symlink_to(bus)
    anyio.run(_time_without_bus_address, kr_home)
    (path,) = kr_home.session_logs()
    code, (report,) = verify(kr_home, path.stem)
    assert code == 0 and report["status"] == "sealed", report


async def _time_without_bus_address(home: Home) -> None:
    async with sdk_client("time", home) as client:
        await client.call_tool("get_current_time", {"timezone": "UTC"})
