"""The egress container: the one place a session's network allow-list is enforced.

Per session, a small container from :data:`EGRESS_IMAGE` holds the only NET_ADMIN. In its network
namespace it installs an nftables table and runs dnsmasq as the resolver; the server container
joins that namespace (``NetworkMode: container:<egress id>``) with no capability, so it can
neither change the rules nor bypass the resolver.

Pure: this module renders the ruleset and the resolver's configuration into the create body's
environment, so `mcpbox run --dry-run` shows exactly what is enforced, and parses the egress
container's output lines into session-log fields. The image's entrypoint (images/egress/) only
loads what it is given.

How the pieces hold together:

* TCP to a listed ``ip``/``cidr`` entry's port is accepted; to a listed name's port only if the
  address is in that name's nft set, which only dnsmasq fills, from upstream answers to queries
  for that name. Everything else is rejected at once (TCP reset, ICMP admin-prohibited), and
  every verdict is logged through nflog.
* dnsmasq answers NXDOMAIN, without asking anyone, for every name not listed (``address=/#/``);
  a listed name's subdomains are refused too unless a wildcard covers them. Its cache is off,
  so every lookup reaches the upstream, which honours the TTLs, and every answer refills the sets.
* The server's resolv.conf names Docker's 127.0.0.11 (Docker writes it so on user-defined
  networks, whatever ``Dns`` says); a nat rule sends those queries to dnsmasq instead, and
  only dnsmasq's uid (:data:`RESOLVER_UID`) may reach Docker's resolver or an upstream.
* A name whose answer is a private, loopback, link-local or CGNAT address is refused twice:
  dnsmasq's ``stop-dns-rebind`` drops the answer, and the rules refuse those ranges for names.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from mcpbox.profile.model import Destination, Network
from mcpbox.sandbox.spec import LABEL_ROLE, Owner, labels

EGRESS_IMAGE = "mcpbox/egress:bookworm"
READY = b"mcpbox-egress: ready"  # printed once the rules and the resolver are in place
LINE_PREFIX = b"mcpbox-egress: "
ROLE_EGRESS = "egress"
RESOLVER_UID = 5353  # dnsmasq's uid in the image; a server must not run as it
DOCKER_DNS = "127.0.0.11"  # Docker's embedded resolver, on user-defined networks
TABLE = "mcpbox_egress"
LOG_GROUP = 7  # nflog group the entrypoint reads; mirrors images/egress/entrypoint.py
EGRESS_MEMORY = 64 * 1024 * 1024
EGRESS_PIDS = 16
RUNTIME_TMPFS = "/run/egress"

# Never reachable through a name, whatever its answer: where rebinding attacks point.
PRIVATE_V4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",  # CGNAT
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local, cloud metadata
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
PRIVATE_V6 = ("::/127", "::ffff:0:0/96", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8")


def session_network(session: str) -> str:
    """The session's own bridge network, which the egress container is created on."""
    return f"mcpbox-net-{session}"


def _upstreams(network: Network) -> tuple[str, ...]:
    return network.dns or (DOCKER_DNS,)


def _pattern(dest: Destination) -> str:
    """The dnsmasq domain pattern of a by-name entry: an exact name, or `*.suffix` (subdomains only)."""
    return f"*.{dest.host}" if dest.kind == "wildcard" else dest.host


def _covers(wildcard: str, name: str) -> bool:
    """Whether `*.wildcard` matches every name strictly below ``name`` (and ``name``, unless equal)."""
    return name == wildcard or name.endswith("." + wildcard)


class _Sets:
    """One pair of nft address sets (IPv4, IPv6) per distinct by-name pattern, in entry order."""

    def __init__(self, allow: tuple[Destination, ...]) -> None:
        self.index: dict[str, int] = {}
        for dest in allow:
            if dest.by_name:
                self.index.setdefault(_pattern(dest), len(self.index))

    @staticmethod
    def names(number: int) -> tuple[str, str]:
        return f"name{number}_4", f"name{number}_6"

    def spec(self, patterns: list[str]) -> str:
        """dnsmasq's nftset value: every set an answer for these patterns belongs in."""
        parts = []
        for pattern in patterns:
            v4, v6 = self.names(self.index[pattern])
            parts += [f"4#inet#{TABLE}#{v4}", f"6#inet#{TABLE}#{v6}"]
        return ",".join(parts)


