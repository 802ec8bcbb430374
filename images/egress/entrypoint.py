"""The egress container's process: install the rules, start the resolver, report what the rules see.

Its configuration comes from mcpbox (src/mcpbox/sandbox/egress.py) in the environment, rendered
there so that `mcpbox run --dry-run` shows the exact ruleset and resolver configuration:

  MCPBOX_EGRESS_NFT      the nftables ruleset (one `inet` table; Docker's own tables are left alone)
  MCPBOX_EGRESS_DNSMASQ  dnsmasq's configuration file
  MCPBOX_EGRESS_ENTRIES  JSON list of the allow entries, so a log line can name the entry it matched

Order matters: rules first, then the log reader (so no verdict is missed), then the resolver;
only then "mcpbox-egress: ready", after which mcpbox creates the server in this namespace.
Every line this process prints about traffic starts with "mcpbox-egress: " and carries JSON;
dnsmasq's own query log goes to stderr as dnsmasq writes it.

Standard library only: it runs on the image's python3 with no virtualenv.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import NoReturn

PREFIX = "mcpbox-egress: "
RUN = Path("/run/egress")
LOG_GROUP = 7  # mirrors mcpbox.sandbox.egress.LOG_GROUP
RESOLVER_WAIT = 10.0

# nfnetlink_log (linux/netfilter/nfnetlink_log.h)
NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET = 0
NFULNL_MSG_CONFIG = 1
NFULA_CFG_CMD = 1
NFULA_CFG_MODE = 2
NFULA_CFG_QTHRESH = 4
NFULNL_CFG_CMD_BIND = 1
NFULNL_COPY_PACKET = 2
NFULA_PAYLOAD = 9
NFULA_PREFIX = 10
NFULA_UID = 11
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
COPY_RANGE = 96  # an IPv6 header and the first bytes of TCP/UDP/ICMP: addresses and ports

PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}


def say(fields: dict[str, object]) -> None:
    sys.stdout.write(PREFIX + json.dumps(fields, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def fail(message: str) -> NoReturn:
    sys.stderr.write(f"{PREFIX}error: {message}\n")
    sys.stderr.flush()
    sys.exit(1)


def _attr(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * (-length % 4)


def _config(sock: socket.socket, seq: int, attrs: bytes) -> None:
    """One NFULNL_MSG_CONFIG request for our group, and the kernel's acknowledgement."""
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(LOG_GROUP)) + attrs
    kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
    sock.send(struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body)
    reply = sock.recv(4096)
    _, kind, _, _, _ = struct.unpack_from("=IHHII", reply)
    code = struct.unpack_from("=i", reply, 16)[0] if kind == NLMSG_ERROR else 0
    if code:
        fail(f"cannot bind the nflog group {LOG_GROUP}: {os.strerror(-code)}")


def open_log() -> socket.socket:
    """The netlink socket the kernel copies every logged packet's headers to (nft `log group`)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((0, 0))
    _config(sock, 1, _attr(NFULA_CFG_CMD, struct.pack("=B", NFULNL_CFG_CMD_BIND)))
    _config(sock, 2, _attr(NFULA_CFG_MODE, struct.pack(">IBB", COPY_RANGE, NFULNL_COPY_PACKET, 0)))
    # One packet per message: a verdict is reported when it happens, not when a batch fills.
    _config(sock, 3, _attr(NFULA_CFG_QTHRESH, struct.pack(">I", 1)))
    return sock


def _endpoint(family: int, raw: bytes, port: int | None) -> str:
    address = str(ipaddress.ip_address(raw))
    if port is None:
        return address
    return f"[{address}]:{port}" if family == socket.AF_INET6 else f"{address}:{port}"


def describe(family: int, payload: bytes) -> dict[str, object]:
    """Protocol, source and destination of an IP packet's first bytes."""
    if family == socket.AF_INET and len(payload) >= 20:
        header = (payload[0] & 0x0F) * 4
        number, src, dst = payload[9], payload[12:16], payload[16:20]
    elif family == socket.AF_INET6 and len(payload) >= 40:
        header = 40
        number, src, dst = payload[6], payload[8:24], payload[24:40]
    else:
        return {"proto": "unknown"}
    proto = PROTOCOLS.get(number, str(number))
    sport = dport = None
    if proto in ("tcp", "udp") and len(payload) >= header + 4:
        sport, dport = struct.unpack_from(">HH", payload, header)
    return {"proto": proto, "src": _endpoint(family, src, sport), "dest": _endpoint(family, dst, dport)}


