"""The egress container on a real engine, without `mcpbox run`: a lab network of our own.

On a bridge network in the benchmark range 198.18.0.0/15 (not private, so names resolving
there pass the rebind check) run: two target containers (HTTP and TCP/UDP echo servers), a test
DNS server that knows `*.mcpbox.test` and logs every query it receives, the egress container
from `egress_body`, and a probe in the egress container's namespace as the server would be:
uid 65534, no capability. The probe tries everything once and reports; each test checks one
behaviour in that report, in the egress container's output, or in the DNS server's log.
Nothing leaves the lab network: every name is under .test and the only resolver is ours.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from docker.utils.socket import STDERR, STDOUT, frames_iter

from mcpbox.profile.model import Destination, Network
from mcpbox.sandbox.egress import EGRESS_IMAGE, READY, egress_body, parse_line, session_network
from mcpbox.sandbox.owners import current_owner
from mcpbox.sandbox.spec import LABEL_ROLE, Owner

pytestmark = pytest.mark.docker

BASE_IMAGE = "mcpbox/base:bookworm"
LAB_LABEL = "mcpbox.test.egress"
FAST = 2.0  # seconds: a refusal must come this fast (a dropped SYN would take minutes)

# The test DNS server: A records for a few .test names, NXDOMAIN for the rest, and one log
# line per query received, so a test can prove a name never reached it.
DNS_SERVER = r"""
import json, os, socket, struct, sys
records = json.loads(os.environ["RECORDS"])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", 53))
print("dns: listening", flush=True)
while True:
    data, peer = sock.recvfrom(4096)
    labels, pos = [], 12
    while data[pos]:
        labels.append(data[pos + 1 : pos + 1 + data[pos]].decode())
        pos += 1 + data[pos]
    name = ".".join(labels).lower()
    qtype = struct.unpack_from(">H", data, pos + 1)[0]
    question = data[12 : pos + 5]
    print("dns: query", name, qtype, flush=True)
    answers = b""
    count = 0
    if name in records and qtype == 1:
        answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 1, 4) + socket.inet_aton(records[name])
        count = 1
    rcode = 0 if name in records else 3
    header = struct.pack(">HHHHHH", struct.unpack_from(">H", data)[0], 0x8180 | rcode, 1, count, 0, 0)
    sock.sendto(header + question + answers, peer)
"""

# TCP and UDP echo servers; the UDP one logs what it receives, so a test can prove nothing came.
ECHO_SERVER = r"""
import socket, threading
def tcp(port):
    srv = socket.create_server(("0.0.0.0", port))
    while True:
        conn, _ = srv.accept()
        conn.sendall(conn.recv(1024))
        conn.close()
def udp(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    while True:
        data, peer = sock.recvfrom(1024)
        print("udp: received", data.decode(errors="replace"), flush=True)
        sock.sendto(data, peer)
threading.Thread(target=udp, args=(7001,), daemon=True).start()
print("echo: listening", flush=True)
tcp(7000)
"""

# Two HTTP servers in one container: a listed port and an unlisted one, both really listening.
HTTP_SERVERS = r"""
import http.server, threading
def serve(port):
    http.server.ThreadingHTTPServer(("0.0.0.0", port), http.server.SimpleHTTPRequestHandler).serve_forever()
threading.Thread(target=serve, args=(8081,), daemon=True).start()
print("http: listening", flush=True)
serve(8080)
"""

# Runs in the egress namespace as the server would; prints one JSON report.
PROBE = r"""
import errno, json, os, socket, struct, subprocess, time, urllib.request
lab = json.loads(os.environ["LAB"])
report = {}

def timed(fn):
    start = time.monotonic()
    try:
        result = {"ok": True, "value": fn()}
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "errno": getattr(exc, "errno", None)}
    result["seconds"] = round(time.monotonic() - start, 3)
    return result

def connect(host, port):
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"ping\n")
        return sock.recv(100).decode(errors="replace")

