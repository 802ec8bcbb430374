"""What the network allow-list costs: connection set-up through it vs an unrestricted bridge,
and what starting the egress side adds to a session.

Everything is on this machine: a bridge network of the bench's own (198.18.0.0/15, the
benchmarking range), a TCP echo target and a small DNS server on it. Two clients run the same
timing loop in a container from `mcpbox/base:bookworm`, as uid 65534 with no capability:

- ``bridge``: on the bench network directly, no rules (what `docker run --network X` gives);
- ``allow-list``: in the namespace of a real egress container made by
  `mcpbox.sandbox.egress.egress_body`, with the target listed by address and by name.

Each loop times, one at a time, N TCP connects with a 1-byte echo (by address), and N
resolve-then-connect round trips (by name: through Docker's resolver on the bridge, through
the allow-list's resolver, which forwards every query since its cache is off).

Separately: the egress side's start-up, as `mcpbox run` does it (create the session network,
create the egress container, start it, wait for its ready line), timed N times.

    .venv/bin/python bench/network_cost.py [--quick]

`bench/run.py` (`make bench`) runs it too, as section (h).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from typing import Any

import docker

from mcpbox.profile.model import Destination, Network
from mcpbox.sandbox import egress
from mcpbox.sandbox.spec import Owner

BASE = "mcpbox/base:bookworm"
LABEL = "mcpbox-bench"
CONNECTS = 300
QUICK_CONNECTS = 50
STARTS = 5
QUICK_STARTS = 2
TARGET = r"""
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("", 7000)); s.listen(64)
def serve(c):
    with c:
        c.sendall(c.recv(1))
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
"""
DNS = r"""
import socket, sys
ip = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", 53))
while True:
    q, peer = s.recvfrom(512)
    i = 12
    while q[i]:
        i += 1 + q[i]
    a = q[i + 1 : i + 3] == b"\x00\x01"
    head = q[:2] + b"\x81\x80\x00\x01" + (b"\x00\x01" if a else b"\x00\x00") + b"\x00\x00\x00\x00"
    body = q[12 : i + 5] + (b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04" + socket.inet_aton(ip) if a else b"")
    s.sendto(head + body, peer)
"""
CLIENT = r"""
import json, socket, sys, time
host, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def once(target):
    start = time.perf_counter()
    address = socket.getaddrinfo(target, 7000, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    with socket.create_connection((address, 7000), timeout=5) as c:
        c.sendall(b"x"); c.recv(1)
    return (time.perf_counter() - start) * 1e6
for target in (host, name):
    once(target)  # warm-up
print(json.dumps({"by_address": [once(host) for _ in range(n)], "by_name": [once(name) for _ in range(n)]}))
"""


def _run(api: Any, command: list[str], **host: Any) -> str:
    cid = api.create_container(BASE, command, user="65534:65534", labels={LABEL: "network"},
                               host_config=api.create_host_config(cap_drop=["ALL"], **host))["Id"]  # fmt: skip
    try:
        api.start(cid)
        api.wait(cid, timeout=300)
        return str(api.logs(cid, stderr=False).decode())
    finally:
        api.remove_container(cid, force=True)


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_us": statistics.median(ordered), "p95_us": ordered[int(len(ordered) * 0.95) - 1]}


def run(connects: int = CONNECTS, starts: int = STARTS) -> dict[str, Any]:
    api = docker.APIClient(version="auto")
    tag = secrets.token_hex(3)
    prefix = f"198.19.{int(tag[:2], 16) % 250}"
    lab = f"mcpbox-bench-{tag}"
    ipam: Any = {"Driver": "default", "Config": [{"Subnet": f"{prefix}.0/24"}]}  # the SDK's IPAMConfig is a dict
    api.create_network(lab, driver="bridge", labels={LABEL: tag}, ipam=ipam)
    made: list[str] = []
    try:
        for name, ip, code, args in (("target", ".10", TARGET, []), ("dns", ".53", DNS, [f"{prefix}.10"])):
            endpoint = api.create_endpoint_config(ipv4_address=prefix + ip)
            config = api.create_networking_config({lab: endpoint})  # type: ignore[arg-type]
            host = api.create_host_config(network_mode=lab)
            command = ["python3", "-c", code, *args]
            cid = api.create_container(
                BASE, command, labels={LABEL: tag}, name=f"{lab}-{name}", networking_config=config, host_config=host
            )["Id"]
            made.append(cid)
            api.start(cid)
        time.sleep(1)
        bridge = json.loads(_run(api, ["python3", "-c", CLIENT, f"{prefix}.10", f"{lab}-target", str(connects)],
                                 network_mode=lab))  # fmt: skip
        network = Network(
            allow=(Destination("ip", f"{prefix}.10", 7000, f"{prefix}.10:7000"),
                   Destination("name", "target.bench.test", 7000, "target.bench.test:7000")),
            dns=(f"{prefix}.53",),
            docker_networks=(lab,),
        )  # fmt: skip
        owner = Owner(session=f"bench-{tag}", pid=0, started=0.0, host="bench")
        start_times, allow = [], None
        for _ in range(starts):
            begin = time.perf_counter()
            api.create_network(egress.session_network(owner.session), driver="bridge", labels={LABEL: tag})
            body = egress.egress_body(network, owner, "bench")
            cid = api.create_container_from_config(body, name=f"{lab}-egress")["Id"]  # type: ignore[no-untyped-call]
            api.connect_container_to_network(cid, lab)
            lines = api.attach(cid, stdout=True, stderr=True, stream=True, logs=False)
            api.start(cid)
            for chunk in lines:
                if egress.READY in chunk:
                    break
            start_times.append((time.perf_counter() - begin) * 1000)
            if allow is None:
                out = _run(api, ["python3", "-c", CLIENT, f"{prefix}.10", "target.bench.test", str(connects)],
                           network_mode=f"container:{cid}")  # fmt: skip
                allow = json.loads(out)
            api.remove_container(cid, force=True)
            api.remove_network(egress.session_network(owner.session))
        assert allow is not None
    finally:
        for cid in made:
            api.remove_container(cid, force=True)
        api.remove_network(lab)
    return {
        "connects": connects,
        "bridge": {key: _summary(values) for key, values in bridge.items()},
        "allow-list": {key: _summary(values) for key, values in allow.items()},
        "egress_start_ms": {"median": statistics.median(start_times), "min": min(start_times), "n": len(start_times)},
    }


def lines(result: dict[str, Any]) -> list[str]:
    out = [f"(h) network: TCP set-up incl. a 1-byte echo, {result['connects']} each, in a container as uid 65534"]
    for key, label in (("by_address", "by address"), ("by_name", "resolve + connect")):
        bridge, allow = result["bridge"][key], result["allow-list"][key]
        out.append(
            f"    {label:<18} bridge p50 {bridge['p50_us']:7.0f} us p95 {bridge['p95_us']:7.0f}   "
            f"allow-list p50 {allow['p50_us']:7.0f} us p95 {allow['p95_us']:7.0f}   "
            f"added p50 {allow['p50_us'] - bridge['p50_us']:+.0f} us"
        )
    start = result["egress_start_ms"]
    out.append(f"    egress side start (network + container + ready): median {start['median']:.0f} ms, "
               f"min {start['min']:.0f} ms ({start['n']} runs)")  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result = run(QUICK_CONNECTS if args.quick else CONNECTS, QUICK_STARTS if args.quick else STARTS)
    print("\n".join(lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