def render_dnsmasq(network: Network) -> str:
    """dnsmasq's configuration: listed names go to the upstreams and into their sets; nothing else leaves."""
    sets = _Sets(network.allow)
    wildcards = list(dict.fromkeys(dest.host for dest in network.allow if dest.kind == "wildcard"))
    lines = [
        "# mcpbox egress resolver: answers listed names only.",
        "port=53",
        "listen-address=127.0.0.1",
        "bind-interfaces",
        "no-resolv",
        "no-hosts",
        "pid-file=",
        "user=mcpbox-dns",  # uid RESOLVER_UID in the image
        "group=mcpbox-dns",
        # No cache: each lookup is answered by the upstream (which honours the TTL), and each answer
        # (re)fills the name's set; a cached answer would not, and the set would not follow the name.
        "cache-size=0",
        "stop-dns-rebind",
        "log-queries=extra",
        "log-facility=-",
        # Every name not matched by a more specific line below: NXDOMAIN, and no upstream hears of it.
        "address=/#/",
    ]
    # Which queries are forwarded. dnsmasq takes the longest matching pattern; /name/ matches the
    # name and every name below it, /*.suffix/ only the names below the suffix.
    for pattern in sets.index:
        lines += [f"server=/{pattern}/{upstream}" for upstream in _upstreams(network)]
    for name in (pattern for pattern in sets.index if not pattern.startswith("*.")):
        below = f"*.{name}"
        if below in sets.index:
            continue
        if any(_covers(wildcard, name) for wildcard in wildcards):  # a listed wildcard covers the names below
            lines += [f"server=/{below}/{upstream}" for upstream in _upstreams(network)]
        else:
            lines.append(f"address=/{below}/")
    # Which sets an answer fills. Here dnsmasq knows no `*.` form: it takes the one nftset line whose
    # domain is the longest suffix of the name, so each line lists the sets of every entry that can
    # match there. Where a listed name is also a listed wildcard's suffix or lies below one, its
    # line serves the names below it too, whose answers then also fill the name's own set.
    for domain in dict.fromkeys(pattern.removeprefix("*.") for pattern in sets.index):
        members = [domain] if domain in sets.index else []
        members += [f"*.{wildcard}" for wildcard in wildcards if _covers(wildcard, domain)]
        lines.append(f"nftset=/{domain}/{sets.spec(members)}")
    return "\n".join(lines) + "\n"


def _log(prefix: str) -> str:
    return f'log prefix "{prefix}" group {LOG_GROUP}'


def _family(address: str) -> str:
    return "ip6" if ipaddress.ip_network(address, strict=False).version == 6 else "ip"


def _allow_rules(network: Network, sets: _Sets) -> list[str]:
    """The `allow` chain: one accepting rule per entry (its index in the log prefix), names last."""
    by_address = [
        f"{_family(dest.host)} daddr {dest.host} tcp dport {dest.port} {_log(f'allow {number}')} accept"
        for number, dest in enumerate(network.allow)
        if not dest.by_name
    ]
    by_name = []
    for number, dest in enumerate(network.allow):
        if dest.by_name:
            v4, v6 = sets.names(sets.index[_pattern(dest)])
            for family, name in (("ip", v4), ("ip6", v6)):
                by_name.append(f"{family} daddr @{name} tcp dport {dest.port} {_log(f'allow {number}')} accept")
    rebind = []
    if by_name:
        # Listed addresses above may be private; a name's answer may not (DNS rebinding).
        rebind = [
            f"ip daddr @private4 {_log('refuse private')} goto refuse",
            f"ip6 daddr @private6 {_log('refuse private')} goto refuse",
        ]
    return [*by_address, *rebind, *by_name]


