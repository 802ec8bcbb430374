"""`mcpbox logs export` and the HTML report's escaping, on logs the real writer made.

The report in a real browser, from a real session, is tested in tests/integration/test_log_report.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from mcpbox.errors import MCPBoxError, UsageError
from mcpbox.logs import export
from mcpbox.logs.report import render_report
from mcpbox.logs.timeline import calls, read_records
from mcpbox.logs.writer import SessionLog
from tests.conftest import MCPBOX, Home

SESSION = "20261125-120000-abc123"


def _msg(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def write_session(directory: Path) -> Path:
    """A session with every kind of call the exporter tells apart."""
    log = SessionLog(directory / f"{SESSION}.jsonl")
    log.event("start", session=SESSION, profile="hostile", image="mcpbox/hostile:test", pid=1)

    def request(ident: int, method: str, params: dict[str, Any], **kw: Any) -> None:
        raw = _msg({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
        log.message("c2s", raw, kind="request", method=method, ident=ident, **kw)

    def answer(ident: int, body: dict[str, Any], **kw: Any) -> None:
        raw = _msg({"jsonrpc": "2.0", "id": ident, **body})
        log.message("s2c", raw, kind="response", method=None, ident=ident, **kw)

    request(1, "initialize", {"protocolVersion": "2025-11-25"})
    answer(1, {"result": {"protocolVersion": "2025-11-25"}})
    log.message("c2s", _msg({"jsonrpc": "2.0", "method": "notifications/initialized"}), kind="notification",
                method="notifications/initialized", ident=None)  # fmt: skip
    request(2, "tools/call", {"name": "echo", "arguments": {"text": "<b>hi</b>"}})
    answer(2, {"result": {"content": [{"type": "text", "text": "<b>hi</b>"}], "isError": False}})
    request(3, "tools/call", {"name": "write_file", "arguments": {}}, verdict="block", rule="tools.allow/deny",
            reason="tool write_file is not allowed")  # fmt: skip
    answer(3, {"result": {"content": [{"type": "text", "text": "refused"}], "isError": True}}, verdict="mcpbox",
           rule="tools.allow/deny")  # fmt: skip
    request(4, "tools/call", {"name": "add", "arguments": {"a": "x"}})
    answer(4, {"error": {"code": -32602, "message": "a must be an integer"}})
    request(5, "resources/read", {"uri": "file:///public/readme.txt"})
    answer(5, {"result": {"contents": []}})
    log.message("s2c", _msg({"jsonrpc": "2.0", "id": "s-1", "method": "roots/list"}), kind="request",
                method="roots/list", ident="s-1")  # fmt: skip
    log.message("c2s", _msg({"jsonrpc": "2.0", "id": "s-1", "result": {"roots": []}}), kind="response", method=None,
                ident="s-1")  # fmt: skip
    request(6, "tools/call", {"name": "hang", "arguments": {}})  # never answered
    log.event("end", exit_code=0, reason="client closed stdin")
    log.close()
    return log.path


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return write_session(tmp_path / "sessions")


# ---- jsonl --------------------------------------------------------------------


def test_jsonl_is_the_log_byte_for_byte(log_path: Path) -> None:
    assert b"".join(export.jsonl(log_path)) == log_path.read_bytes()


def test_jsonl_leaves_out_a_line_still_being_written(log_path: Path) -> None:
    whole = log_path.read_bytes()
    with log_path.open("ab") as handle:
        handle.write(b'{"seq":999,"t":1.0,"prev":"')
    assert b"".join(export.jsonl(log_path)) == whole


# ---- otlp ---------------------------------------------------------------------


def _attrs(items: list[dict[str, Any]]) -> dict[str, Any]:
    """OTLP KeyValues as a dict; int64 values are decimal strings on the wire, numbers here."""
    out: dict[str, Any] = {}
    for item in items:
        ((kind, value),) = item["value"].items()
        out[item["key"]] = int(value) if kind == "intValue" else value
    return out


@pytest.fixture
def spans(log_path: Path) -> list[dict[str, Any]]:
    request = json.loads(export.otlp_bytes(log_path))
    (resource_spans,) = request["resourceSpans"]
    (scope_spans,) = resource_spans["scopeSpans"]
    assert scope_spans["scope"]["name"] == "mcpbox"
    found: list[dict[str, Any]] = scope_spans["spans"]
    return found


def test_otlp_has_the_export_trace_service_request_shape(log_path: Path) -> None:
    data = export.otlp_bytes(log_path)
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1  # one request per line, as the Collector's file receiver reads them
    resource = _attrs(json.loads(data)["resourceSpans"][0]["resource"]["attributes"])
    assert resource["service.name"] == "mcpbox"
    assert resource["mcpbox.profile"] == "hostile"
    assert resource["mcpbox.session"] == SESSION


def test_otlp_has_one_span_per_call_named_by_method_or_tool(log_path: Path, spans: list[dict[str, Any]]) -> None:
    assert len(spans) == len(calls(read_records(log_path))) == 7
    assert [s["name"] for s in spans] == [
        "initialize",
        "tools/call echo",
        "tools/call write_file",
        "tools/call add",
        "resources/read",
        "roots/list",
        "tools/call hang",
    ]
    by_name = {s["name"]: _attrs(s["attributes"]) for s in spans}
    assert by_name["tools/call echo"]["mcp.tool"] == "echo"
    assert by_name["tools/call echo"]["mcp.method"] == "tools/call"
    assert by_name["tools/call echo"]["mcp.direction"] == "c2s"
    assert by_name["tools/call echo"]["rpc.jsonrpc.request_id"] == "2"
    assert by_name["tools/call echo"]["mcpbox.verdict"] == "forward"
    assert by_name["tools/call echo"]["mcpbox.request.size"] > 0
    assert by_name["tools/call echo"]["mcpbox.response.size"] > 0
    assert by_name["resources/read"]["mcp.resource.uri"] == "file:///public/readme.txt"
    assert by_name["roots/list"]["mcp.direction"] == "s2c"
    assert by_name["roots/list"]["rpc.jsonrpc.request_id"] == "s-1"
    blocked = by_name["tools/call write_file"]
    assert (blocked["mcpbox.verdict"], blocked["mcpbox.rule"]) == ("block", "tools.allow/deny")
    assert blocked["mcpbox.reason"] == "tool write_file is not allowed"
    assert by_name["tools/call hang"]["mcpbox.answered"] is False


def test_otlp_times_are_unix_nanos_as_strings_and_never_run_backwards(spans: list[dict[str, Any]]) -> None:
    for span in spans:
        start, end = span["startTimeUnixNano"], span["endTimeUnixNano"]
        assert isinstance(start, str)
        assert isinstance(end, str)
        assert re.fullmatch(r"[1-9][0-9]{18}", start), start  # nanoseconds since 1970, this century
        assert int(end) >= int(start)


def test_otlp_status_is_error_for_blocked_and_failed_calls_only(spans: list[dict[str, Any]]) -> None:
    status = {s["name"]: s["status"] for s in spans}
    assert status["tools/call write_file"] == {"code": export.STATUS_ERROR, "message": "tool write_file is not allowed"}
    assert status["tools/call add"]["code"] == export.STATUS_ERROR
    assert status["tools/call add"]["message"] == "a must be an integer"
    errors = {name for name, s in status.items() if s["code"] == export.STATUS_ERROR}
    assert errors == {"tools/call write_file", "tools/call add"}


def test_otlp_ids_are_hex_of_the_right_length_and_stable(log_path: Path, spans: list[dict[str, Any]]) -> None:
    trace_ids = {s["traceId"] for s in spans}
    assert len(trace_ids) == 1
    (trace_id,) = trace_ids
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert trace_id.strip("0")
    assert trace_id == export.trace_id(SESSION)
    span_ids = [s["spanId"] for s in spans]
    assert all(re.fullmatch(r"[0-9a-f]{16}", sid) and sid.strip("0") for sid in span_ids)
    assert len(set(span_ids)) == len(span_ids)
    assert export.otlp(log_path) == export.otlp(log_path)  # a second export names the same trace and spans
    assert export.trace_id("another-session") != trace_id


def test_otlp_kinds_say_who_asked(spans: list[dict[str, Any]]) -> None:
    kinds = {s["name"]: s["kind"] for s in spans}
    assert kinds["tools/call echo"] == export.SPAN_KIND_CLIENT
    assert kinds["roots/list"] == export.SPAN_KIND_SERVER


# ---- writing files ------------------------------------------------------------


def test_written_file_is_private_and_never_replaced_without_force(tmp_path: Path) -> None:
    dest = tmp_path / "out.json"
    export.write_private(dest, [b"one\n"])
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    with pytest.raises(UsageError, match="--force"):
        export.write_private(dest, [b"two\n"])
    assert dest.read_bytes() == b"one\n"
    dest.chmod(0o644)
    export.write_private(dest, [b"two\n"], force=True)
    assert dest.read_bytes() == b"two\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left


def test_a_symlink_at_the_destination_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "kept.txt"
    target.write_bytes(b"keep me")
    link = tmp_path / "out.json"
    link.symlink_to(target)
    with pytest.raises(UsageError):
        export.write_private(link, [b"export"])
    export.write_private(link, [b"export"], force=True)
    assert target.read_bytes() == b"keep me"
    assert not link.is_symlink()
    assert link.read_bytes() == b"export"


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    def chunks() -> Any:
        yield b"partial"
        raise RuntimeError("the log went away")

    dest = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        export.write_private(dest, chunks())
    assert not dest.exists()
    with pytest.raises(RuntimeError):
        export.write_private(dest, chunks(), force=True)
    assert list(tmp_path.iterdir()) == []


# ---- the command ----------------------------------------------------------------


def mcpbox(home: Home, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([MCPBOX, *args], env=home.full_env(), capture_output=True, timeout=60, check=False)


def test_export_command_writes_stdout_or_a_private_file(home: Home) -> None:
    path = write_session(home.sessions)
    result = mcpbox(home, "logs", "export", SESSION[:15])
    assert result.returncode == 0, result.stderr
    assert result.stdout == path.read_bytes()
    otlp = mcpbox(home, "logs", "export", str(path), "--format", "otlp")
    assert otlp.returncode == 0, otlp.stderr
    assert len(json.loads(otlp.stdout)["resourceSpans"][0]["scopeSpans"][0]["spans"]) == 7
    dest = home.root / "trace.json"
    assert mcpbox(home, "logs", "export", SESSION, "-f", "otlp", "-o", str(dest)).returncode == 0
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert json.loads(dest.read_bytes()) == json.loads(otlp.stdout)
    again = mcpbox(home, "logs", "export", SESSION, "-o", str(dest))
    assert again.returncode == 2
    assert b"--force" in again.stderr
    assert mcpbox(home, "logs", "export", SESSION, "-o", str(dest), "--force").returncode == 0
    assert dest.read_bytes() == path.read_bytes()


def test_export_command_refuses_an_unknown_format_or_session(home: Home) -> None:
    write_session(home.sessions)
    result = mcpbox(home, "logs", "export", SESSION, "--format", "csv")
    assert result.returncode == 2
    assert b"jsonl or otlp" in result.stderr
    missing = mcpbox(home, "logs", "export", "no-such-session")
    assert missing.returncode == 2
    assert b"matches no session log" in missing.stderr


def test_a_log_with_fields_of_the_wrong_type_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "edited.jsonl"
    record = {"seq": 1, "t": "soon", "prev": "0" * 64, "dir": "c2s", "kind": "request", "method": "x", "id": 1}
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(MCPBoxError, match="wrong type"):
        export.otlp(path)
    with pytest.raises(MCPBoxError, match="wrong type"):
        render_report(path)
    assert b"".join(export.jsonl(path)) == path.read_bytes()  # the bytes are still the bytes


# ---- the HTML report, without a browser (the browser tests are in tests/integration) ----


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    def handle_data(self, data: str) -> None:
        self.text += data


def _page(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser


def test_report_escapes_every_field_of_a_hostile_log(tmp_path: Path) -> None:
    evil = "<img src=x onerror=alert(1)></td></pre></script><script>alert(2)</script>\u202e\x1b[31m"
    log = SessionLog(tmp_path / f"{SESSION}.jsonl")
    log.event("start", session=evil, profile=evil, image=evil, pid=1)
    raw = _msg({"jsonrpc": "2.0", "id": evil, "method": evil, "params": {"name": evil, "arguments": {evil: evil}}})
    log.message("c2s", raw, kind="request", method=evil, ident=evil, verdict="block", rule=evil, reason=evil)
    log.message("s2c", _msg({"jsonrpc": "2.0", "id": evil, "error": {"code": 1, "message": evil}}), kind="response",
                method=None, ident=evil, verdict="forward", rule=evil, reason=evil)  # fmt: skip
    log.text("stderr", evil.encode(), verdict="forward", reason=evil)
    log.event(evil, **{evil: evil})
    log.event("end", exit_code=evil, reason=evil)
    log.close()
    html = render_report(log.path)
    page = _page(html)
    assert len([a for tag, a in page.elements if tag == "tr" and a.get("class") == "call"]) == 1
    assert [tag for tag, _ in page.elements].count("script") == 1
    assert not [tag for tag, _ in page.elements if tag in ("img", "a", "iframe", "object", "link", "base")]
    assert not [name for _, attrs in page.elements for name in attrs if name.startswith("on")]
    assert "\u202e" not in html
    assert "\x1b" not in html
    assert "\\u202e" in page.text
    assert "<script>alert(2)</script>" in page.text  # shown, as text


def test_report_policy_names_exactly_its_own_script_and_style(log_path: Path) -> None:
    html = render_report(log_path)
    page = _page(html)
    (csp,) = [a["content"] for tag, a in page.elements if a.get("http-equiv") == "Content-Security-Policy"]
    (script,) = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    (style,) = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert f"script-src {digest(script)};" in csp
    assert f"style-src {digest(style)};" in csp
    assert csp.startswith("default-src 'none';")


def test_report_of_a_log_without_payloads_says_so(tmp_path: Path) -> None:
    log = SessionLog(tmp_path / f"{SESSION}.jsonl", payloads="metadata")
    raw = _msg({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}})
    log.message("c2s", raw, kind="request", method="tools/call", ident=1)
    log.close()
    assert "(not logged: the profile sets log.payloads to metadata)" in _page(render_report(log.path)).text
