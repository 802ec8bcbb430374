"""What the session log costs per record, measured in-process: the real `SessionLog`, a real file.

Three writers, each to its own file in a temporary directory (the same file system
as the user's state dir would be on this machine):

- ``full``: `log.payloads: full` (the default), a 1 KiB tool result spliced in;
- ``metadata``: `log.payloads: metadata`, the same messages, no payload;
- ``full+seals``: full, with the sealing thread running on a real Ed25519 key
  every SEAL_EVERY seconds, as `mcpbox run` does when the keyring has the key.

Each record is timed alone (`time.perf_counter_ns` around one `message()` call),
in blocks that rotate among the writers so drift and background load fall on each
alike. Separately: one seal (an Ed25519 signature and its record), timed alone;
a seal comes at most once per SEAL_EVERY seconds, and only when records came.

    .venv/bin/python bench/log_cost.py [--quick]

`bench/run.py` (`make bench`) runs it too, as section (g).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mcpbox.logs import writer
from mcpbox.logs.signing import Signer
from mcpbox.logs.writer import SessionLog

RECORDS = 20_000
QUICK_RECORDS = 2_000
BLOCK = 500
SEALS = 2_000


def _result(ident: int) -> bytes:
    text = "x" * 1024
    return json.dumps(
        {"jsonrpc": "2.0", "id": ident, "result": {"content": [{"type": "text", "text": text}], "isError": False}}
    ).encode()


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def run(records: int = RECORDS) -> dict[str, Any]:
    signer = Signer.of(Ed25519PrivateKey.generate())
    samples: dict[str, list[float]] = {"full": [], "metadata": [], "full+seals": []}
    with tempfile.TemporaryDirectory(prefix="mcpbox-log-bench-") as tmp:
        logs = {
            "full": SessionLog(Path(tmp) / "full.jsonl"),
            "metadata": SessionLog(Path(tmp) / "metadata.jsonl", payloads="metadata"),
            "full+seals": SessionLog(Path(tmp) / "sealed.jsonl"),
        }
        logs["full+seals"].sign_with(lambda: signer, lambda text: print(text, file=sys.stderr), delay=0)
        raw = [_result(i) for i in range(BLOCK)]
        order = list(logs)
        done = 0
        while done < records:
            for name in order:
                log, times = logs[name], samples[name]
                for i, data in enumerate(raw):
                    start = time.perf_counter_ns()
                    log.message("s2c", data, kind="response", method=None, ident=done + i)
                    times.append((time.perf_counter_ns() - start) / 1000)
            order.append(order.pop(0))
            done += BLOCK
        for log in logs.values():
            log.close()
        seal_us: list[float] = []
        log = SessionLog(Path(tmp) / "seals.jsonl")
        log._signer = signer
        for _ in range(SEALS):
            with log._lock:
                start = time.perf_counter_ns()
                log._seal(final=False)
                seal_us.append((time.perf_counter_ns() - start) / 1000)
        log.close()
    out: dict[str, Any] = {
        name: {"p50_us": statistics.median(v), "p95_us": _percentile(v, 95), "n": len(v)} for name, v in samples.items()
    }
    out["seal"] = {"p50_us": statistics.median(seal_us), "p95_us": _percentile(seal_us, 95), "n": len(seal_us)}
    out["seal_every_s"] = writer.SEAL_EVERY
    return out


def lines(result: dict[str, Any]) -> list[str]:
    out = ["(g) session log writer, per record, in-process (bench/log_cost.py)"]
    for name in ("full", "metadata", "full+seals"):
        row = result[name]
        out.append(f"    {name:<11} p50 {row['p50_us']:7.1f} us   p95 {row['p95_us']:7.1f} us   ({row['n']} records)")
    seal = result["seal"]
    out.append(
        f"    one seal    p50 {seal['p50_us']:7.1f} us   p95 {seal['p95_us']:7.1f} us   "
        f"(at most one per {result['seal_every_s']:g} s)"
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print("\n".join(lines(run(QUICK_RECORDS if args.quick else RECORDS))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
