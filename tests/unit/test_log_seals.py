"""Seals: the Ed25519 signatures over the chain head, what they catch, and what a log without them says."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from mcpbox.logs import writer
from mcpbox.logs.signing import Signer, Verifier
from mcpbox.logs.verify import ALTERED, OPEN, SEALED, UNCHECKED, UNSEALED, UNSIGNED, verify_file
from mcpbox.logs.writer import SessionLog

KEY = Ed25519PrivateKey.generate()
VERIFIER = Verifier([KEY.public_key()])


def wait_for_first_seal(log: SessionLog) -> None:
    while log._sealed_seq == 0:
        time.sleep(0.001)


def signed_log(path: Path, pings: int = 4, *, pid: int = 999_999_999, key: Ed25519PrivateKey = KEY) -> list[bytes]:
    log = SessionLog(path)
    log.event("start", session=path.stem, profile="p", pid=pid)
    log.sign_with(lambda: Signer.of(key), print, delay=0)
    wait_for_first_seal(log)
    for i in range(pings):
        raw = json.dumps({"jsonrpc": "2.0", "id": i, "method": "ping"}).encode()
        log.message("c2s", raw, kind="request", method="ping", ident=i)
    log.event("end", exit_code=0, reason="client closed stdin")
    log.close()
    return path.read_bytes().splitlines(keepends=True)


def rechain(lines: list[bytes], start: int) -> list[bytes]:
    """What someone who can write the file but has no key would do: fix every prev from ``start`` on."""
    out = lines[:start]
    for line in lines[start:]:
        record = json.loads(line)
        prev = hashlib.sha256(out[-1]).hexdigest()
        out.append(line.replace(f'"prev":"{record["prev"]}"'.encode(), f'"prev":"{prev}"'.encode(), 1))
    return out


def test_a_closed_log_is_sealed_at_its_end(tmp_path: Path) -> None:
    lines = signed_log(tmp_path / "a.jsonl")
    report = verify_file(tmp_path / "a.jsonl", VERIFIER)
    assert report.status == SEALED, report.detail
    last = json.loads(lines[-1])
    assert last["event"] == "seal" and last["final"] is True
    assert report.signed_through == len(lines) and report.key == Signer.of(KEY).key
    assert json.loads(lines[1])["event"] == "seal"  # sealing starts as soon as the key is in hand


@pytest.mark.parametrize(
    ("tamper", "status", "bad"),
    [
        ("cut the tail at a record boundary", UNSEALED, None),
        ("rewrite record 3 and re-hash the rest", ALTERED, "last"),
        ("append a record after the final seal", ALTERED, "last"),
        ("drop final from the last seal and re-hash", ALTERED, "last"),
        ("change the final seal's time", ALTERED, "last"),
        ("change the session id and re-hash", ALTERED, 2),
    ],
)
def test_what_the_seals_catch(tmp_path: Path, tamper: str, status: str, bad: int | str | None) -> None:
    path = tmp_path / "b.jsonl"
    lines = signed_log(path)
    if tamper.startswith("cut"):
        lines = lines[:-3]
    elif tamper.startswith("rewrite"):
        lines[2] = lines[2].replace(b'"ping"', b'"pong"', 1)
        lines = rechain(lines, 3)
    elif tamper.startswith("append"):
        extra = json.loads(lines[-2])
        extra.update(seq=len(lines) + 1, prev=hashlib.sha256(lines[-1]).hexdigest())
        lines.append(json.dumps(extra, separators=(",", ":")).encode() + b"\n")
    elif tamper.startswith("drop"):
        lines[-1] = lines[-1].replace(b',"final":true', b"")
    elif tamper.startswith("change the final"):
        record = json.loads(lines[-1])
        lines[-1] = lines[-1].replace(f'"t":{record["t"]:.6f}'.encode(), f'"t":{record["t"] - 60:.6f}'.encode())
    else:
        lines[0] = lines[0].replace(path.stem.encode(), b"other-session")
        lines = rechain(lines, 1)
    path.write_bytes(b"".join(lines))
    report = verify_file(path, VERIFIER)
    assert report.status == status, (tamper, report.detail)
    if bad == "last":
        assert report.bad_seq == len(lines), (tamper, report.problem)
    elif bad is not None:
        assert report.bad_seq == bad, (tamper, report.problem)
    if status == UNSEALED:
        assert report.detail.startswith("ended without seal: signed through record 2"), report.detail


def test_a_seal_by_another_key_is_unchecked_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    signed_log(path, key=Ed25519PrivateKey.generate())
    other = verify_file(path, VERIFIER)
    assert other.status == UNCHECKED and "--pubkey" in other.detail
    assert verify_file(path, None).status == UNCHECKED


def test_a_log_of_a_running_session_is_open(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    lines = signed_log(path, pid=os.getpid())  # this process: alive, and started before the log
    path.write_bytes(b"".join(lines[:-1]))
    report = verify_file(path, VERIFIER)
    assert report.status == OPEN and report.detail.startswith("still being written"), report.detail


def test_seals_come_every_few_seconds_while_records_come(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "SEAL_EVERY", 0.05)
    path = tmp_path / "e.jsonl"
    log = SessionLog(path)
    log.event("start", session=path.stem)
    log.sign_with(lambda: Signer.of(KEY), print, delay=0)
    wait_for_first_seal(log)
    for i in range(6):
        log.event("tick", i=i)
        time.sleep(0.12)
    time.sleep(0.3)  # nothing new: no seal of nothing
    log.close()
    events = [json.loads(line).get("event") for line in path.read_bytes().splitlines()]
    seals = [i for i, name in enumerate(events) if name == "seal"]
    assert len(seals) >= 6, events  # the first, one after (nearly) every tick, and the final one
    periodic = seals[:-1]  # the final seal may follow one directly: it says the log ends there
    assert all(b - a > 1 for a, b in itertools.pairwise(periodic)), events
    assert verify_file(path, VERIFIER).status == SEALED


@pytest.mark.parametrize("failure", [RuntimeError("dbus is gone"), None])
def test_no_key_means_an_unsigned_log_and_a_warning(tmp_path: Path, failure: Exception | None) -> None:
    from mcpbox.errors import KeyringError

    warnings: list[str] = []
    path = tmp_path / "f.jsonl"
    log = SessionLog(path)
    log.event("start", session=path.stem)
    error = failure or KeyringError("no secure OS keyring is available.", "Run one.")

    def load() -> Signer:
        raise error

    log.sign_with(load, warnings.append, delay=0)
    log.event("end", exit_code=0)
    log.close()
    report = verify_file(path, VERIFIER)
    assert report.status == UNSIGNED, report.detail
    assert warnings and "not signed" in warnings[0] and ("dbus is gone" in warnings[0] or "Run one." in warnings[0])


def test_a_profile_without_signing_says_so(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    log = SessionLog(path)
    log.unsigned("the profile sets log.sign: false")
    log.close()
    report = verify_file(path, VERIFIER)
    assert report.status == UNSIGNED and "log.sign: false" in report.detail


@given(st.integers(min_value=0, max_value=100_000), st.integers(min_value=1, max_value=255))
def test_any_changed_byte_anywhere_loses_the_seal(position: int, delta: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.jsonl"
        data = bytearray(b"".join(signed_log(path, pings=2)))
        index = position % len(data)
        data[index] = (data[index] + delta) % 256
        path.write_bytes(bytes(data))
        assert verify_file(path, VERIFIER).status != SEALED


def test_retention_removes_old_logs_and_never_a_running_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcpbox.logs import retention

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    sessions = tmp_path / "state" / "mcpbox" / "sessions"
    sessions.mkdir(parents=True)

    def make(name: str, pid: int, days: float) -> Path:
        return _aged(sessions / f"{name}.jsonl", pid, days)

    old, fresh, live = make("old", 999_999_999, 40), make("fresh", 999_999_999, 2), make("live", os.getpid(), 400)
    due = retention.expired()
    assert [item.path for item in due] == [old]  # 30 days by default; the live one is never due
    assert [item.path for item in retention.expired(older_than_days=1)] == [old, fresh]
    assert retention.prune(due) == due and not old.exists() and fresh.exists() and live.exists()


def _aged(path: Path, pid: int, days: float) -> Path:
    log = SessionLog(path)
    log.event("start", session=path.stem, profile="no-such-profile", pid=pid)
    log.close()
    then = time.time() - days * 86400
    os.utime(path, (then, then))
    return path
