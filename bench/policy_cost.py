"""What the policy chain costs per message, measured in-process: no Docker, no pipes.

Four real `Relay`s (framing, parsing, session log: the real ones, with a real
`SessionLog` in a temporary directory) are fed bytes in memory through
`feed_client` / `feed_server`, as the transports' callbacks feed them in
`mcpbox run`. Their ends are byte sinks. Two relays run with the session log
keeping full payloads, two with metadata only, and of each pair one has no
policy (`relay.policy = None`, the relay as it was before the engine) and one
has the `Engine` attached the way `mcpbox.relay.session` attaches it.

The profile is the default policy plus a `tools.deny` glob and a `tools.rules`
glob rule. Pins go to a temporary directory. The engine's clock (used only for
the rate limits) advances one second per call, so the default limit of 120
calls per minute holds about 60 calls in its window and never refuses one; real
time would refuse the 121st call of the run. Timers (`policy.call_timeout`, one
per call) are the event loop's own: everything runs inside `asyncio.run`, and
the loop gets a turn between blocks. No approval desk is attached: nothing in
this traffic needs approval, and the desk opens its socket only when it does.

Traffic, the same for all four relays: one `tools/list` of 10 tools with input
schemas (the first one takes the pins; 2 of the 10 are denied, so the policy
rewrites every listing), then rounds of: a `tools/call` (valid arguments, one
of them a 200-byte text) answered by a clean 1 KiB text result; the same call
answered by a result whose text holds an ANSI escape and a GitHub token, which
the output rule rewrites; a `ping` and its answer; and, every RELIST_EVERY
rounds, the `tools/list` again. Each message is timed alone with
`time.perf_counter_ns` around the one `feed_*` call that handles it. After a
warm-up the rounds go in blocks that rotate among the four relays, so drift and
background load fall on each alike.

    .venv/bin/python bench/policy_cost.py [--quick] [--rounds N]

`bench/run.py` (`make bench`) runs it too, as section (f).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import platform
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mcpbox
from mcpbox.logs.writer import SessionLog
from mcpbox.policy import output
from mcpbox.policy.engine import Engine
from mcpbox.policy.pins import PinStore
from mcpbox.profile.load import parse_profile
from mcpbox.relay.pump import Relay

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 20_000
QUICK_ROUNDS = 2_000
WARMUP_ROUNDS = 500
QUICK_WARMUP_ROUNDS = 100
BLOCK = 100  # rounds per relay before rotating to the next
RELIST_EVERY = 20  # one tools/list round trip per this many rounds
MAX_BYTES = 4 * 1024 * 1024  # the default policy.max_message_bytes
CALLED_TOOL = "search_files"
PROFILE: dict[str, Any] = {
    "name": "bench-policy",
    "image": "mcpbox/bench:1",
    "tools": {
        "deny": ["delete_*", "write_*"],
        "rules": {"search_*": {"path": {"glob": ["/data/**"]}}},
    },
}

# Message kinds, in report order: (key, label); the label says the direction.
KINDS: tuple[tuple[str, str], ...] = (
    ("call", "tools/call request (c2s)"),
    ("result", "tools/call result, 1 KiB clean (s2c)"),
    ("dirty", "tools/call result, rewritten (s2c)"),
    ("ping", "ping request (c2s)"),
    ("pong", "ping response (s2c)"),
    ("list", "tools/list request (c2s)"),
    ("listed", "tools/list result, 10 tools (s2c)"),
)
CONFIGS: tuple[tuple[str, bool], ...] = (("full", False), ("full", True), ("metadata", False), ("metadata", True))


# ---- traffic ----------------------------------------------------------------


def tools() -> list[dict[str, Any]]:
    """Ten tools of a plausible file/search server, with input schemas; two match `tools.deny`."""

    def tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "title": name.replace("_", " ").capitalize(),
            "description": description,
            "inputSchema": {"type": "object", "properties": properties, "required": required},
            "annotations": {"readOnlyHint": not name.startswith(("write", "delete", "move"))},
        }

    path = {"type": "string", "description": "Absolute path of the file or directory"}
    return [
        tool("read_file", "Read a text file and return its contents.", {"path": path}, ["path"]),
        tool(
            "read_many_files",
            "Read several text files at once.",
            {"paths": {"type": "array", "items": {"type": "string"}, "maxItems": 50}},
            ["paths"],
        ),
        tool(
            "write_file",
            "Create or overwrite a text file.",
            {"path": path, "content": {"type": "string"}},
            ["path", "content"],
        ),
        tool("delete_file", "Delete a file.", {"path": path}, ["path"]),
        tool(
            "move_file",
            "Move or rename a file.",
            {"source": path, "destination": path},
            ["source", "destination"],
        ),
        tool("list_directory", "List the entries of a directory.", {"path": path}, ["path"]),
        tool(
            "directory_tree",
            "A recursive tree of a directory as JSON.",
            {"path": path, "depth": {"type": "integer", "minimum": 1, "maximum": 10}},
            ["path"],
        ),
        tool(
            CALLED_TOOL,
            "Search the text of files under a directory for a phrase.",
            {
                "path": path,
                "query": {"type": "string", "minLength": 1, "maxLength": 1000},
                "max_results": {"type": "integer", "minimum": 1, "maximum": 100},
                "case_sensitive": {"type": "boolean"},
                "include": {"type": "array", "items": {"type": "string"}},
            },
            ["path", "query"],
        ),
        tool("get_file_info", "Size, times and permissions of a file.", {"path": path}, ["path"]),
        tool("list_allowed_directories", "The directories this server may access.", {}, []),
    ]


PROSE = (
    "The relay reads one line from the server, decides what to do with it and writes it to the client. "
    "Search results are listed with the file name, the line number and the matching line. "
)


def text_of(size: int) -> str:
    return (PROSE * (size // len(PROSE) + 1))[:size]


def dirty_text(size: int) -> str:
    """The same size of text with a colour escape and a GitHub token in it: the output rule rewrites it."""
    token = "ghp_" + (string.ascii_letters + string.digits)[:36]
    body = f"\x1b[31mERROR\x1b[0m config loaded, token {token} found in .git/config. "
    return body + text_of(size - len(body))


class Template:
    """One message's bytes with a slot for the id: building each line costs a concatenation."""

    def __init__(self, message: dict[str, Any]) -> None:
        encoded = json.dumps({**message, "id": "@ID@"}).encode() + b"\n"  # as a client or server writes it
        self.head, self.tail = encoded.split(b'"@ID@"')

    def line(self, ident: int) -> bytes:
        return self.head + str(ident).encode() + self.tail