def render_nft(network: Network) -> str:
    """The nftables ruleset of the egress namespace: one `inet` table (IPv4 and IPv6), Docker's left alone."""
    sets = _Sets(network.allow)
    upstream_rules = []
    for upstream in _upstreams(network):
        if upstream != DOCKER_DNS:  # Docker's resolver is on loopback, where the resolver may go anyway
            upstream_rules.append(
                f"{_family(upstream)} daddr {upstream} meta l4proto {{ tcp, udp }} th dport 53 accept"
            )
    docker_forwarding = []
    if DOCKER_DNS in _upstreams(network):
        # Docker's resolver forwards dnsmasq's queries to the host's resolvers from inside this
        # namespace, over dockerd's sockets (uid 0): the upstreams are the engine's to choose.
        docker_forwarding.append("meta skuid 0 meta l4proto { tcp, udp } th dport 53 accept")
    set_lines = [
        f"set private4 {{ type ipv4_addr; flags interval; elements = {{ {', '.join(PRIVATE_V4)} }}; }}",
        f"set private6 {{ type ipv6_addr; flags interval; elements = {{ {', '.join(PRIVATE_V6)} }}; }}",
    ]
    for number in sets.index.values():
        v4, v6 = sets.names(number)
        set_lines += [f"set {v4} {{ type ipv4_addr; }}", f"set {v6} {{ type ipv6_addr; }}"]
    nd = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept"
    chains = {
        "dns_redirect": [
            # Before Docker's own nat rule (priority -100): the server's queries to Docker's resolver,
            # the one resolv.conf names, go to dnsmasq; dnsmasq's own go on to Docker.
            "type nat hook output priority -110; policy accept;",
            f"meta skuid != {RESOLVER_UID} ip daddr {DOCKER_DNS} meta l4proto {{ tcp, udp }} th dport 53 "
            "dnat ip to 127.0.0.1:53",
        ],
        "output": [
            "type filter hook output priority filter; policy drop;",
            "ct state established,related accept",
            'oifname "lo" goto loopback',
            f"meta skuid {RESOLVER_UID} goto resolver",
            *docker_forwarding,
            "ct state new meta l4proto tcp jump allow",
            nd,
            f"{_log('refuse unlisted')} goto refuse",
        ],
        "loopback": [
            f"ip daddr {DOCKER_DNS} meta skuid != {RESOLVER_UID} {_log('refuse resolver-bypass')} goto refuse",
            "accept",
        ],
        "resolver": [*upstream_rules, f"{_log('refuse resolver')} goto refuse"],
        "allow": _allow_rules(network, sets),
        "refuse": [
            # Fast failures: a reset or an ICMP error reaches the local socket at once, not a timeout.
            "meta l4proto tcp reject with tcp reset",
            "reject with icmpx type admin-prohibited",
        ],
        "input": [
            # Nothing reaches the namespace unasked: no other container may connect to the server.
            "type filter hook input priority filter; policy drop;",
            "ct state established,related accept",
            'iifname "lo" accept',
            nd,
        ],
        "forward": ["type filter hook forward priority filter; policy drop;"],
    }
    out = [f"table inet {TABLE} {{", *(f"\t{line}" for line in set_lines)]
    for name, rules in chains.items():
        out += [f"\tchain {name} {{", *(f"\t\t{rule}" for rule in rules), "\t}"]
    out.append("}")
    return "\n".join(out) + "\n"


def egress_body(network: Network, owner: Owner, profile_name: str) -> dict[str, Any]:
    """The `POST /containers/create` body of the session's egress container.

    Created on the session's network (:func:`session_network`); join ``network.docker_networks``
    before starting it, and create the server only after :data:`READY` appears in its output."""
    host_config: dict[str, Any] = {
        "CapDrop": ["ALL"],
        # NET_ADMIN: the rules, the sets dnsmasq fills, the nflog socket. SETUID/SETGID: dnsmasq
        # drops to its own uid (keeping NET_ADMIN), which the rules tell apart from the server's.
        "CapAdd": ["NET_ADMIN", "SETUID", "SETGID"],
        "Privileged": False,
        "SecurityOpt": ["no-new-privileges:true"],
        "ReadonlyRootfs": True,
        "Tmpfs": {RUNTIME_TMPFS: "rw,noexec,nosuid,nodev,size=1m,mode=0700", "/tmp": "rw,noexec,nosuid,nodev,size=1m"},
        "NetworkMode": session_network(owner.session),
        # No search domains from the host: they would only turn one lookup into several refused ones.
        "DnsSearch": ["."],
        "Memory": EGRESS_MEMORY,
        "MemorySwap": EGRESS_MEMORY,
        "NanoCpus": 500_000_000,
        "PidsLimit": EGRESS_PIDS,
        "Ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}],
        "Init": True,
        "IpcMode": "private",
        "CgroupnsMode": "private",
        "Devices": [],
        # No log driver: mcpbox reads the output over attach and keeps it in the session log.
        "LogConfig": {"Type": "none", "Config": {}},
        "AutoRemove": True,
    }
    return {
        "Image": EGRESS_IMAGE,
        "Env": [
            f"MCPBOX_EGRESS_NFT={render_nft(network)}",
            f"MCPBOX_EGRESS_DNSMASQ={render_dnsmasq(network)}",
            f"MCPBOX_EGRESS_ENTRIES={json.dumps([dest.entry for dest in network.allow])}",
        ],
        "User": "0:0",
        # The server shares this namespace, and with it this hostname (it cannot set its own).
        "Hostname": "sandbox",
        "Labels": {**labels(owner, profile_name), LABEL_ROLE: ROLE_EGRESS},
        "AttachStdin": False,
        "AttachStdout": True,
        "AttachStderr": True,
        "OpenStdin": False,
        "Tty": False,
        "NetworkDisabled": False,
        "StopSignal": "SIGTERM",
        "StopTimeout": 2,
        "HostConfig": host_config,
    }


