"""A server hammering refused destinations cannot fill the disk through the session log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcpbox.logs.writer import SessionLog
from mcpbox.profile.load import parse_profile
from mcpbox.sandbox import supervisor


def test_net_records_stop_at_the_quota_and_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "MAX_NET_RECORDS", 5)
    log = SessionLog(tmp_path / "s.jsonl")
    profile = parse_profile({"name": "n", "image": "i", "network": {"allow": ["a.example:443"]}})
    sandbox = supervisor.Sandbox(profile, "s", log, watchdog=None)  # type: ignore[arg-type]  # not started
    for i in range(50):
        sandbox._net_record({"kind": "connect", "dest": f"192.0.2.{i}:80", "verdict": "refuse"})
    log.close()
    events = [json.loads(line)["event"] for line in (tmp_path / "s.jsonl").read_bytes().splitlines()]
    assert events == ["net"] * 5 + ["net_quota_reached"]
    assert sandbox.net_records == 50
