"""The network allow-list end to end: `mcpbox run` with `network: {allow: [...]}`, the real SDK client,
and a hostile server whose own code tries every way out.

Everything the tests talk to is theirs and on this machine: a Docker network of their own
with a non-private subnet (198.18.0.0/15 is the benchmarking range, so names resolving there
pass the rebind check that private answers fail), target servers and a test DNS server that
logs every query it receives. No traffic goes to any outside address.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from tests.conftest import MCPBOX, Home, RawClient, hostile_profile, read_log, sdk_client, wait_until_gone

pytestmark = pytest.mark.docker

BASE = "mcpbox/base:bookworm"
LABEL = "mcpbox-test-network"
# A target: an HTTP server, a TCP echo and a UDP echo that records what it receives.
TARGET = r"""
import http.server, socket, socketserver, sys, threading
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("", 7000)); s.listen()
    while True:
        c, _ = s.accept(); c.sendall(c.recv(256)); c.close()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", 7001))
    while True:
        data, peer = s.recvfrom(256); print("udp", peer[0], data, flush=True); s.sendto(data, peer)
threading.Thread(target=tcp, daemon=True).start(); threading.Thread(target=udp, daemon=True).start()
http.server.ThreadingHTTPServer(("", 8080), http.server.SimpleHTTPRequestHandler).serve_forever()
"""
# A DNS server for the tests' names: A records from argv (name=ip ...), NXDOMAIN for the rest; logs each query.
DNS = r"""
import socket, sys
names = dict(arg.split("=") for arg in sys.argv[1:])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", 53))
while True:
    q, peer = s.recvfrom(512)
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1 : i + 1 + q[i]].decode()); i += 1 + q[i]
    name, qtype = ".".join(labels).lower(), q[i + 1 : i + 3]
    print("query", name, qtype.hex(), flush=True)
    ip = names.get(name)
    flags, answers = (b"\x81\x80", 1) if ip and qtype == b"\x00\x01" else ((b"\x81\x80", 0) if ip else (b"\x81\x83", 0))
    head = q[:2] + flags + b"\x00\x01" + answers.to_bytes(2, "big") + b"\x00\x00\x00\x00"
    body = q[12 : i + 5]
    if answers:
        body += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04" + socket.inet_aton(ip)
    s.sendto(head + body, peer)