def packets(data: bytes) -> list[tuple[int, dict[int, bytes]]]:
    """The (family, attributes) of each nflog packet message in one netlink read."""
    found = []
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _, _, _ = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        if kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET and length >= 20:
            family = data[offset + 16]
            attrs: dict[int, bytes] = {}
            position = offset + 20
            while position + 4 <= offset + length:
                size, number = struct.unpack_from("=HH", data, position)
                if size < 4:
                    break
                attrs[number & 0x3FFF] = data[position + 4 : position + size]
                position += (size + 3) & ~3
            found.append((family, attrs))
        offset += (length + 3) & ~3
    return found


def record(family: int, attrs: dict[int, bytes], entries: list[str]) -> dict[str, object]:
    # The rule's log prefix: "allow <entry index>" or "refuse <reason>".
    verdict, _, detail = attrs.get(NFULA_PREFIX, b"").rstrip(b"\0").decode("ascii", "replace").partition(" ")
    fields: dict[str, object] = {"kind": "connect", **describe(family, attrs.get(NFULA_PAYLOAD, b""))}
    fields["verdict"] = verdict or "unknown"
    if verdict == "allow" and detail.isdigit() and int(detail) < len(entries):
        fields["entry"] = entries[int(detail)]
    elif detail:
        fields["reason"] = detail
    if NFULA_UID in attrs:
        fields["uid"] = struct.unpack(">I", attrs[NFULA_UID][:4])[0]
    return fields


def load_rules(ruleset: str) -> None:
    path = RUN / "rules.nft"
    path.write_text(ruleset, encoding="utf-8")
    result = subprocess.run(["/usr/sbin/nft", "-f", str(path)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        fail(f"nft refused the ruleset: {result.stderr.strip()}")


def resolver_listening() -> bool:
    """dnsmasq has bound 127.0.0.1:53 (UDP), so the server's first query finds it."""
    try:
        table = Path("/proc/net/udp").read_text(encoding="ascii")
    except OSError:
        return False
    return any(line.split()[1] == "0100007F:0035" for line in table.splitlines()[1:] if len(line.split()) > 1)


def start_resolver(config: str) -> subprocess.Popen[bytes]:
    path = RUN / "dnsmasq.conf"
    path.write_text(config, encoding="utf-8")
    # Its stderr is ours: its query log reaches mcpbox line by line, interleaved with ours.
    resolver = subprocess.Popen(
        ["/usr/sbin/dnsmasq", "--keep-in-foreground", f"--conf-file={path}"], stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + RESOLVER_WAIT
    while not resolver_listening():
        if resolver.poll() is not None:
            fail(f"dnsmasq exited with status {resolver.returncode}")
        if time.monotonic() > deadline:
            fail(f"dnsmasq did not listen on 127.0.0.1:53 within {RESOLVER_WAIT:.0f} s")
        time.sleep(0.02)
    return resolver


def main() -> None:
    ruleset = os.environ.get("MCPBOX_EGRESS_NFT")
    config = os.environ.get("MCPBOX_EGRESS_DNSMASQ")
    if not ruleset or not config:
        fail("MCPBOX_EGRESS_NFT and MCPBOX_EGRESS_DNSMASQ must be set (mcpbox sets them)")
    entries = json.loads(os.environ.get("MCPBOX_EGRESS_ENTRIES", "[]"))
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    load_rules(ruleset)
    log = open_log()
    resolver = start_resolver(config)
    sys.stdout.write(PREFIX + "ready\n")
    sys.stdout.flush()

    selector = selectors.DefaultSelector()
    selector.register(log, selectors.EVENT_READ)
    while not stopping and resolver.poll() is None:
        if not selector.select(timeout=0.5):
            continue
        try:
            data = log.recv(1 << 16)
        except OSError as error:
            if error.errno != errno.ENOBUFS:
                raise
            # The kernel dropped log messages it could not queue; say so rather than pretend.
            say({"kind": "connect", "verdict": "unknown", "reason": "log overrun: some attempts were not reported"})
            continue
        for family, attrs in packets(data):
            say(record(family, attrs, entries))
    if resolver.poll() is None:
        resolver.terminate()
        resolver.wait(timeout=5)
    elif not stopping:
        # Without the resolver the server would hang on every lookup: end, so the session sees it.
        fail(f"dnsmasq exited with status {resolver.returncode}")


if __name__ == "__main__":
    main()
