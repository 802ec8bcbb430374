"""`mcpbox logs report`: a real session with the hostile server, rendered, opened in headless Chromium.

What a reader sees is what Chromium shows after the page's own script ran: the summary, each
call with its verdict, and the hostile server's markup as plain text. The page must make no
network request: Chromium's network log is read to prove it, and a page that does fetch is
put through the same probe first, so the probe is known to see requests.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcpbox.logs.timeline import summarize
from tests.conftest import MCPBOX, Home, hostile_profile, sdk_client, wait_until_gone

pytestmark = pytest.mark.docker

CHROMIUM = "/usr/bin/chromium"
# Markup in every context a page could be broken out of: element, raw text, attribute, comment.
HOSTILE = (
    "<script>document.title='pwned'</script></textarea></pre></details></script>"
    '<img src="http://127.0.0.1:9/leak.png" onerror="alert(1)"><!-- "\'> &amp; \u202eevil\u202c'
)
HOSTILE_TOOL = "<svg onload=alert(2)>"  # a tool name the client sends: it reaches the report too
# Every element the page itself is made of: anything else in the rendered DOM was injected.
PAGE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "dl", "dt", "dd", "div", "span",
    "button", "input", "table", "thead", "tbody", "tr", "th", "td", "details", "summary", "pre", "b", "br",
    "code", "footer", "script",
}  # fmt: skip


@dataclass
class Dom:
    """An HTML document as a test needs it: elements, text, and the calls table's rows."""

    elements: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    text: str = ""
    by_id: dict[str, str] = field(default_factory=dict)  # element id -> its text
    rows: list[tuple[dict[str, str], list[str]]] = field(default_factory=list)  # tr.call: attributes, cell texts