def resolve(name):
    return sorted({info[4][0] for info in socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)})

def query(server, name, port=53):
    # One raw A query over UDP on a connected socket, so an ICMP error surfaces as an exception.
    packet = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    packet += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect((server, port))
        sock.send(packet)
        reply = sock.recv(4096)
    return {"rcode": reply[3] & 0xF, "answers": struct.unpack_from(">H", reply, 6)[0]}

def udp(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect((host, port))
        sock.send(b"leak")
        return sock.recv(100).decode(errors="replace")

def http(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return response.status

def docker_dns_port():
    # Docker's resolver listens on 127.0.0.11 at a random port; /proc shows this namespace's sockets.
    for line in open("/proc/net/udp").read().splitlines()[1:]:
        local = line.split()[1]
        if local.startswith("0B00007F:"):
            return int(local.split(":")[1], 16)
    return None

def nft(*args):
    result = subprocess.run(["/usr/sbin/nft", *args], capture_output=True, text=True)
    return {"status": result.returncode, "stderr": result.stderr.strip()}

report["uid"] = os.getuid()
report["resolv_conf"] = open("/etc/resolv.conf").read()
report["resolve_listed"] = timed(lambda: resolve(lab["listed_name"]))
report["resolve_wildcard"] = timed(lambda: resolve(lab["wildcard_name"]))
report["resolve_unlisted"] = timed(lambda: resolve(lab["unlisted_name"]))
report["resolve_below_listed"] = timed(lambda: resolve("below." + lab["listed_name"]))
report["resolve_wildcard_apex"] = timed(lambda: resolve(lab["wildcard_apex"]))
report["resolve_private"] = timed(lambda: resolve(lab["private_name"]))
report["connect_listed"] = timed(lambda: connect(lab["listed_name"], 8080))
report["http_listed"] = timed(lambda: http(f"http://{lab['listed_name']}:8080/"))
report["connect_wildcard"] = timed(lambda: connect(lab["wildcard_name"], 7000))
report["connect_listed_ip"] = timed(lambda: connect(lab["other_ip"], 8081))
report["connect_unlisted_port"] = timed(lambda: connect(lab["web_ip"], 8081))
report["connect_unlisted_host"] = timed(lambda: connect(lab["other_ip"], 8080))
report["connect_listed_port_by_ip"] = timed(lambda: connect(lab["web_ip"], 8080))
report["connect_gateway"] = timed(lambda: connect(lab["gateway"], 80))
report["connect_metadata"] = timed(lambda: connect("169.254.169.254", 80))
report["udp_listed_host"] = timed(lambda: udp(lab["echo_ip"], 7001))
report["dns_upstream_direct"] = timed(lambda: query(lab["dns_ip"], lab["direct_name"]))
port = docker_dns_port()
report["docker_dns_port"] = port
report["docker_dns_direct"] = timed(lambda: query("127.0.0.11", lab["listed_name"], port))
report["docker_dns_container_name"] = timed(lambda: query("127.0.0.11", lab["other_container"]))
report["nft_list"] = nft("list", "ruleset")
report["nft_flush"] = nft("flush", "ruleset")
report["nft_add"] = nft("add", "rule", "inet", "mcpbox_egress", "output", "accept")
print(json.dumps(report))
"""


@dataclass
class Made:
    """Everything a test here creates on the engine, labelled with the run's tag; removed at the end."""

    api: Any
    tag: str
    containers: list[str] = field(default_factory=list)
    sockets: list[Any] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        return {LAB_LABEL: self.tag}

    def cleanup(self) -> None:
        for cid in reversed(self.containers):
            with contextlib.suppress(Exception):  # already gone: the egress container removes itself
                self.api.remove_container(cid, force=True)
        for attached in self.sockets:
            raw = getattr(attached, "_sock", attached)  # the SDK's SocketIO does not close its socket
            attached.close()
            raw.close()
        for network in self.networks:
            # Bounded: the engine may still be detaching a container that was just removed.
            deadline = time.monotonic() + 15
            while True:
                try:
                    self.api.remove_network(network)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)


@dataclass
class Egress:
    """A started egress container and its output so far, line by line."""

    id: str
    lines: list[bytes] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    def wait_for(self, text: bytes, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in list(self.lines)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


@dataclass
class Lab:
    """What the lab's run left to check: the probe's report and every component's output."""

    network: str
    report: dict[str, Any]
    egress: Egress
    dns_log: str
    echo_log: str
    ips: dict[str, str]
    egress_body: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)

    def connects(self, **match: Any) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kind"] == "connect" and all(r.get(k) == v for k, v in match.items())]

    def dns(self, **match: Any) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kind"] == "dns" and all(r.get(k) == v for k, v in match.items())]


def create_network(made: Made, name: str) -> str:
    """A bridge network on a free /24 of 198.18.0.0/15; its subnet prefix ("198.18.N.")."""
    for _ in range(20):
        block = random.randrange(512)  # noqa: S311 - spreading concurrent runs, not a secret
        prefix = f"198.{18 + block // 256}.{block % 256}."
        ipam = {"Driver": "default", "Config": [{"Subnet": prefix + "0/24", "Gateway": prefix + "1"}]}
        try:
            made.api.create_network(name, driver="bridge", ipam=ipam, labels=made.labels, check_duplicate=True)
        except Exception as exc:
            if "overlap" in str(exc).lower():
                continue
            raise
        made.networks.append(name)
        return prefix
    pytest.fail("no free /24 in 198.18.0.0/15 for the lab network")


def run_script(made: Made, name: str, *, network: str, ip: str, script: str, env: dict[str, str] | None = None) -> str:
    """A python3 script in a base-image container at a fixed address of the lab network."""
    api = made.api
    cid: str = api.create_container(
        BASE_IMAGE,
        ["python3", "-u", "-c", script],
        name=name,
        environment=env or {},
        labels=made.labels,
        networking_config=api.create_networking_config({network: api.create_endpoint_config(ipv4_address=ip)}),
        host_config=api.create_host_config(network_mode=network, cap_drop=["ALL"]),
    )["Id"]
    made.containers.append(cid)
    api.start(cid)
    return cid


def wait_for_log(api: Any, cid: str, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in api.logs(cid).decode(errors="replace"):
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} did not appear: {api.logs(cid).decode(errors='replace')}")
        time.sleep(0.05)


def start_egress(made: Made, body: dict[str, Any], name: str) -> Egress:
    """Create, attach (before start: the output is nowhere else, there is no log driver), start."""
    body["Labels"][LAB_LABEL] = made.tag
    cid: str = made.api.create_container_from_config(body, name=name)["Id"]
    made.containers.append(cid)
    attached = made.api.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1})
    made.sockets.append(attached)
    egress = Egress(cid)

    def read() -> None:
        pending = {STDOUT: b"", STDERR: b""}
        try:
            for number, chunk in frames_iter(attached, tty=False):  # type: ignore[no-untyped-call]
                *done, pending[number] = (pending[number] + chunk).split(b"\n")
                egress.lines.extend(done)
                if any(READY in line for line in done):
                    egress.ready.set()
        except (OSError, ValueError):
            pass  # closed at teardown
        finally:
            egress.ended.set()

    threading.Thread(target=read, daemon=True).start()
    made.api.start(cid)
    return egress