"""


@dataclass
class Lab:
    network: str
    subnet: str
    gateway: str
    web: str  # listed, by name
    other: str  # never listed
    dns: str
    containers: dict[str, str]

    def logs(self, api: Any, which: str) -> str:
        return str(api.logs(self.containers[which]).decode())


@pytest.fixture(scope="module")
def lab(docker_api: Any) -> Iterator[Lab]:
    tag = secrets.token_hex(3)
    third = 18 * 256 + int(tag[:2], 16) % 250  # 198.18.x.0/24 or 198.19.x.0/24: one of our own each run
    subnet = f"198.{third // 256}.{third % 256}.0/24"
    prefix = subnet.rsplit(".", 1)[0]
    name = f"mcpbox-test-{tag}"
    ipam = {"Driver": "default", "Config": [{"Subnet": subnet, "Gateway": f"{prefix}.1"}]}
    docker_api.create_network(name, driver="bridge", ipam=ipam, labels={LABEL: tag})
    addresses = {"web": f"{prefix}.10", "other": f"{prefix}.11", "dns": f"{prefix}.53"}
    containers: dict[str, str] = {}
    try:
        for role, ip in addresses.items():
            code = DNS if role == "dns" else TARGET
            args = [f"web.mcpbox.test={addresses['web']}", f"other.mcpbox.test={addresses['other']}"]
            config = docker_api.create_networking_config({name: docker_api.create_endpoint_config(ipv4_address=ip)})
            created = docker_api.create_container(
                BASE,
                ["python3", "-u", "-c", code, *(args if role == "dns" else [])],
                labels={LABEL: tag},
                networking_config=config,
                host_config=docker_api.create_host_config(network_mode=name),
            )
            containers[role] = created["Id"]
            docker_api.start(created["Id"])
        time.sleep(1)  # the servers bind their ports
        yield Lab(name, subnet, f"{prefix}.1", addresses["web"], addresses["other"], addresses["dns"], containers)
    finally:
        for cid in containers.values():
            docker_api.remove_container(cid, force=True)
        docker_api.remove_network(name)


def allow_profile(home: Home, lab: Lab, name: str = "netted") -> str:
    return hostile_profile(
        home,
        name,
        # A proxy that does not exist: clients that honour it fail, the probe's HTTP client ignores it.
        env={"http_proxy": "http://198.18.255.250:3128", "HTTPS_PROXY": "http://198.18.255.250:3128"},
        network={
            "allow": ["web.mcpbox.test:7000", "web.mcpbox.test:8080", f"{lab.web}:7002"],
            "dns": [lab.dns],
            "docker_networks": [lab.network],
        },
    )


async def probes(home: Home, profile: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = []
    with anyio.fail_after(180):
        async with sdk_client(profile, home) as client:
            for arguments in calls:
                result = await client.call_tool("net_probe", arguments)
                results.append(json.loads(result.content[0].text))
    return results


def test_only_listed_destinations_are_reached_and_the_rest_fail_fast(
    home: Home, lab: Lab, docker_clean: Any, docker_api: Any
) -> None:
    profile = allow_profile(home, lab)
    calls = {
        "resolve listed": {"what": "resolve", "host": "web.mcpbox.test", "port": 7000},
        "tcp listed": {"what": "tcp", "host": "web.mcpbox.test", "port": 7000},
        "http listed, proxy env ignored": {"what": "http", "host": "web.mcpbox.test", "port": 8080},
        "tcp unlisted port": {"what": "tcp", "host": lab.web, "port": 8081, "timeout": 10},
        "tcp unlisted host": {"what": "tcp", "host": lab.other, "port": 7000, "timeout": 10},
        "tcp gateway": {"what": "tcp", "host": lab.gateway, "port": 22, "timeout": 10},
        "tcp metadata": {"what": "tcp", "host": "169.254.169.254", "port": 80, "timeout": 10},
        "resolve unlisted": {"what": "resolve", "host": "other.mcpbox.test", "port": 7000},
        "udp to a listed host": {"what": "udp", "host": lab.web, "port": 7001, "timeout": 2},
        "dns past the resolver": {"what": "dns_direct", "host": lab.dns, "port": 53, "name": "x.mcpbox.test"},
        "docker's resolver": {"what": "dns_direct", "host": "127.0.0.11", "port": 53, "name": "y.mcpbox.test"},
    }
    results = dict(zip(calls, anyio.run(probes, home, profile, list(calls.values())), strict=True))
    assert results["resolve listed"]["addresses"] == [lab.web], results["resolve listed"]
    assert results["tcp listed"]["reply"] == "mcpbox-probe\n", results["tcp listed"]
    assert results["http listed, proxy env ignored"]["status"] == 200, results["http listed, proxy env ignored"]
    for refused in ("tcp unlisted port", "tcp unlisted host", "tcp gateway", "tcp metadata"):
        outcome = results[refused]
        assert outcome["outcome"] == "error" and outcome["seconds"] < 2, (refused, outcome)  # refused, not hung
    assert results["resolve unlisted"]["outcome"] == "error", results["resolve unlisted"]
    for blocked in ("udp to a listed host", "dns past the resolver"):
        assert results[blocked]["outcome"] != "ok", (blocked, results[blocked])
    # Docker's resolver address is answered by the allow-list's own resolver: NXDOMAIN (rcode 3), nothing forwarded.
    assert int(results["docker's resolver"]["reply"][6:8], 16) & 0x0F == 3, results["docker's resolver"]
    dns_log = lab.logs(docker_api, "dns")
    assert "query web.mcpbox.test" in dns_log  # the control: the test DNS server does log what reaches it
    assert "other.mcpbox.test" not in dns_log and "x.mcpbox.test" not in dns_log and "y.mcpbox" not in dns_log
    assert "udp" not in lab.logs(docker_api, "web")
    # Every attempt is in the session log, with its destination and verdict.
    (log_path,) = home.session_logs()
    net = [r for r in read_log(log_path) if r.get("event") == "net"]
    text = json.dumps(net)
    assert f"{lab.other}:7000" in text and "169.254.169.254:80" in text and "other.mcpbox.test" in text, net
    assert any(r.get("verdict") == "allow" for r in net) and any(r.get("verdict") == "refuse" for r in net)


@pytest.mark.parametrize("end", ["client closes", "SIGTERM", "SIGKILL of mcpbox", "server crash", "mcpbox stop"])
def test_nothing_of_the_egress_side_outlives_the_session(
    home: Home, lab: Lab, docker_clean: Any, raw_clients: list[RawClient], end: str
) -> None:
    docker_api = docker_clean
    profile = allow_profile(home, lab, "netted-end")
    client = RawClient(profile, home)
    raw_clients.append(client)
    assert "result" in client.initialize()
    (log_path,) = home.session_logs()
    session = log_path.stem
    assert docker_api.networks(names=[f"mcpbox-net-{session}"]), "the session's network exists while it runs"
    if end == "client closes":
        client.close_stdin()
        client.wait()
    elif end == "SIGTERM":
        client.proc.send_signal(signal.SIGTERM)
        client.wait()
    elif end == "mcpbox stop":
        subprocess.run([MCPBOX, "stop", session], env=home.full_env(), check=True, timeout=60, capture_output=True)
        client.wait()
    elif end == "server crash":
        client.send({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "crash", "arguments": {}}})
        client.wait()
    else:
        client.proc.send_signal(signal.SIGKILL)
        client.wait()
    assert wait_until_gone(docker_api, session, timeout=30) == []
    deadline = time.monotonic() + 30
    while docker_api.networks(names=[f"mcpbox-net-{session}"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert docker_api.networks(names=[f"mcpbox-net-{session}"]) == []


def test_a_refused_start_leaves_no_egress_side(home: Home, lab: Lab, docker_clean: Any) -> None:
    docker_api = docker_clean
    hostile_profile(
        home, "netted-bad", network={"allow": ["web.mcpbox.test:7000"], "docker_networks": ["mcpbox-no-such-net"]}
    )
    client = RawClient("netted-bad", home)
    try:
        answer = client.initialize()
        assert (
            "mcpbox-no-such-net" in answer["error"]["message"] and "docker network create" in answer["error"]["message"]
        )
        client.wait()
    finally:
        client.kill()
    (log_path,) = home.session_logs()
    assert wait_until_gone(docker_api, log_path.stem) == []
    assert docker_api.networks(names=[f"mcpbox-net-{log_path.stem}"]) == []


def test_logs_show_lists_the_network_records(home: Home, lab: Lab, docker_clean: Any) -> None:
    profile = allow_profile(home, lab, "netted-show")
    anyio.run(probes, home, profile, [{"what": "tcp", "host": lab.other, "port": 7000, "timeout": 5}])
    (log_path,) = home.session_logs()
    shown = subprocess.run(
        [MCPBOX, "logs", "show", log_path.stem], env=home.full_env(), capture_output=True, text=True, check=True
    ).stdout
    assert "net" in shown and f"{lab.other}:7000" in shown and "refuse" in shown, shown


def test_gc_removes_a_network_whose_session_is_gone(home: Home, docker_clean: Any) -> None:
    from mcpbox.sandbox.owners import this_host
    from mcpbox.sandbox.spec import Owner, labels

    session = f"gone-{secrets.token_hex(3)}"
    owner = Owner(session=session, pid=999_999_999, started=1.0, host=this_host())  # no such process
    name = f"mcpbox-net-{session}"
    docker_clean.create_network(name, driver="bridge", labels=labels(owner, "netted"))
    try:
        done = subprocess.run([MCPBOX, "gc", "--json"], env=home.full_env(), capture_output=True, text=True, check=True)
        assert session in done.stdout
        assert docker_clean.networks(names=[name]) == []
    finally:
        if docker_clean.networks(names=[name]):
            docker_clean.remove_network(name)


def test_the_session_ends_when_its_egress_side_dies(
    home: Home, lab: Lab, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    profile = allow_profile(home, lab, "netted-dies")
    client = RawClient(profile, home)
    raw_clients.append(client)
    assert "result" in client.initialize()
    (log_path,) = home.session_logs()
    session = log_path.stem
    docker_clean.kill(f"mcpbox-egress-{session}")  # the network side goes away under a running session
    assert client.wait(timeout=30) != 0  # the session ends, as after a server crash; it does not hang
    assert any(r.get("event") == "egress_exited" for r in read_log(log_path))
    assert wait_until_gone(docker_clean, session, timeout=30) == []
    assert docker_clean.networks(names=[f"mcpbox-net-{session}"]) == []