_DNSMASQ = re.compile(rb"^dnsmasq\[\d+\]: (?:(?P<id>\d+) (?P<peer>\S+) )?(?P<message>.*)$")
_QUERY = re.compile(r"^query\[(?P<type>[A-Za-z0-9]+)\] (?P<name>\S+) from (?P<client>\S+)$")
_FORWARDED = re.compile(r"^forwarded (?P<name>\S+) to (?P<upstream>\S+)$")
_REPLY = re.compile(r"^(?P<source>reply|cached|config) (?P<name>\S+) is (?P<result>.+)$")
_SET = re.compile(r"^nftset add [46] inet \S+ \S+ (?P<address>\S+) (?P<name>\S+)$")
_REBIND = re.compile(r"^possible DNS-rebind attack detected: (?P<name>\S+)$")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _dns(message: str) -> dict[str, Any] | None:
    if match := _QUERY.match(message):
        return {"kind": "dns", "step": "query", **match.groupdict()}
    if match := _FORWARDED.match(message):
        return {"kind": "dns", "step": "forward", "verdict": "allow", **match.groupdict()}
    if match := _SET.match(message):  # from now on the rules let the server reach this address
        return {"kind": "dns", "step": "set", "verdict": "allow", **match.groupdict()}
    if match := _REBIND.match(message):
        return {"kind": "dns", "step": "answer", "verdict": "refuse", "reason": "private address", **match.groupdict()}
    if match := _REPLY.match(message):
        name, result = match["name"], match["result"]
        if match["source"] == "config":  # answered from the configuration: a name not on the list
            return {"kind": "dns", "step": "answer", "name": name, "verdict": "refuse", "result": result}
        fields: dict[str, Any] = {"kind": "dns", "step": "answer", "name": name, "verdict": "allow"}
        if _is_address(result):
            fields["answer"] = [result]
        else:  # NXDOMAIN, NODATA, <CNAME> ...
            fields["result"] = result
        return fields
    return None


def parse_line(line: bytes) -> dict[str, Any] | None:
    """One output line of the egress container as session-log fields, or None for any other line.

    ``{"kind": "connect", "proto", "src", "dest", "verdict": "allow"|"refuse", "entry" | "reason", "uid"}``
    for a connection attempt; ``{"kind": "dns", "step": "query"|"forward"|"answer"|"set", "name", ...}``
    for the resolver's log, where all but "query" carry a verdict, an answer carries its addresses
    (``answer``) or result (``NXDOMAIN``...), and "set" the ``address`` the rules now let through.
    dnsmasq numbers each query (``id``) so that its lines can be put together."""
    line = line.rstrip(b"\r\n")
    if line.startswith(LINE_PREFIX):
        try:
            decoded: object = json.loads(line[len(LINE_PREFIX) :])
        except ValueError:
            return None  # "ready", "error: ..."
        if not isinstance(decoded, dict) or decoded.get("kind") != "connect":
            return None
        return {str(key): value for key, value in decoded.items()}
    match = _DNSMASQ.match(line)
    if match is None:
        return None
    fields = _dns(match["message"].decode("utf-8", "replace").strip())
    if fields is not None and match["id"] is not None:
        fields["id"] = int(match["id"])
    return fields