def owner(made: Made) -> Owner:
    # This process, with its real start time: a concurrent `mcpbox gc` (every `mcpbox run` starts one)
    # must see a live owner, not an orphan to remove in the middle of a test.
    return current_owner(f"egresstest-{made.tag}")


@pytest.fixture(scope="module")
def made(docker_api: Any) -> Iterator[Made]:
    for image in (BASE_IMAGE, EGRESS_IMAGE):
        try:
            docker_api.inspect_image(image)
        except Exception:
            pytest.fail(f"image {image} is missing; run scripts/setup.sh")
    made = Made(docker_api, uuid.uuid4().hex[:10])
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture(scope="module")
def lab(made: Made) -> Lab:
    api, tag = made.api, made.tag
    network = session_network(owner(made).session)  # where egress_body puts the egress container
    prefix = create_network(made, network)
    ips = {
        "gateway": prefix + "1",
        "web_ip": prefix + "10",
        "echo_ip": prefix + "11",
        "other_ip": prefix + "12",
        "dns_ip": prefix + "53",
    }
    names = {
        "listed_name": "target.mcpbox.test",
        "wildcard_name": "api.wild.mcpbox.test",
        "wildcard_apex": "wild.mcpbox.test",
        "unlisted_name": f"unlisted-{tag}.mcpbox.test",
        "direct_name": f"direct-{tag}.mcpbox.test",
        "private_name": "private.mcpbox.test",
        "other_container": f"egresstest-other-{tag}",
    }
    records = {
        names["listed_name"]: ips["web_ip"],
        "below." + names["listed_name"]: ips["web_ip"],
        names["wildcard_name"]: ips["echo_ip"],
        names["wildcard_apex"]: ips["echo_ip"],
        names["unlisted_name"]: ips["other_ip"],
        names["direct_name"]: ips["other_ip"],
        names["private_name"]: "10.0.0.1",
    }
    allow = (
        Destination("name", names["listed_name"], 8080, f"{names['listed_name']}:8080"),
        Destination("wildcard", "wild.mcpbox.test", 7000, "*.wild.mcpbox.test:7000"),
        Destination("ip", ips["other_ip"], 8081, f"{ips['other_ip']}:8081"),
        Destination("name", names["private_name"], 80, f"{names['private_name']}:80"),
        # UDP is never allowed: listing the host and port does not open its UDP port.
        Destination("ip", ips["echo_ip"], 7001, f"{ips['echo_ip']}:7001"),
    )
    started = [
        (run_script(made, f"egresstest-web-{tag}", network=network, ip=ips["web_ip"], script=HTTP_SERVERS), "http"),
        (run_script(made, f"egresstest-echo-{tag}", network=network, ip=ips["echo_ip"], script=ECHO_SERVER), "echo"),
        (run_script(made, names["other_container"], network=network, ip=ips["other_ip"], script=HTTP_SERVERS), "http"),
        (
            run_script(
                made,
                f"egresstest-dns-{tag}",
                network=network,
                ip=ips["dns_ip"],
                script=DNS_SERVER,
                env={"RECORDS": json.dumps(records)},
            ),
            "dns",
        ),
    ]
    for cid, what in started:
        wait_for_log(api, cid, f"{what}: listening")
    _web, echo, _other, dns = (cid for cid, _ in started)

    body = egress_body(Network(allow=allow, dns=(ips["dns_ip"],)), owner(made), "egress-test")
    egress = start_egress(made, body, f"egresstest-egress-{tag}")
    assert egress.ready.wait(15), f"the egress container never became ready: {egress.lines}"

    probe: str = api.create_container(
        EGRESS_IMAGE,  # it has python3 and nft: the probe tries to change the rules too
        ["-c", PROBE],
        entrypoint=["python3", "-I"],
        user="65534:65534",
        environment={"LAB": json.dumps({**ips, **names})},
        labels=made.labels,
        host_config=api.create_host_config(
            network_mode=f"container:{egress.id}",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
            read_only=True,
        ),
    )["Id"]
    made.containers.append(probe)
    api.start(probe)
    status = api.wait(probe, timeout=120)["StatusCode"]
    assert status == 0, f"the probe failed: {api.logs(probe).decode()}"
    # The probe's last attempt is the bypass of the resolver: once reported, all are.
    assert egress.wait_for(b"resolver-bypass"), egress.lines
    result = Lab(
        network=network,
        report=json.loads(api.logs(probe, stdout=True, stderr=False).decode().strip().splitlines()[-1]),
        egress=egress,
        dns_log=api.logs(dns).decode(errors="replace"),
        echo_log=api.logs(echo).decode(errors="replace"),
        ips={**ips, **names},
        egress_body=body,
    )
    result.records = [r for r in map(parse_line, egress.lines) if r is not None]
    return result


