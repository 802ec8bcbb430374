"""The session log's hash chain: every kind of tampering is found, at the record it breaks."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpbox.logs.signing import Signer
from mcpbox.logs.verify import verify_file
from mcpbox.logs.writer import GENESIS, SessionLog
from tests.conftest import MCPBOX


def write_log(path: Path, records: int = 6, signer: Signer | None = None) -> list[bytes]:
    """A log of ``records`` records, plus its seals when a ``signer`` is given."""
    log = SessionLog(path)
    log.event("start", session=path.stem)
    if signer is not None:
        log.sign_with(lambda: signer, print, delay=0)
        while log._sealed_seq == 0:
            time.sleep(0.001)
    for i in range(records - 2):
        raw = json.dumps({"jsonrpc": "2.0", "id": i, "method": "ping"}).encode()
        log.message("c2s", raw, kind="request", method="ping", ident=i)
    log.event("end", exit_code=0, reason="client closed stdin")
    log.close()
    return path.read_bytes().splitlines(keepends=True)


def test_an_untouched_log_verifies(tmp_path: Path) -> None:
    lines = write_log(tmp_path / "a.jsonl")
    report = verify_file(tmp_path / "a.jsonl")
    assert report.ok and report.records == len(lines) and report.ended
    assert json.loads(lines[0])["prev"] == GENESIS


@pytest.mark.parametrize(
    ("tamper", "bad"),
    [
        ("edit a byte of record 3", 4),
        ("delete record 3", 3),
        ("swap records 3 and 4", 3),
        ("insert a copy of record 2", 3),
        ("cut the last line in half", 6),
    ],
)
def test_tampering_is_found_at_the_record_it_breaks(tmp_path: Path, tamper: str, bad: int) -> None:
    path = tmp_path / "b.jsonl"
    lines = write_log(path)
    if tamper.startswith("edit"):
        lines[2] = lines[2].replace(b'"ping"', b'"pong"', 1)
    elif tamper.startswith("delete"):
        del lines[2]
    elif tamper.startswith("swap"):
        lines[2], lines[3] = lines[3], lines[2]
    elif tamper.startswith("insert"):
        lines.insert(2, lines[1])
    else:
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
    path.write_bytes(b"".join(lines))
    report = verify_file(path)
    assert not report.ok, tamper
    assert report.bad_seq == bad, (tamper, report.problem)


def test_removing_the_first_record_is_found(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    lines = write_log(path)
    path.write_bytes(b"".join(lines[1:]))
    assert verify_file(path).bad_seq == 1


@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=255))
def test_any_changed_byte_before_the_last_record_breaks_the_chain(position: int, delta: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.jsonl"
        lines = write_log(path)
        data = bytearray(b"".join(lines))
        body = len(data) - len(lines[-1])  # the last record has nothing after it to break (see the docs)
        index = position % body
        data[index] = (data[index] + delta) % 256
        path.write_bytes(bytes(data))
        assert not verify_file(path).ok


def test_logs_verify_command(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mcpbox.logs.signing import Signer, public_pem

    state = tmp_path / "state"
    sessions = state / "mcpbox" / "sessions"
    sessions.mkdir(parents=True)
    key = Ed25519PrivateKey.generate()
    write_log(sessions / "20260101-000000-abcdef.jsonl", signer=Signer.of(key))
    pem = tmp_path / "key.pem"
    pem.write_text(public_pem(key.public_key()))
    # No keyring reachable here: the public key file is what checks the seals.
    env = {
        "XDG_STATE_HOME": str(state),
        "PATH": "/usr/bin:/bin",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    verify = [MCPBOX, "logs", "verify"]
    ok = subprocess.run(
        [*verify, "20260101", "--pubkey", str(pem), "--json"], env=env, capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["logs"][0]["status"] == "sealed"
    unchecked = subprocess.run([*verify, "20260101"], env=env, capture_output=True, text=True, check=False)
    assert unchecked.returncode == 1 and "UNCHECKED" in unchecked.stdout and "--pubkey" in unchecked.stdout
    path = sessions / "20260101-000000-abcdef.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"ping"', b'"pong"', 1))
    bad = subprocess.run([*verify, "--all", "--pubkey", str(pem)], env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "ALTERED" in bad.stdout and "record 4" in bad.stdout
    missing = subprocess.run([*verify, "nope"], env=env, capture_output=True, text=True, check=False)
    assert missing.returncode == 2 and "matches no session log" in missing.stderr