def frame(payload: bytes) -> bytes:
    """One chunk of Docker's multiplexed attach stream, on stdout."""
    return b"\x01\x00\x00\x00" + len(payload).to_bytes(4, "big") + payload


def result(text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "result": {"content": [{"type": "text", "text": text}], "isError": False}}


CALL = Template(
    {
        "jsonrpc": "2.0",
        "method": "tools/call",
        "params": {
            "name": CALLED_TOOL,
            "arguments": {"path": "/data/projects/notes", "query": text_of(200), "max_results": 20},
        },
    }
)
RESULT = Template(result(text_of(1024)))
DIRTY = Template(result(dirty_text(1024)))
PING = Template({"jsonrpc": "2.0", "method": "ping"})
PONG = Template({"jsonrpc": "2.0", "result": {}})
LIST = Template({"jsonrpc": "2.0", "method": "tools/list", "params": {}})
LISTED = Template({"jsonrpc": "2.0", "result": {"tools": tools()}})


# ---- the relays -------------------------------------------------------------


class Sink:
    """A byte sink standing in for a transport: keeps only the last write and a count."""

    def __init__(self) -> None:
        self.last = b""
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.last = data
        self.writes += 1

    def write_eof(self) -> None:
        pass

    def buffered(self) -> int:
        return 0  # always drained