def _refused_fast(result: dict[str, Any]) -> None:
    assert not result["ok"], result
    assert result["seconds"] < FAST, result


def test_the_server_shares_the_egress_resolv_conf_and_runs_unprivileged(lab: Lab) -> None:
    assert lab.report["uid"] == 65534
    assert "nameserver 127.0.0.11" in lab.report["resolv_conf"]


def test_a_listed_name_resolves_to_its_answer(lab: Lab) -> None:
    assert lab.report["resolve_listed"] == {**lab.report["resolve_listed"], "ok": True, "value": [lab.ips["web_ip"]]}
    assert lab.report["resolve_wildcard"]["value"] == [lab.ips["echo_ip"]]


def test_a_listed_destination_is_reached_by_a_plain_socket_and_by_http(lab: Lab) -> None:
    assert lab.report["connect_listed"]["ok"], lab.report["connect_listed"]
    assert lab.report["http_listed"] == {**lab.report["http_listed"], "ok": True, "value": 200}
    # Once the name has resolved, its address is in the set: reached by address as well.
    assert lab.report["connect_listed_port_by_ip"]["ok"], lab.report["connect_listed_port_by_ip"]


def test_a_name_under_a_listed_wildcard_is_reached(lab: Lab) -> None:
    assert lab.report["connect_wildcard"] == {**lab.report["connect_wildcard"], "ok": True, "value": "ping\n"}


