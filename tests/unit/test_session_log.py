"""The session log: one valid JSON record per line, whatever the message holds."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from mcpbox.logs.writer import SessionLog


def records(path: Path) -> list[dict[str, object]]:
    # JSONL records end at "\n" only; str.splitlines() would also split at U+2028 inside a message.
    return [json.loads(line) for line in path.read_bytes().split(b"\n") if line]


def test_hostile_method_and_id_stay_one_valid_record(tmp_path: Path) -> None:
    log = SessionLog(tmp_path / "s" / "a.jsonl")
    method = 'evil"},"verdict":"forward\nnext line \u2028 é \x00'
    raw = json.dumps({"jsonrpc": "2.0", "id": 'x"y', "method": method}).encode() + b"\r\n"
    log.message("c2s", raw, kind="request", method=method, ident='x"y', verdict="drop", reason='a "reason"')
    log.message("s2c", b'{"jsonrpc":"2.0","id":7,"result":{}}\n', kind="response", method=None, ident=7)
    log.event("end", exit_code=0)
    log.close()
    first, second, third = records(log.path)
    assert first["method"] == method
    assert first["id"] == 'x"y'
    assert first["verdict"] == "drop"
    assert first["reason"] == 'a "reason"'
    assert first["msg"] == json.loads(raw)
    assert second["id"] == 7
    assert second["msg"] == {"jsonrpc": "2.0", "id": 7, "result": {}}
    assert third["event"] == "end"
    assert [r["seq"] for r in (first, second, third)] == [1, 2, 3]


def test_metadata_mode_keeps_no_payload(tmp_path: Path) -> None:
    log = SessionLog(tmp_path / "b.jsonl", payloads="metadata")
    log.message(
        "c2s",
        b'{"jsonrpc":"2.0","id":1,"method":"secret/thing","params":{"token":"abc"}}\n',
        kind="request",
        method="secret/thing",
        ident=1,
    )
    log.close()
    (record,) = records(log.path)
    assert "msg" not in record
    assert "abc" not in log.path.read_text()


def test_log_is_private_and_never_overwritten(tmp_path: Path) -> None:
    log = SessionLog(tmp_path / "dir" / "c.jsonl")
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.path.parent.stat().st_mode) == 0o700
    log.close()
    try:
        SessionLog(log.path)
    except Exception as exc:
        assert "cannot create the session log" in str(exc)
    else:
        raise AssertionError("an existing session log was opened again")


def test_concurrent_writers_get_distinct_sequence_numbers(tmp_path: Path) -> None:
    log = SessionLog(tmp_path / "d.jsonl")

    def burst() -> None:
        for _ in range(500):
            log.event("tick")

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert sorted(r["seq"] for r in records(log.path)) == list(range(1, 2001))  # type: ignore[type-var]


def test_non_message_output_has_a_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcpbox.logs import writer

    monkeypatch.setattr(writer, "MAX_TEXT_TOTAL", 1000)  # a small quota, so the test writes little
    log = SessionLog(tmp_path / "e.jsonl")
    for _ in range(100):
        log.text("stderr", b"x" * 100 + b"\n", verdict="forward", reason="server stderr")
    log.message("s2c", b'{"jsonrpc":"2.0","method":"n"}\n', kind="notification", method="n", ident=None)
    log.close()
    rows = records(log.path)
    assert len([r for r in rows if r["dir"] == "stderr"]) == 10
    assert [r["event"] for r in rows if r["dir"] == "event"] == ["text_quota_reached"]
    assert rows[-1]["dir"] == "s2c"  # messages are still logged past the text quota
    assert log.text_suppressed == 90
