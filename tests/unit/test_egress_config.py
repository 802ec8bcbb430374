"""The egress container's configuration as rendered for each kind of entry, and its output as parsed.

The rules and the resolver configuration are checked here as text; that the kernel and dnsmasq
accept them and enforce what they say is tests/integration/test_egress.py's part.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mcpbox.profile.model import Destination, Network
from mcpbox.sandbox.egress import (
    EGRESS_IMAGE,
    LOG_GROUP,
    READY,
    RESOLVER_UID,
    egress_body,
    parse_line,
    render_dnsmasq,
    render_nft,
    session_network,
)
from mcpbox.sandbox.spec import LABEL_ROLE, LABEL_SESSION, Owner

ROOT = Path(__file__).resolve().parents[2]
OWNER = Owner(session="s1", pid=4242, started=1.5, host="laptop")


def name(host: str, port: int = 443) -> Destination:
    return Destination("name", host, port, f"{host}:{port}")


def wildcard(suffix: str, port: int = 443) -> Destination:
    return Destination("wildcard", suffix, port, f"*.{suffix}:{port}")


def address(host: str, port: int, kind: str = "ip") -> Destination:
    return Destination("ip" if kind == "ip" else "cidr", host, port, f"{host}:{port}")


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def rule(ruleset: str, pattern: str) -> int:
    """The line number of the one rule matching ``pattern``."""
    found = [number for number, line in enumerate(lines(ruleset)) if re.fullmatch(pattern, line)]
    assert len(found) == 1, (pattern, ruleset)
    return found[0]


def test_a_name_gets_its_own_sets_a_rule_for_its_port_and_only_its_own_queries_forwarded() -> None:
    network = Network(allow=(name("api.github.com"),))
    nft, dnsmasq = render_nft(network), lines(render_dnsmasq(network))
    assert "set name0_4 { type ipv4_addr; }" in lines(nft)
    assert "set name0_6 { type ipv6_addr; }" in lines(nft)
    rule(nft, r'ip daddr @name0_4 tcp dport 443 log prefix "allow 0" group \d+ accept')
    rule(nft, r'ip6 daddr @name0_6 tcp dport 443 log prefix "allow 0" group \d+ accept')
    assert "server=/api.github.com/127.0.0.11" in dnsmasq
    # /api.github.com/ would also forward every name below it: a channel out through the names.
    assert "address=/*.api.github.com/" in dnsmasq
    assert "nftset=/api.github.com/4#inet#mcpbox_egress#name0_4,6#inet#mcpbox_egress#name0_6" in dnsmasq


def test_a_wildcard_forwards_the_names_below_its_suffix_and_not_the_suffix() -> None:
    network = Network(allow=(wildcard("githubusercontent.com"),))
    dnsmasq = lines(render_dnsmasq(network))
    assert "server=/*.githubusercontent.com/127.0.0.11" in dnsmasq
    assert not [line for line in dnsmasq if line.startswith("server=/githubusercontent.com/")]
    # nftset knows no `*.` form: it matches by suffix, and the suffix itself is never forwarded.
    assert "nftset=/githubusercontent.com/4#inet#mcpbox_egress#name0_4,6#inet#mcpbox_egress#name0_6" in dnsmasq


def test_a_name_below_a_listed_wildcard_also_fills_the_wildcards_sets() -> None:
    network = Network(allow=(name("api.github.com"), wildcard("github.com", 80)))
    dnsmasq = lines(render_dnsmasq(network))
    assert "server=/*.api.github.com/127.0.0.11" in dnsmasq  # the wildcard covers them: not refused
    assert "address=/*.api.github.com/" not in dnsmasq
    nftset = next(line for line in dnsmasq if line.startswith("nftset=/api.github.com/"))
    assert "#name0_4" in nftset and "#name1_4" in nftset
    nft = render_nft(network)
    rule(nft, r'ip daddr @name0_4 tcp dport 443 log prefix "allow 0" .* accept')
    rule(nft, r'ip daddr @name1_4 tcp dport 80 log prefix "allow 1" .* accept')


def test_the_same_name_on_two_ports_shares_one_set_with_a_rule_per_entry() -> None:
    network = Network(allow=(name("db.example.com", 5432), name("db.example.com", 6432)))
    nft = render_nft(network)
    assert "name1_4" not in nft
    rule(nft, r'ip daddr @name0_4 tcp dport 5432 log prefix "allow 0" .* accept')
    rule(nft, r'ip daddr @name0_4 tcp dport 6432 log prefix "allow 1" .* accept')
    assert len([line for line in lines(render_dnsmasq(network)) if line.startswith("nftset=")]) == 1


def test_addresses_and_networks_are_allowed_even_when_private_and_before_the_rebind_check() -> None:
    network = Network(
        allow=(
            address("10.1.2.3", 5432),
            address("192.0.2.0/24", 80, "cidr"),
            address("2001:db8::/32", 443, "cidr"),
            name("api.example.com"),
        )
    )
    nft = render_nft(network)
    first = rule(nft, r'ip daddr 10\.1\.2\.3 tcp dport 5432 log prefix "allow 0" .* accept')
    rule(nft, r'ip daddr 192\.0\.2\.0/24 tcp dport 80 log prefix "allow 1" .* accept')
    rule(nft, r'ip6 daddr 2001:db8::/32 tcp dport 443 log prefix "allow 2" .* accept')
    rebind = rule(nft, r'ip daddr @private4 log prefix "refuse private" .* goto refuse')
    by_name = rule(nft, r'ip daddr @name0_4 tcp dport 443 log prefix "allow 3" .* accept')
    assert first < rebind < by_name
    assert "stop-dns-rebind" in lines(render_dnsmasq(network))


@pytest.mark.parametrize(
    "blocked", ["10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"]
)
def test_names_never_reach_private_loopback_link_local_or_cgnat_ranges(blocked: str) -> None:
    private4 = next(line for line in lines(render_nft(Network(allow=(name("a.example"),)))) if "set private4" in line)
    assert blocked in private4


def test_addresses_alone_need_no_name_sets_and_no_rebind_rule() -> None:
    nft = render_nft(Network(allow=(address("10.1.2.3", 5432),)))
    assert "@private4" not in nft and "set name0" not in nft
    dnsmasq = lines(render_dnsmasq(Network(allow=(address("10.1.2.3", 5432),))))
    assert not [line for line in dnsmasq if line.startswith(("server=", "nftset="))]
    assert "address=/#/" in dnsmasq


def test_the_resolver_answers_nothing_unlisted_caches_nothing_and_logs_every_query() -> None:
    dnsmasq = lines(render_dnsmasq(Network(allow=(name("api.example.com"),))))
    assert "address=/#/" in dnsmasq  # NXDOMAIN for everything else, without an upstream hearing of it
    assert "no-resolv" in dnsmasq and "no-hosts" in dnsmasq
    assert "cache-size=0" in dnsmasq  # every lookup reaches the upstream and refills the set
    assert "log-queries=extra" in dnsmasq and "log-facility=-" in dnsmasq
    assert "listen-address=127.0.0.1" in dnsmasq and "bind-interfaces" in dnsmasq
    assert "user=mcpbox-dns" in dnsmasq


def test_given_upstreams_replace_dockers_resolver_and_only_the_resolver_reaches_them() -> None:
    network = Network(allow=(name("api.example.com"),), dns=("192.0.2.53", "2001:db8::53"))
    dnsmasq, nft = lines(render_dnsmasq(network)), render_nft(network)
    assert "server=/api.example.com/192.0.2.53" in dnsmasq
    assert "server=/api.example.com/2001:db8::53" in dnsmasq
    assert not [line for line in dnsmasq if "127.0.0.11" in line]
    rule(nft, r"ip daddr 192\.0\.2\.53 meta l4proto \{ tcp, udp \} th dport 53 accept")
    rule(nft, r"ip6 daddr 2001:db8::53 meta l4proto \{ tcp, udp \} th dport 53 accept")
    rule(nft, f"meta skuid {RESOLVER_UID} goto resolver")
    assert "meta skuid 0" not in nft


def test_without_upstreams_dockers_resolver_forwards_and_the_server_cannot_reach_it() -> None:
    nft = render_nft(Network(allow=(name("api.example.com"),)))
    rule(nft, r"meta skuid 0 meta l4proto \{ tcp, udp \} th dport 53 accept")
    rule(nft, rf"meta skuid != {RESOLVER_UID} ip daddr 127\.0\.0\.11 .* dnat ip to 127\.0\.0\.1:53")
    rule(nft, rf'ip daddr 127\.0\.0\.11 meta skuid != {RESOLVER_UID} log prefix "refuse resolver-bypass" .*')


def test_the_ruleset_refuses_by_default_fast_and_logged() -> None:
    nft = lines(render_nft(Network(allow=(name("api.example.com"),))))
    assert "type filter hook output priority filter; policy drop;" in nft
    assert "type filter hook input priority filter; policy drop;" in nft
    assert "meta l4proto tcp reject with tcp reset" in nft
    assert "reject with icmpx type admin-prohibited" in nft
    assert f'log prefix "refuse unlisted" group {LOG_GROUP} goto refuse' in nft
    assert not [line for line in nft if "udp dport" in line and "accept" in line]
    assert "flush ruleset" not in nft  # Docker's own tables (its resolver's nat) stay


def test_the_body_is_locked_down_labelled_and_carries_the_configuration() -> None:
    network = Network(allow=(name("api.example.com"),))
    body = egress_body(network, OWNER, "gh")
    host = body["HostConfig"]
    assert body["Image"] == EGRESS_IMAGE
    assert host["CapDrop"] == ["ALL"] and host["CapAdd"] == ["NET_ADMIN", "SETUID", "SETGID"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
    assert host["AutoRemove"] is True and host["LogConfig"] == {"Type": "none", "Config": {}}
    assert host["Memory"] == host["MemorySwap"] > 0 and host["PidsLimit"] > 0
    assert host["NetworkMode"] == session_network("s1") == "mcpbox-net-s1"
    assert body["Labels"][LABEL_ROLE] == "egress" and body["Labels"][LABEL_SESSION] == "s1"
    env = dict(item.split("=", 1) for item in body["Env"])
    assert env["MCPBOX_EGRESS_NFT"] == render_nft(network)
    assert env["MCPBOX_EGRESS_DNSMASQ"] == render_dnsmasq(network)
    assert env["MCPBOX_EGRESS_ENTRIES"] == '["api.example.com:443"]'
    assert not body["OpenStdin"] and body["AttachStdout"] and body["AttachStderr"]


def test_the_image_agrees_with_the_renderer_on_the_log_group_and_the_resolver_uid() -> None:
    entrypoint = (ROOT / "images/egress/entrypoint.py").read_text(encoding="utf-8")
    assert re.search(rf"^LOG_GROUP = {LOG_GROUP}\b", entrypoint, re.MULTILINE)
    assert f"--uid {RESOLVER_UID} " in (ROOT / "images/egress/Dockerfile").read_text(encoding="utf-8")


# Lines as the egress container printed them in tests/integration/test_egress.py.
@pytest.mark.parametrize(
    ("line", "fields"),
    [
        (
            b'mcpbox-egress: {"kind":"connect","proto":"tcp","src":"198.18.97.2:54060","dest":"198.18.97.10:8080",'
            b'"verdict":"allow","entry":"target.mcpbox.test:8080","uid":65534}',
            {
                "kind": "connect",
                "proto": "tcp",
                "src": "198.18.97.2:54060",
                "dest": "198.18.97.10:8080",
                "verdict": "allow",
                "entry": "target.mcpbox.test:8080",
                "uid": 65534,
            },
        ),
        (
            b'mcpbox-egress: {"kind":"connect","proto":"udp","src":"198.18.97.2:43325","dest":"198.18.97.11:7001",'
            b'"verdict":"refuse","reason":"unlisted","uid":65534}\n',
            {
                "kind": "connect",
                "proto": "udp",
                "src": "198.18.97.2:43325",
                "dest": "198.18.97.11:7001",
                "verdict": "refuse",
                "reason": "unlisted",
                "uid": 65534,
            },
        ),
        (
            b"dnsmasq[9]: 1 127.0.0.1/41434 query[A] target.mcpbox.test from 127.0.0.1",
            {"kind": "dns", "step": "query", "id": 1, "type": "A", "name": "target.mcpbox.test", "client": "127.0.0.1"},
        ),
        (
            b"dnsmasq[9]: 1 127.0.0.1/41434 forwarded target.mcpbox.test to 198.18.97.53",
            {
                "kind": "dns",
                "step": "forward",
                "id": 1,
                "verdict": "allow",
                "name": "target.mcpbox.test",
                "upstream": "198.18.97.53",
            },
        ),
        (
            b"dnsmasq[9]: 1 127.0.0.1/41434 reply target.mcpbox.test is 198.18.97.10",
            {"kind": "dns", "step": "answer", "id": 1, "verdict": "allow", "name": "target.mcpbox.test"}
            | {"answer": ["198.18.97.10"]},
        ),
        (
            b"dnsmasq[9]: 8 127.0.0.1/43644 reply target.mcpbox.test is NODATA-IPv6",
            {"kind": "dns", "step": "answer", "id": 8, "verdict": "allow", "name": "target.mcpbox.test"}
            | {"result": "NODATA-IPv6"},
        ),
        (
            b"dnsmasq[9]: 3 127.0.0.1/51763 config unlisted.mcpbox.test is NXDOMAIN",
            {"kind": "dns", "step": "answer", "id": 3, "verdict": "refuse", "name": "unlisted.mcpbox.test"}
            | {"result": "NXDOMAIN"},
        ),
        (
            b"dnsmasq[9]: 1 127.0.0.1/54911 nftset add 4 inet mcpbox_egress name0_4 198.18.125.10 target.mcpbox.test",
            {"kind": "dns", "step": "set", "id": 1, "verdict": "allow", "name": "target.mcpbox.test"}
            | {"address": "198.18.125.10"},
        ),
        (
            b"dnsmasq[9]: possible DNS-rebind attack detected: private.mcpbox.test",
            {"kind": "dns", "step": "answer", "verdict": "refuse", "reason": "private address"}
            | {"name": "private.mcpbox.test"},
        ),
    ],
)
def test_parse_line_turns_each_verdict_into_fields(line: bytes, fields: dict[str, object]) -> None:
    assert parse_line(line) == fields


@pytest.mark.parametrize(
    "line",
    [
        READY,
        b"mcpbox-egress: error: nft refused the ruleset: Error: syntax error",
        b'mcpbox-egress: {"kind":"ready"}',
        b"mcpbox-egress: [1, 2]",
        b"dnsmasq[9]: started, version 2.90 cache disabled",
        b"",
        b"\xff\xfe not utf-8",
    ],
)
def test_parse_line_ignores_everything_else(line: bytes) -> None:
    assert parse_line(line) is None