def test_a_listed_ip_is_reached_and_its_other_ports_are_not(lab: Lab) -> None:
    assert lab.report["connect_listed_ip"]["ok"], lab.report["connect_listed_ip"]
    _refused_fast(lab.report["connect_unlisted_host"])


@pytest.mark.parametrize(
    "probe", ["connect_unlisted_port", "connect_unlisted_host", "connect_gateway", "connect_metadata"]
)
def test_an_unlisted_destination_is_refused_fast(lab: Lab, probe: str) -> None:
    _refused_fast(lab.report[probe])
    assert "ConnectionRefusedError" in lab.report[probe]["error"]


def test_an_unlisted_name_is_nxdomain_and_never_reaches_the_upstream(lab: Lab) -> None:
    for probe in ("resolve_unlisted", "resolve_below_listed", "resolve_wildcard_apex"):
        _refused_fast(lab.report[probe])
        assert "gaierror" in lab.report[probe]["error"], lab.report[probe]
    assert lab.ips["unlisted_name"] not in lab.dns_log
    assert "below." + lab.ips["listed_name"] not in lab.dns_log
    assert f"query {lab.ips['wildcard_apex']} " not in lab.dns_log
    assert f"query {lab.ips['listed_name']} " in lab.dns_log  # the log does record what was forwarded


def test_a_listed_name_answering_a_private_address_is_refused(lab: Lab) -> None:
    assert not lab.report["resolve_private"]["ok"], lab.report["resolve_private"]
    assert lab.dns(name=lab.ips["private_name"], verdict="refuse", reason="private address")


def test_udp_to_a_listed_host_fails_and_sends_nothing(lab: Lab) -> None:
    _refused_fast(lab.report["udp_listed_host"])
    assert "udp: received" not in lab.echo_log