class Clock:
    """The engine's clock for rate limits: one second per reading (one reading per call)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@dataclass
class Rig:
    payloads: str
    policy: bool
    relay: Relay
    client: Sink
    server: Sink
    log: SessionLog
    next_id: int = 0
    samples: dict[str, list[int]] = field(default_factory=lambda: {key: [] for key, _ in KINDS})

    @property
    def label(self) -> str:
        return f"{self.payloads}/{'on' if self.policy else 'off'}"


def make_rig(tmp: Path, payloads: str, policy: bool) -> Rig:
    client, server, stderr = Sink(), Sink(), Sink()
    name = f"{payloads}-{'on' if policy else 'off'}"
    log = SessionLog(tmp / "sessions" / f"{name}.jsonl", payloads=payloads)
    relay = Relay(log=log, client=client, server=server, stderr=stderr, max_bytes=MAX_BYTES)  # type: ignore[arg-type]
    if policy:
        profile = parse_profile(PROFILE)
        pins = PinStore(profile.name, directory=tmp / f"pins-{name}")
        relay.policy = Engine(profile, f"bench-{name}", relay, pins=pins, clock=Clock())
    return Rig(payloads, policy, relay, client, server, log)


def timed(feed: Callable[[bytes], None], data: bytes, into: list[int] | None) -> None:
    t0 = time.perf_counter_ns()
    feed(data)
    t1 = time.perf_counter_ns()
    if into is not None:
        into.append(t1 - t0)


def request_response(rig: Rig, request: Template, response: Template, keys: tuple[str, str], keep: bool) -> None:
    rig.next_id += 1
    ident = rig.next_id
    up, down = request.line(ident), frame(response.line(ident))  # built before the clock starts
    sent, answered = rig.server.writes, rig.client.writes
    timed(rig.relay.feed_client, up, rig.samples[keys[0]] if keep else None)
    timed(rig.relay.feed_server, down, rig.samples[keys[1]] if keep else None)
    if rig.server.writes != sent + 1 or rig.client.writes != answered + 1:
        raise AssertionError(f"{rig.label}: the {keys[0]} round trip was not relayed both ways")


def one_round(rig: Rig, index: int, keep: bool) -> None:
    request_response(rig, CALL, RESULT, ("call", "result"), keep)
    request_response(rig, CALL, DIRTY, ("call", "dirty"), keep)
    request_response(rig, PING, PONG, ("ping", "pong"), keep)
    if index % RELIST_EVERY == 0:
        request_response(rig, LIST, LISTED, ("list", "listed"), keep)


def check(rig: Rig) -> None:
    """The traffic does what the bench says: clean results pass as received, dirty ones are cleaned
    with the engine and pass untouched without it, and calls reach the server. The listing comes
    first: the engine lists the tools itself before judging a call of a tool it has not seen listed."""
    request_response(rig, LIST, LISTED, ("list", "listed"), False)
    listed = json.loads(rig.client.last)["result"]["tools"]
    if len(listed) != (8 if rig.policy else 10):
        raise AssertionError(f"{rig.label}: {len(listed)} tools listed")
    request_response(rig, CALL, RESULT, ("call", "result"), False)
    if rig.client.last != RESULT.line(rig.next_id):
        raise AssertionError(f"{rig.label}: a clean result was not forwarded as received")
    if not rig.server.last.startswith(CALL.head):
        raise AssertionError(f"{rig.label}: the call was not forwarded")
    request_response(rig, CALL, DIRTY, ("call", "dirty"), False)
    cleaned = b"[REDACTED:github]" in rig.client.last and b"\\u001b" not in rig.client.last
    if cleaned != rig.policy:
        raise AssertionError(f"{rig.label}: the dirty result was {'' if cleaned else 'not '}cleaned")


async def measure(rounds: int, warmup: int, tmp: Path) -> list[Rig]:
    rigs = [make_rig(tmp, payloads, policy) for payloads, policy in CONFIGS]
    for rig in rigs:
        check(rig)  # also the first tools/list: pins taken, checkers compiled
        for index in range(warmup):
            one_round(rig, index, keep=False)
    done, rotation = 0, 0
    while done < rounds:
        block = min(BLOCK, rounds - done)
        for rig in rigs[rotation:] + rigs[:rotation]:
            for index in range(done, done + block):
                one_round(rig, index, keep=True)
        done += block
        rotation = (rotation + 1) % len(rigs)
        await asyncio.sleep(0)  # the loop's turn: cancelled call_timeout timers are cleaned up
    for rig in rigs:
        check(rig)
        rig.log.close()
    return rigs


# ---- figures ----------------------------------------------------------------


def measured_source() -> dict[str, str]:
    """Which code was measured: where mcpbox was imported from, and a digest of the relay and policy
    sources there, so figures taken while the tree has uncommitted edits can still be told apart."""
    package = Path(mcpbox.__file__).resolve().parent
    files = sorted([*(package / "policy").glob("*.py"), package / "relay" / "pump.py", package / "jsonrpc.py"])
    files += [package / "relay" / "framing.py", package / "logs" / "writer.py"]
    sha = hashlib.sha256()
    for path in files:
        sha.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return {"package": str(package), "sha256": sha.hexdigest()}


# Read when this module is imported, right after mcpbox's modules: what was loaded, as near as can be told.
SOURCE = measured_source()


def percentile(values: list[int], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)])


def stats_us(values: list[int]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50) / 1000,
        "p95": percentile(values, 95) / 1000,
        "mean": statistics.fmean(values) / 1000,
    }


def run(rounds: int, warmup: int) -> dict[str, Any]:
    """Figures in microseconds per message: by payloads mode, then message kind, then off/on/added."""
    assert not output.might_need_cleaning(RESULT.line(1)), "the clean result must pass the byte-level pre-check"
    assert output.might_need_cleaning(DIRTY.line(1))
    with tempfile.TemporaryDirectory(prefix="mcpbox-bench-policy-") as tmp:
        started = time.perf_counter()
        rigs = asyncio.run(measure(rounds, warmup, Path(tmp)))
        seconds = time.perf_counter() - started
    by: dict[tuple[str, bool], Rig] = {(rig.payloads, rig.policy): rig for rig in rigs}
    figures: dict[str, Any] = {}
    for payloads in ("full", "metadata"):
        kinds: dict[str, Any] = {}
        for key, label in KINDS:
            off, on = stats_us(by[payloads, False].samples[key]), stats_us(by[payloads, True].samples[key])
            added = {stat: on[stat] - off[stat] for stat in ("p50", "p95", "mean")}
            kinds[key] = {"label": label, "off": off, "on": on, "added": added}
        figures[payloads] = kinds
    return {
        "rounds": rounds,
        "warmup": warmup,
        "block": BLOCK,
        "relist_every": RELIST_EVERY,
        "profile": PROFILE,
        "source": SOURCE,
        "seconds": seconds,
        "us_per_message": figures,
    }


def round_trip(kinds: dict[str, Any], request: str, response: str) -> float:
    return float(kinds[request]["added"]["p50"] + kinds[response]["added"]["p50"])


def lines(results: dict[str, Any]) -> list[str]:
    out = [
        f"(f) policy chain, in-process (no Docker): real Relay + SessionLog fed in memory, policy off vs on; "
        f"{results['rounds']} rounds after {results['warmup']} warm-up, blocks of {results['block']} rotated "
        f"among 4 relays, tools/list every {results['relist_every']} rounds; {results['seconds']:.0f} s",
        f"    measured: {results['source']['package']}, relay+policy sources sha256 {results['source']['sha256'][:12]}",
        "    microseconds per message (perf_counter_ns around one feed_client/feed_server call)",
    ]
    for payloads, kinds in results["us_per_message"].items():
        out.append(f"    payloads: {payloads:34}{'policy off':>16}{'policy on':>16}{'added':>18}")
        out.append(f"    {'':44}{'p50':>8}{'p95':>8}{'p50':>8}{'p95':>8}{'p50':>9}{'p95':>9}")
        for row in kinds.values():
            off, on, added = row["off"], row["on"], row["added"]
            out.append(
                f"      {row['label']:42}{off['p50']:8.1f}{off['p95']:8.1f}{on['p50']:8.1f}{on['p95']:8.1f}"
                f"{added['p50']:+9.1f}{added['p95']:+9.1f}"
            )
        trips = {"tools/call clean": ("call", "result"), "rewritten": ("call", "dirty"), "ping": ("ping", "pong"),
                 "tools/list": ("list", "listed")}  # fmt: skip
        summed = ", ".join(f"{name} {round_trip(kinds, *keys):+.1f}" for name, keys in trips.items())
        out.append(f"      added per round trip (the two p50s summed): {summed}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} rounds instead of {ROUNDS}")
    parser.add_argument("--rounds", type=int, help="measured rounds per relay")
    parser.add_argument("--output", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    warmup = QUICK_WARMUP_ROUNDS if args.quick else WARMUP_ROUNDS
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()[1::2]
    if Path(mcpbox.__file__).resolve().parent != ROOT / "src" / "mcpbox":
        commit += f", but mcpbox imported from {Path(mcpbox.__file__).parent}"
    elif changed:
        commit += f"+uncommitted {', '.join(changed)}"
    load_before = [round(x, 2) for x in os.getloadavg()]
    results = run(rounds, warmup)
    load_after = [round(x, 2) for x in os.getloadavg()]
    print(
        f"mcpbox policy-chain bench ({commit}), Python {platform.python_version()}, {os.cpu_count()} CPUs "
        f"{platform.machine()}; load average before / after: {load_before} / {load_after}"
    )
    print("\n".join(lines(results)))
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
