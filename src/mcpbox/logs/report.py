"""One session log as one self-contained HTML page, to read in a browser or to hand to someone.

What the log holds came from the model and the server, neither of them trusted. Every string
from it is escaped, and its invisible characters (bidi overrides, zero-width, controls) are
spelled out, before it reaches the page. The page's Content-Security-Policy lets it load
nothing and run nothing but its own script and style, named by their hashes: a string that
got past the escaping would still be inert, and opening the page never touches the network.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcpbox._text import visible
from mcpbox._version import __version__
from mcpbox.logs.export import read_session
from mcpbox.logs.timeline import Call, SessionSummary
from mcpbox.logs.verify import GOOD, Report, verify_file

if TYPE_CHECKING:
    from mcpbox.logs.signing import Verifier

MAX_PAYLOAD = 256 * 1024  # characters of one message shown: a `giant` tool result must not make a 1 GB page
MAX_OUTCOME = 300  # characters of an error message in the calls table; the payload has all of it
MAX_DETAIL = 1000  # characters of one stderr line or event shown in "other records"
DIRECTIONS = {"c2s": "client → server", "s2c": "server → client", "stderr": "server stderr", "event": "mcpbox"}
# Plain printable ASCII needs no spelling out: the common case skips the per-character walk.
_PLAIN = re.compile(r"[\n\x20-\x7e]*")
# Fields every record has, or that the "other records" table shows in their own columns.
_HEAD = frozenset({"seq", "t", "prev", "dir", "kind", "event", "verdict", "rule", "reason", "size"})

_STYLE = """
:root { color-scheme: light dark; --fg: #1b1f24; --bg: #fff; --mute: #5f6b76; --line: #d8dee4; --soft: #f4f6f8;
  --bad: #b3261e; --warn: #8a5a00; --ok: #1a7f37; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117; --mute: #8d96a0; --line: #30363d;
  --soft: #161b22; --bad: #ff7b72; --warn: #d29922; --ok: #3fb950; } }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 2em auto;
  max-width: 1200px; padding: 0 1em; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.15em; margin: 1.6em 0 .5em; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.sub { color: var(--mute); margin: 0 0 1em; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: .25em 1.5em; margin: 0; }
dl.summary dt { color: var(--mute); } dl.summary dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35em .5em; border-bottom: 1px solid var(--line); }
th { position: sticky; top: 0; background: var(--bg); font-weight: 600; }
td { overflow-wrap: anywhere; } td.when { white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
th.wide { width: 24%; }
tr.payloads > td { border-bottom: 1px solid var(--line); padding-top: 0; }
tr.call > td { border-bottom: 0; }
.off { color: var(--mute); font-size: .9em; }
.bad { color: var(--bad); font-weight: 600; } .warn { color: var(--warn); font-weight: 600; }
.ok { color: var(--ok); }
details > summary { cursor: pointer; color: var(--mute); }
.record { margin: .4em 0 .8em; } .record h3 { font-size: 1em; font-weight: 600; margin: .3em 0; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: .6em; margin: 0;
  white-space: pre-wrap; overflow-wrap: anywhere; max-height: 32em; overflow: auto; }
.controls { display: flex; flex-wrap: wrap; gap: .5em; align-items: center; margin: .5em 0; }
.controls button { font: inherit; padding: .2em .7em; border: 1px solid var(--line); border-radius: 4px;
  background: var(--soft); color: var(--fg); cursor: pointer; }
.controls button[aria-pressed="true"] { border-color: var(--fg); font-weight: 600; }
.controls input { font: inherit; padding: .2em .5em; min-width: 16em; }
footer { color: var(--mute); margin: 2em 0; font-size: .9em; }
""".strip()

# Filters and "expand all": the page reads fine without them (everything is in the HTML).
_SCRIPT = """
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.call"));
  var buttons = Array.prototype.slice.call(document.querySelectorAll("button[data-filter]"));
  var search = document.getElementById("search");
  var filter = "all";
  function update() {
    var query = search.value.toLowerCase(), shown = 0;
    rows.forEach(function (row) {
      var payloads = row.nextElementSibling;
      var text = (row.textContent + " " + payloads.textContent).toLowerCase();
      var match = (filter === "all" || row.getAttribute("data-" + filter) === "1") &&
        (query === "" || text.indexOf(query) !== -1);
      row.hidden = !match;
      payloads.hidden = !match;
      if (match) { shown += 1; }
    });
    document.getElementById("shown").textContent = shown + " of " + rows.length + " calls shown";
  }
  buttons.forEach(function (button) {
    button.addEventListener("click", function () {
      filter = button.getAttribute("data-filter");
      buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
      update();
    });
  });
  function expand(open) {
    document.querySelectorAll("tr.payloads details").forEach(function (d) { d.open = open; });
  }
  document.getElementById("expand").addEventListener("click", function () { expand(true); });
  document.getElementById("collapse").addEventListener("click", function () { expand(false); });
  search.addEventListener("input", update);
  update();
})();
""".strip()


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# default-src covers scripts, styles, images, fonts, fetches, frames and media; base-uri and
# form-action do not fall back to it, so they are named. Only the two blocks below may run.
CSP = (
    f"default-src 'none'; script-src {_digest(_SCRIPT)}; style-src {_digest(_STYLE)}; "
    "base-uri 'none'; form-action 'none'"
)


def _h(value: object) -> str:
    """Log text as HTML text: what a reader could not see is spelled out, markup is escaped."""
    text = str(value)
    if not _PLAIN.fullmatch(text):
        text = visible(text)
    return html.escape(text, quote=True)


def _when(t: object, *, date: bool = False) -> str:
    if not isinstance(t, int | float) or isinstance(t, bool):
        return "—"
    try:
        moment = datetime.fromtimestamp(t, UTC)
    except (OverflowError, OSError, ValueError):  # an edited log; `verify` says so, the page still renders
        return "—"
    return moment.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S") + f".{moment.microsecond // 1000:03d}"


def _json(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) > MAX_PAYLOAD:
        text = text[:MAX_PAYLOAD] + f"\n… {len(text) - MAX_PAYLOAD} more characters; the session log has them all"
    return text


@dataclass
class _Session:
    """What the page is made from: one reading of the log."""

    summary: SessionSummary
    chain: Report
    calls: list[Call]
    records: dict[int, dict[str, Any]]  # by seq


def _read(path: Path, verifier: Verifier | None) -> _Session:
    records, summary, found = read_session(path)
    by_seq = {r["seq"]: r for r in records if isinstance(r.get("seq"), int)}
    return _Session(summary, verify_file(path, verifier), found, by_seq)


def _seqs(call: Call) -> list[int]:
    """The call's records, each once; an edited log's odd "seq" values name no record."""
    return list(dict.fromkeys(seq for seq in call.records if isinstance(seq, int)))


def _summary(session: _Session, failed: int) -> str:
    s, chain = session.summary, session.chain
    if s.ended:
        code = "?" if s.exit_code is None else s.exit_code
        ending = f"exit {code}" + (f" ({s.end_reason})" if s.end_reason else "")
    else:
        ending = "no end record: the session is still running, or mcpbox was killed"
    chain_text = f"{chain.status} ({chain.problem or chain.detail})"
    rows = [
        ("session", s.session, ""),
        ("profile", s.profile or "—", ""),
        ("image", s.image or "—", "mono"),
        ("start", _when(s.start, date=True) + " UTC", ""),
        ("duration", "—" if s.duration_s is None else f"{s.duration_s:.3f} s", ""),
        ("messages", s.messages, ""),
        ("tool calls", s.tool_calls, ""),
        ("blocked", s.blocked, "bad" if s.blocked else ""),
        ("calls", f"{len(session.calls)} requests ({failed} answered with an error)", ""),
        ("exit", ending, "" if s.ended and s.exit_code == 0 else "warn"),
        ("log", chain_text, "ok" if chain.status in GOOD else "bad" if not chain.ok else "warn"),
    ]
    items = "".join(
        f'<dt>{name}</dt><dd id="summary-{name.replace(" ", "-")}"'
        + (f' class="{css}"' if css else "")
        + f">{_h(value)}</dd>"
        for name, value, css in rows
    )
    return f'<dl class="summary">{items}</dl>'


def _outcome(call: Call) -> tuple[str, str, str]:
    """(word, css class, detail) for how a call ended."""
    message = str((call.error or {}).get("message", "")) if call.error else ""
    if call.blocked:  # the reason is in its own column
        return "blocked", "bad", message if message and message != call.reason else ""
    if call.response_t is None:
        return "no answer", "warn", "no response in the log"
    if call.failed:
        if not message:
            result = (call.response or {}).get("result")
            content = result.get("content") if isinstance(result, dict) else None
            texts = [c.get("text", "") for c in content if isinstance(c, dict)] if isinstance(content, list) else []
            message = " ".join(str(t) for t in texts)
        return "error", "bad", message if len(message) <= MAX_OUTCOME else message[:MAX_OUTCOME] + " …"
    return "ok", "ok", ""


def _decisions(session: _Session, call: Call) -> list[str]:
    """Each distinct rule and reason met on the way, request and answer."""
    seen: list[str] = []
    rules: set[str] = set()
    for seq in _seqs(call):
        record = session.records.get(seq, {})
        rule, reason = record.get("rule"), record.get("reason")
        if not (rule or reason) or (rule in rules and not reason):
            continue  # a refusal's answer names the rule its request record already explained
        if rule and reason and str(reason).startswith(f"{rule}:"):
            rule = None  # the reason already names its rule
        line = f"{rule or ''}{': ' if rule and reason else ''}{reason or ''}"
        if line not in seen:
            seen.append(line)
        rules.add(str(record.get("rule")))
    return seen


def _payloads(session: _Session, call: Call) -> str:
    parts = []
    seqs = _seqs(call)
    for seq in seqs:
        record = session.records.get(seq)
        if record is None:
            continue
        head = (
            f"record {seq} · {DIRECTIONS.get(str(record.get('dir')), record.get('dir'))} · "
            f"{record.get('kind', '?')} · {record.get('verdict', '?')} · {record.get('size', 0)} bytes"
        )
        body = _json(record["msg"]) if "msg" in record else "(not logged: the profile sets log.payloads to metadata)"
        parts.append(f'<div class="record"><h3>{_h(head)}</h3><pre>{_h(body)}</pre></div>')
    return (
        f'<tr class="payloads"><td></td><td colspan="7"><details><summary>payloads: {len(seqs)} record'
        f"{'' if len(seqs) == 1 else 's'}</summary>{''.join(parts)}</details></td></tr>"
    )


def _call_rows(session: _Session) -> str:
    start = session.summary.start
    rows = []
    for call in session.calls:
        word, css, detail = _outcome(call)
        offset = "" if start is None else f'<br><span class="off">+{call.t - start:.3f} s</span>'
        subject = f" <b>{_h(call.tool)}</b>" if call.tool else ""
        verdict = f'<span class="{"bad" if call.blocked else ""}">{_h(call.verdict)}</span>'
        if call.response_verdict == "mcpbox":
            verdict += '<br><span class="off">answered by mcpbox</span>'
        elif call.response_verdict not in (None, "forward"):
            verdict += f'<br><span class="off">answer: {_h(call.response_verdict)}</span>'
        rules = "<br>".join(_h(line) for line in _decisions(session, call))
        duration = "—" if call.duration_ms is None else f"{call.duration_ms:.3f} ms"
        flags = {
            "tool": call.method == "tools/call" and call.direction == "c2s",
            "blocked": call.blocked,
            "failed": call.failed or call.blocked,
            "open": call.response_t is None,
        }
        data = "".join(f' data-{name}="{int(value)}"' for name, value in flags.items())
        rows.append(
            f'<tr class="call" id="call-{_h(call.seq)}"{data}>'
            f'<td class="num">{_h(call.seq)}</td><td class="mono when">{_when(call.t)}{offset}</td>'
            f"<td>{DIRECTIONS[call.direction]}</td><td>{_h(call.method)}{subject}</td>"
            f'<td class="num">{duration}</td><td>{verdict}</td><td>{rules}</td>'
            f'<td><span class="{css}">{word}</span>{"<br>" + _h(detail) if detail else ""}</td></tr>'
        )
        rows.append(_payloads(session, call))
    return "".join(rows)


def _other_rows(session: _Session) -> tuple[int, str]:
    """Everything that is not part of a call: notifications, stderr, lifecycle events, batches."""
    taken = {seq for call in session.calls for seq in _seqs(call)}
    rows = []
    for seq, record in session.records.items():
        if seq in taken:
            continue
        direction = str(record.get("dir", "?"))
        what = record.get("event") if direction == "event" else record.get("kind", "?")
        if record.get("method"):
            what = f"{what} {record['method']}"
        rest = {k: v for k, v in record.items() if k not in _HEAD}
        detail = rest.pop("text", None) if direction == "stderr" else None
        if detail is None:
            detail = json.dumps(rest, ensure_ascii=False) if rest else ""
        detail = str(detail)
        if len(detail) > MAX_DETAIL:
            detail = detail[:MAX_DETAIL] + " …"
        why = " ".join(str(record[k]) for k in ("rule", "reason") if record.get(k))
        rows.append(
            f'<tr><td class="num">{seq}</td><td class="mono">{_when(record.get("t"))}</td>'
            f"<td>{_h(DIRECTIONS.get(direction, direction))}</td><td>{_h(what)}</td>"
            f'<td>{_h(record.get("verdict", ""))}</td><td>{_h(why)}</td><td class="mono">{_h(detail)}</td></tr>'
        )
    return len(rows), "".join(rows)


def render_report(path: Path, verifier: Verifier | None = None) -> str:
    """The page for one session log (a path: `verify.find_log` resolves ids and prefixes).

    ``verifier`` checks the log's seals, as `mcpbox logs verify` does; without one the page
    says the seals were not checked."""
    session = _read(path, verifier)
    failed = sum(1 for call in session.calls if call.failed and not call.blocked)
    others, other_rows = _other_rows(session)
    title = f"mcpbox session {session.summary.session}"
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    count = len(session.calls)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_h(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{_h(title)}</h1>
<p class="sub">Every string below is shown as the log holds it, escaped: what the server or the model said is
text here, never markup. Invisible characters are spelled out as \\u escapes.</p>
<h2>Summary</h2>
{_summary(session, failed)}
<h2>Calls</h2>
<div class="controls">
<button type="button" data-filter="all" aria-pressed="true">all</button>
<button type="button" data-filter="tool" aria-pressed="false">tool calls</button>
<button type="button" data-filter="blocked" aria-pressed="false">blocked</button>
<button type="button" data-filter="failed" aria-pressed="false">blocked or failed</button>
<button type="button" data-filter="open" aria-pressed="false">unanswered</button>
<input id="search" type="search" placeholder="filter: method, tool, text in payloads" aria-label="filter calls">
<button type="button" id="expand">expand all</button>
<button type="button" id="collapse">collapse all</button>
<span id="shown" class="off">{count} call{"" if count == 1 else "s"}</span>
</div>
<table id="calls">
<thead><tr><th class="num">#</th><th>time (UTC)</th><th>direction</th><th>method / tool</th>
<th class="num">duration</th><th>verdict</th><th class="wide">rule / reason</th><th class="wide">outcome</th>
</tr></thead>
<tbody>{_call_rows(session)}</tbody>
</table>
<h2>Other records</h2>
<details><summary>{others} notifications, stderr lines and lifecycle events</summary>
<table id="other">
<thead><tr><th class="num">#</th><th>time (UTC)</th><th>source</th><th>what</th><th>verdict</th>
<th>rule / reason</th><th>detail</th></tr></thead>
<tbody>{other_rows}</tbody>
</table>
</details>
<footer>Made by mcpbox {_h(__version__)} on {generated} from {_h(path.name)}. The "log" line above is what
<code>mcpbox logs verify</code> said of the log then; this page itself is not signed.</footer>
<script>{_SCRIPT}</script>
</body>
</html>
"""