def test_the_server_cannot_query_the_upstream_or_dockers_resolver_directly(lab: Lab) -> None:
    _refused_fast(lab.report["dns_upstream_direct"])
    assert lab.ips["direct_name"] not in lab.dns_log
    assert lab.report["docker_dns_port"], "Docker's resolver was not found listening in the namespace"
    _refused_fast(lab.report["docker_dns_direct"])
    # 127.0.0.11:53 is dnsmasq in disguise: Docker's resolver would know the container's name.
    answered = lab.report["docker_dns_container_name"]
    assert answered["ok"] and answered["value"] == {"rcode": 3, "answers": 0}, answered


def test_the_server_cannot_read_or_change_the_rules(lab: Lab) -> None:
    for probe in ("nft_list", "nft_flush", "nft_add"):
        assert lab.report[probe]["status"] != 0, lab.report[probe]
        assert "Operation not permitted" in lab.report[probe]["stderr"], lab.report[probe]


def test_every_attempt_comes_out_as_a_parsable_line(lab: Lab) -> None:
    ips = lab.ips
    assert lab.connects(verdict="allow", dest=f"{ips['web_ip']}:8080", entry=f"{ips['listed_name']}:8080", uid=65534)
    assert lab.connects(verdict="allow", dest=f"{ips['echo_ip']}:7000", entry="*.wild.mcpbox.test:7000")
    assert lab.connects(verdict="allow", dest=f"{ips['other_ip']}:8081", entry=f"{ips['other_ip']}:8081")
    for dest in (f"{ips['web_ip']}:8081", f"{ips['other_ip']}:8080", f"{ips['gateway']}:80", "169.254.169.254:80"):
        assert lab.connects(verdict="refuse", proto="tcp", dest=dest), (dest, lab.records)
    assert lab.connects(verdict="refuse", proto="udp", dest=f"{ips['echo_ip']}:7001")
    assert lab.connects(verdict="refuse", proto="udp", dest=f"{ips['dns_ip']}:53")
    assert lab.connects(verdict="refuse", reason="resolver-bypass")
    assert lab.dns(step="answer", name=ips["listed_name"], verdict="allow", answer=[ips["web_ip"]])
    assert lab.dns(step="forward", name=ips["listed_name"], upstream=ips["dns_ip"])
    assert lab.dns(step="answer", name=ips["unlisted_name"], verdict="refuse", result="NXDOMAIN")
    assert lab.dns(step="query", name=ips["unlisted_name"], type="A")