class _Parser(HTMLParser):
    VOID = frozenset({"meta", "br", "input", "img", "link", "hr", "source", "base"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.dom = Dom()
        self.open: list[tuple[str, dict[str, str], list[str]]] = []  # the elements being read, with their text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.dom.elements.append((tag, attributes))
        if tag not in self.VOID:
            self.open.append((tag, attributes, []))

    def handle_endtag(self, tag: str) -> None:
        while self.open:
            name, attributes, parts = self.open.pop()
            text = "".join(parts)
            if "id" in attributes:
                self.dom.by_id[attributes["id"]] = text
            if self.open:
                self.open[-1][2].append(text)
            if name == "td" and self.open and self.open[-1][0] == "tr":
                self.open[-1][2].append("\x00")  # a cell boundary, for the row below
            if name == "tr" and "call" in attributes.get("class", "").split():
                self.dom.rows.append((attributes, [c.strip() for c in text.split("\x00")[:-1]]))
            if name == tag:
                return

    def handle_data(self, data: str) -> None:
        self.dom.text += data
        if self.open:
            self.open[-1][2].append(data)


def parse(html: str) -> Dom:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.dom


# ---- the session and the page -----------------------------------------------------


@dataclass
class Rendered:
    home: Home
    log: Path
    report: Path
    html: str  # the file as written
    dom: Dom  # what Chromium shows once the page's script ran
    console: list[str]  # Chromium's console lines (CSP violations are reported there)
    requests: list[str]  # URLs the page asked for


def chromium() -> str:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs it (scripts/setup.sh, Debian package chromium)")
    return CHROMIUM


def open_in_chromium(page: Path, work: Path) -> tuple[str, list[str], list[str]]:
    """The DOM after scripts ran, the console lines, and the URLs the page requested."""
    work.mkdir(parents=True, exist_ok=True)
    netlog = work / "netlog.json"
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # the test may run as root, where Chromium's own sandbox refuses to start
            "--disable-gpu",
            f"--user-data-dir={work / 'profile'}",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            f"--log-net-log={netlog}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    log = json.loads(netlog.read_text())
    # Chromium's own traffic (updates, time sync) belongs to no page; a page's requests carry
    # its site, file://, in their network isolation key.
    requests = [
        event["params"]["url"]
        for event in log["events"]
        if "url" in event.get("params", {})
        and "file://" in str(event["params"].get("network_isolation_key", ""))
        and not event["params"]["url"].startswith("file:")
    ]
    return result.stdout, console, requests


async def _drive(profile: str, home: Home) -> None:
    with anyio.fail_after(90):
        async with sdk_client(profile, home, cache=None) as client:
            await client.list_tools()
            assert not (await client.call_tool("echo", {"text": HOSTILE})).is_error
            assert (await client.call_tool("write_file", {"path": "/data/x", "content": HOSTILE})).is_error
            assert (await client.call_tool("add", {"a": 2, "b": 3})).content[0].text == "5"
            assert (await client.call_tool("styled_output", {"what": "invisible", "where": "error"})).is_error
            await client.call_tool(HOSTILE_TOOL, {"x": HOSTILE})


@pytest.fixture(scope="module")
def rendered(docker_api: Any) -> Iterator[Rendered]:
    root = Path(tempfile.mkdtemp(prefix="mcpbox-report-"))
    runtime = Path(tempfile.mkdtemp(prefix="mbx-"))
    home = Home(root / "home", runtime)
    try:
        hostile_profile(home, tools={"deny": ["write_file"]})
        anyio.run(_drive, "hostile", home)
        (log,) = home.session_logs()
        assert not wait_until_gone(docker_api, log.stem)
        report = root / "report.html"
        result = subprocess.run(
            [MCPBOX, "logs", "report", log.stem[:15], "-o", str(report)],
            env=home.full_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        dom, console, requests = open_in_chromium(report, root / "chromium")
        yield Rendered(home, log, report, report.read_text(encoding="utf-8"), parse(dom), console, requests)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)


def _row(rendered: Rendered, label: str) -> list[str]:
    (row,) = [cells for _, cells in rendered.dom.rows if cells[3] == label]
    return row


# ---- what a reader sees -------------------------------------------------------------


def test_summary_is_visible(rendered: Rendered) -> None:
    summary = summarize(rendered.log)
    shown = rendered.dom.by_id
    assert shown["summary-session"] == summary.session == rendered.log.stem
    assert shown["summary-profile"] == "hostile"
    assert shown["summary-image"] == "mcpbox/hostile:test"
    assert shown["summary-start"].endswith(" UTC")
    assert shown["summary-duration"].endswith(" s")
    assert shown["summary-messages"] == str(summary.messages)
    assert shown["summary-tool-calls"] == str(summary.tool_calls) == "5"
    assert shown["summary-blocked"] == str(summary.blocked)
    assert int(shown["summary-blocked"]) >= 1
    assert shown["summary-exit"].startswith("exit 0")


def test_each_call_is_listed_with_its_verdict(rendered: Rendered) -> None:
    labels = [cells[3] for _, cells in rendered.dom.rows]
    assert "tools/list" in labels
    for tool in ("echo", "write_file", "add", "styled_output", HOSTILE_TOOL):
        assert f"tools/call {tool}" in labels
    # columns: # · time · direction · method/tool · duration · verdict · rule/reason · outcome
    echo = _row(rendered, "tools/call echo")
    assert (echo[2], echo[7]) == ("client → server", "ok")
    assert echo[5].startswith("forward")
    assert echo[4].endswith(" ms")
    blocked = _row(rendered, "tools/call write_file")
    assert blocked[5].startswith("block")
    assert blocked[6].startswith("tools.allow/deny: tool write_file is not allowed")
    assert blocked[7].startswith("blocked")
    assert _row(rendered, "tools/call styled_output")[7].startswith("error")
    assert _row(rendered, "tools/call add")[7] == "ok"
    attributes = {cells[3]: attrs for attrs, cells in rendered.dom.rows}
    assert attributes["tools/call write_file"]["data-blocked"] == "1"
    assert attributes["tools/call echo"]["data-blocked"] == "0"


def test_the_page_script_ran_under_its_policy(rendered: Rendered) -> None:
    count = len(rendered.dom.rows)
    assert rendered.dom.by_id["shown"] == f"{count} of {count} calls shown"  # written by the page's script
    assert not [line for line in rendered.console if "Content Security Policy" in line], rendered.console


def test_payloads_can_be_expanded_and_hold_the_messages(rendered: Rendered) -> None:
    details = [attrs for tag, attrs in rendered.dom.elements if tag == "details"]
    assert len(details) >= len(rendered.dom.rows)
    assert '"name": "echo"' in rendered.dom.text
    assert '"text": "5"' in rendered.dom.text


# ---- hostile content stays text -------------------------------------------------------


def test_hostile_markup_is_shown_as_text_and_never_becomes_markup(rendered: Rendered) -> None:
    dom = rendered.dom
    tags = {tag for tag, _ in dom.elements}
    assert tags <= PAGE_TAGS, tags - PAGE_TAGS
    assert [tag for tag, _ in dom.elements].count("script") == 1  # the page's own
    assert not [(tag, name) for tag, attrs in dom.elements for name in attrs if name.startswith("on")]
    assert not dom.by_id.get("title", "").startswith("pwned")
    # The hostile string is there, as text (in the payload's JSON), its bidi override spelled out, not obeyed.
    spelled = json.dumps(HOSTILE, ensure_ascii=False)[1:-1].replace("\u202e", "\\u202e").replace("\u202c", "\\u202c")
    assert spelled in dom.text
    assert HOSTILE_TOOL in dom.text
    assert "\u202e" not in dom.text
    assert "\u200b" not in dom.text  # styled_output's zero-width space, as the log holds it
    assert "\\u200b" in dom.text


def test_the_file_loads_nothing_and_declares_it(rendered: Rendered) -> None:
    source = parse(rendered.html)
    (csp,) = [
        a["content"] for tag, a in source.elements if a.get("http-equiv", "").lower() == "content-security-policy"
    ]
    assert "default-src 'none'" in csp
    assert "'unsafe-inline'" not in csp  # only the page's own script and style, by hash
    assert "base-uri 'none'" in csp
    linking = ("src", "href", "srcset", "action", "formaction", "poster", "data", "background", "ping")
    assert not [(tag, a) for tag, a in source.elements if any(name in a for name in linking)]
    assert not [tag for tag, _ in source.elements if tag in ("link", "img", "iframe", "object", "embed", "base")]
    (style,) = re.findall(r"<style>(.*?)</style>", rendered.html, re.DOTALL)
    assert "url(" not in style
    assert "@import" not in style
    (script,) = re.findall(r"<script>(.*?)</script>", rendered.html, re.DOTALL)
    assert not re.search(r"fetch|XMLHttpRequest|WebSocket|sendBeacon|import\(|\.src\b|https?:", script)


def test_opening_the_page_makes_no_network_request(rendered: Rendered, tmp_path: Path) -> None:
    # The probe first: a page that does fetch must show up in it.
    canary = tmp_path / "canary.html"
    canary.write_text('<!DOCTYPE html><title>c</title><img src="http://127.0.0.1:9/canary.png">')
    _, _, seen = open_in_chromium(canary, tmp_path / "chromium")
    assert seen == ["http://127.0.0.1:9/canary.png"]
    assert rendered.requests == []


# ---- the file --------------------------------------------------------------------------


def test_report_file_is_private_and_never_overwritten(rendered: Rendered) -> None:
    assert stat.S_IMODE(rendered.report.stat().st_mode) == 0o600

    def report(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MCPBOX, "logs", "report", rendered.log.stem, *args],
            env=rendered.home.full_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    before = rendered.report.read_bytes()
    refused = report("-o", str(rendered.report))
    assert refused.returncode == 2
    assert "--force" in refused.stderr
    assert rendered.report.read_bytes() == before
    assert report("-o", str(rendered.report), "--force").returncode == 0
    assert stat.S_IMODE(rendered.report.stat().st_mode) == 0o600
    to_stdout = report("-o", "-")
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout.startswith("<!DOCTYPE html>")
    assert rendered.log.stem in to_stdout.stdout