def test_the_egress_container_is_locked_down(lab: Lab) -> None:
    host = lab.egress_body["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert set(host["CapAdd"]) <= {"NET_ADMIN", "SETUID", "SETGID"}
    assert host["ReadonlyRootfs"] and host["AutoRemove"] and host["LogConfig"]["Type"] == "none"
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert lab.egress_body["Labels"][LABEL_ROLE] == "egress"


def test_every_kind_of_entry_loads_and_ends_promptly(made: Made, lab: Lab) -> None:
    allow = (
        Destination("name", "a.mcpbox.test", 443, "a.mcpbox.test:443"),
        Destination("name", "a.mcpbox.test", 8443, "a.mcpbox.test:8443"),
        Destination("wildcard", "mcpbox.test", 443, "*.mcpbox.test:443"),
        Destination("name", "mcpbox.test", 80, "mcpbox.test:80"),
        Destination("wildcard", "b.mcpbox.test", 80, "*.b.mcpbox.test:80"),
        Destination("ip", "10.1.2.3", 5432, "10.1.2.3:5432"),
        Destination("ip", "2001:db8::1", 443, "[2001:db8::1]:443"),
        Destination("cidr", "192.0.2.0/24", 80, "192.0.2.0/24:80"),
        Destination("cidr", "2001:db8:1::/48", 80, "[2001:db8:1::]/48:80"),
    )
    network = Network(allow=allow, dns=(lab.ips["dns_ip"], "2001:db8::53"))
    body = egress_body(network, owner(made), "egress-test")
    body["HostConfig"]["NetworkMode"] = lab.network
    egress = start_egress(made, body, f"egresstest-kinds-{made.tag}")
    assert egress.ready.wait(15), egress.lines
    start = time.monotonic()
    made.api.stop(egress.id, timeout=10)
    assert egress.ended.wait(10)
    assert time.monotonic() - start < 3, "SIGTERM should end it at once, not after the stop timeout"


def test_a_ruleset_the_kernel_refuses_is_reported_and_never_ready(made: Made, lab: Lab) -> None:
    body = egress_body(Network(allow=(Destination("ip", "192.0.2.1", 80, "192.0.2.1:80"),)), owner(made), "t")
    body["HostConfig"]["NetworkMode"] = lab.network
    body["Env"] = [item for item in body["Env"] if not item.startswith("MCPBOX_EGRESS_NFT=")]
    body["Env"].append("MCPBOX_EGRESS_NFT=table inet broken { chain c { no such rule; } }")
    egress = start_egress(made, body, f"egresstest-broken-{made.tag}")
    assert egress.ended.wait(15), egress.lines
    assert not egress.ready.is_set()
    assert any(line.startswith(b"mcpbox-egress: error: nft refused the ruleset") for line in egress.lines), egress.lines


# Resolves by A query only (an AAAA query Docker cannot answer would be forwarded to the host's
# resolvers), then connects by address.
DOCKER_DNS_PROBE = r"""
import json, os, socket, struct
lab = json.loads(os.environ["LAB"])
report = {}
def resolve(name):
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)})
    except socket.gaierror as exc:
        return f"gaierror {exc.errno}"
report["listed"] = resolve(lab["web_container"])
report["unlisted"] = resolve(lab["other_container"])
try:
    with socket.create_connection((report["listed"][0], 8080), timeout=10):
        report["connect"] = "ok"
except OSError as exc:
    report["connect"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(report))
"""


def run_probe(made: Made, egress: Egress, script: str, lab: dict[str, str]) -> dict[str, Any]:
    """A script in the egress container's namespace as the server would run: uid 65534, no capability."""
    api = made.api
    probe: str = api.create_container(
        BASE_IMAGE,
        ["python3", "-I", "-c", script],
        user="65534:65534",
        environment={"LAB": json.dumps(lab)},
        labels=made.labels,
        host_config=api.create_host_config(
            network_mode=f"container:{egress.id}", cap_drop=["ALL"], security_opt=["no-new-privileges:true"]
        ),
    )["Id"]
    made.containers.append(probe)
    api.start(probe)
    assert api.wait(probe, timeout=60)["StatusCode"] == 0, api.logs(probe).decode()
    report: dict[str, Any] = json.loads(api.logs(probe, stderr=False).decode().strip().splitlines()[-1])
    return report


def test_without_upstreams_listed_names_resolve_through_dockers_resolver(made: Made, lab: Lab) -> None:
    # Docker's resolver answers the names of containers on the network itself: the default path
    # (no network.dns), with no query leaving the lab.
    web = f"egresstest-web-{made.tag}"
    body = egress_body(Network(allow=(Destination("name", web, 8080, f"{web}:8080"),)), owner(made), "egress-test")
    body["HostConfig"]["NetworkMode"] = lab.network
    egress = start_egress(made, body, f"egresstest-default-{made.tag}")
    assert egress.ready.wait(15), egress.lines
    report = run_probe(
        made, egress, DOCKER_DNS_PROBE, {"web_container": web, "other_container": lab.ips["other_container"]}
    )
    assert report == {"listed": [lab.ips["web_ip"]], "unlisted": f"gaierror {socket.EAI_NONAME}", "connect": "ok"}
    assert egress.wait_for(b'"verdict":"allow"'), egress.lines
    records = [r for r in map(parse_line, egress.lines) if r is not None]
    assert {"kind": "dns", "step": "forward", "verdict": "allow", "name": web, "upstream": "127.0.0.11"} in [
        {k: v for k, v in r.items() if k != "id"} for r in records
    ]
