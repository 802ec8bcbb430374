"""Hidden instructions in tool definitions, server instructions and prompts (tool poisoning).

A model reads a tool's description and schema verbatim; a person rarely does. A poisoned
definition tells the model to read ``~/.ssh/id_rsa`` "before using this tool" inside an
``<IMPORTANT>`` block, or spells its orders in characters no screen shows (Unicode tags,
zero-width characters, terminal escapes). :func:`scan` finds the published patterns. It is a
heuristic: pinning and a person's review catch what changes later (a "rug pull") or reads as
ordinary text.

What counts as hidden is defined here once; :mod:`mcpbox.policy.output` strips the same set.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from itertools import chain
from typing import Literal

FindingKind = Literal["hidden-instruction", "invisible-unicode", "ansi-escape"]

MAX_FINDINGS = 50
MAX_DEPTH = 64  # no real schema comes close; deeper parts are reported, not read
TAGS = range(0xE0000, 0xE0080)  # Unicode tags: invisible copies of ASCII, e.g. U+E0041 is "A"
_SHOWN_TAG_TEXT = 60
_SHOWN_KEY = 40
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$@-]+")

# One row per marker: (pattern, what a finding shows); a label may have several rows. Matched on
# lower-cased text, as received and as the model reads it (hidden characters removed, tags
# decoded). Each pattern starts with a literal (never \b, a look-behind comes after it): re then
# jumps to candidates, where it would otherwise try every position (30 times slower).
_MARKER_TABLE: tuple[tuple[str, str], ...] = (
    (r"<\s*/?\s*important\s*>", "<IMPORTANT> tag"),
    (r"<\s*/?\s*system\s*>", "<SYSTEM> tag"),
    (r"<\s*/?\s*instructions?\s*>", "<instructions> tag"),
    (r"<\s*/?\s*secret\s*>", "<secret> tag"),
    (r"\[\s*/?\s*inst\s*\]", "[INST] tag"),
    (r"<<\s*/?\s*sys\s*>>", "<<SYS>> tag"),
    (r"<\|\s*(?:im_start|im_end|system|endoftext)\s*\|>", "chat-template token (<|im_start|>)"),
    *(
        (
            rf"{verb}\s+(?:all\s+)?(?:the\s+|any\s+|your\s+)?(?:previous|prior|above|earlier|preceding)\s+instructions\b",
            "'ignore previous instructions'",
        )
        for verb in ("ignore", "forget")
    ),
    (r"disregard\s+(?:\w+\s+){0,3}?instructions\b", "'disregard ... instructions'"),
    *(
        (rf"{verb}\s+(?:tell|inform|mention|notify|alert)\b[^.\n]{{0,40}}?\b(?:user|human)\b", "'do not tell the user'")
        for verb in (r"do\s+not", "don['\u2019]?t", "never")
    ),
    (r"without\s+(?:telling|informing|notifying|alerting)\s+(?:the\s+)?(?:user|human)\b", "'without telling the user'"),
    (r"before\s+using\s+this\s+tool\b[^.\n]{0,40}?\bread\b", "'before using this tool ... read'"),
    (r"this\s+is\s+(?:very|extremely|really|critically)\s+important\b", "'this is very important'"),
    (r"\.ssh\b", "sensitive path '~/.ssh'"),
    (r"id_(?:rsa|dsa|ecdsa|ed25519)\b", "SSH private key file 'id_rsa'"),
    (r"\.aws[/\\]credentials\b", "sensitive path '~/.aws/credentials'"),
    # Not process.env or $.env: the look-behind sits after the literal and checks the character before it.
    (r"\.env(?<![a-z0-9_.$-]\.env)\b(?!-)", "sensitive path '.env'"),
    (r"/etc/shadow\b", "sensitive path '/etc/shadow'"),
    (r"mcp\.json\b", "MCP client config 'mcp.json'"),
    (r"claude_desktop_config\.json\b", "MCP client config 'claude_desktop_config.json'"),
    (r"\.netrc\b", "sensitive path '~/.netrc'"),
    (r"\.git-credentials\b", "sensitive path '~/.git-credentials'"),
    (r"\.kube[/\\]config\b", "sensitive path '~/.kube/config'"),
)
MARKERS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), label) for p, label in _MARKER_TABLE)

# Terminal control, as whole sequences so nothing like "[31m" is left behind. String sequences
# (OSC, DCS, SOS, PM, APC) run to BEL or ST, or to the next ESC or the end when unterminated,
# which is as far as a terminal would swallow. Every ESC and C0/C1 control is matched by some branch.
_TERMINAL = (
    r"(?P<string>(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:[\x07\x9c]|\x1b\\)?)"
    r"|(?P<csi>(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?)"
    r"|(?P<esc>\x1b[\x20-\x2f]*[\x30-\x7e]?)"
    r"|(?P<control>[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f])"
)
# Per byte: "!" for an ASCII control character (ESC, DEL, C0 but tab and line breaks), else " ".
_CONTROL_MARKS = bytes(33 if (byte < 0x20 and byte not in b"\t\n\r") or byte == 0x7F else 32 for byte in range(256))
_STRING_NAMES = {"]": "OSC", "P": "DCS", "X": "SOS", "^": "PM", "_": "APC"}
_C1_STRING_NAMES = {0x90: "DCS", 0x98: "SOS", 0x9D: "OSC", 0x9E: "PM", 0x9F: "APC"}


@functools.cache
def invisible_code_points() -> frozenset[int]:
    """Every format character (category Cf: zero-width, joiners, bidi controls…) and the whole tag block.

    Derived from the running Python's Unicode data, on first use: a scan costs tens of
    milliseconds, which `mcpbox run` should not pay at start-up. Format characters exist only in
    planes 0, 1 and 14.
    """
    planes = chain(range(0x20000), range(0xE0000, 0xE1000))
    return frozenset(cp for cp in planes if unicodedata.category(chr(cp)) == "Cf").union(TAGS)


def _char_class(code_points: frozenset[int]) -> str:
    ranges: list[tuple[int, int]] = []
    for cp in sorted(code_points):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return "".join(f"\\U{low:08x}" if low == high else f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges)


@functools.cache
def hidden_pattern() -> re.Pattern[str]:
    """Terminal control (groups ``string``, ``csi``, ``esc``, ``control``) and invisible
    characters (``tag`` runs, other ``invisible``): everything a person does not see."""
    others = _char_class(invisible_code_points().difference(TAGS))
    return re.compile(f"{_TERMINAL}|(?P<tag>[\\U000e0000-\\U000e007f]+)|(?P<invisible>[{others}])")


def _byte_class(values: list[int]) -> bytes:
    return b"[" + b"".join(re.escape(bytes([value])) for value in values) + b"]"


@functools.cache
def hidden_bytes() -> re.Pattern[bytes]:
    """The UTF-8 of every C1 control and invisible character: a search on encoded text is many
    times faster than :func:`hidden_pattern` on the text, so it decides whether that one runs."""
    tails: dict[bytes, dict[bytes, list[int]]] = {}  # lead byte -> middle bytes -> last bytes
    for cp in sorted(invisible_code_points().union(range(0x80, 0xA0))):
        encoded = chr(cp).encode()
        tails.setdefault(encoded[:1], {}).setdefault(encoded[1:-1], []).append(encoded[-1])
    branches = (
        re.escape(lead) + b"(?:" + b"|".join(re.escape(mid) + _byte_class(last) for mid, last in mids.items()) + b")"
        for lead, mids in tails.items()
    )
    return re.compile(b"|".join(branches))


def hidden_matches(text: str) -> list[re.Match[str]]:
    """What ``hidden_pattern().finditer(text)`` finds, without walking every character of
    ordinary text: ASCII text is only looked at where its bytes hold a control character."""
    pattern = hidden_pattern()
    data = text.encode("utf-8", "surrogatepass")
    marks = data.translate(_CONTROL_MARKS)
    if not text.isascii():
        return list(pattern.finditer(text)) if b"!" in marks or hidden_bytes().search(data) else []
    found: list[re.Match[str]] = []
    pos = marks.find(b"!")
    while pos >= 0:
        match = pattern.match(text, pos)  # every ASCII control starts a sequence
        if match is None:
            break
        found.append(match)
        pos = marks.find(b"!", match.end())
    return found


def without(text: str, matches: list[re.Match[str]]) -> str:
    """``text`` with the matched spans (in order, not overlapping) cut out."""
    kept: list[str] = []
    pos = 0
    for match in matches:
        kept.append(text[pos : match.start()])
        pos = match.end()
    kept.append(text[pos:])
    return "".join(kept)


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    detail: str  # printable, short
    where: str  # JSON path in the scanned value; "" for the value itself

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}" if self.where else self.detail


def _describe(match: re.Match[str]) -> str:
    """A printable name for one terminal sequence or invisible character."""
    text, group = match.group(), match.lastgroup
    first = ord(text[0])
    if group == "string":
        name = _STRING_NAMES[text[1]] if first == 0x1B else _C1_STRING_NAMES[first]
        return f"ESC {text[1]} ... ({name})" if first == 0x1B else f"U+{first:04X} ... ({name})"
    if group == "csi":
        return "ESC [ ... (CSI)" if first == 0x1B else "U+009B ... (CSI)"
    if group == "esc":
        return f"ESC {text[1:]} (escape sequence)" if len(text) > 1 else "ESC (alone)"
    if group == "control":
        return f"U+{first:04X} ({'C1 ' if first >= 0x80 else ''}control character)"
    return f"U+{first:04X} {unicodedata.name(text, 'FORMAT CHARACTER')}"


def _scan_text(text: str, where: str, add: _Collector) -> None:
    counts: Counter[tuple[FindingKind, str]] = Counter()
    spelled: list[str] = []
    matches = hidden_matches(text)
    for match in matches:
        group = match.lastgroup
        if group == "tag":
            spelled.extend(chr(ord(c) - TAGS.start) for c in match.group() if 0x20 <= ord(c) - TAGS.start < 0x7F)
            counts["invisible-unicode", "tag characters"] += len(match.group())
        elif group == "invisible":
            counts["invisible-unicode", _describe(match)] += 1
        else:
            counts["ansi-escape", _describe(match)] += 1
    decoded = "".join(spelled)
    for (kind, what), count in counts.items():
        detail = what
        if what == "tag characters" and decoded:
            shown = decoded[:_SHOWN_TAG_TEXT] + ("…" if len(decoded) > _SHOWN_TAG_TEXT else "")
            detail = f"tag characters spelling '{shown}'"
        add(kind, f"{detail} (x{count})" if count > 1 else detail, where)
    # What the model reads: the text without what no one sees, also in compatibility form
    # (fullwidth letters become ASCII), and whatever the tags spell.
    readings = [text]
    if matches:
        readings.append(without(text, matches))
    if not readings[-1].isascii():
        readings.append(unicodedata.normalize("NFKC", readings[-1]))
    if decoded:
        readings.append(decoded)
    lowered = [reading.lower() for reading in readings]
    for pattern, label in MARKERS:
        for reading in lowered:
            if pattern.search(reading):
                add("hidden-instruction", label, where)
                break


class _Collector:
    """Findings in the order found, each (kind, detail, where) once, at most MAX_FINDINGS."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str, str], Finding] = {}

    @property
    def full(self) -> bool:
        return len(self.found) >= MAX_FINDINGS

    def __call__(self, kind: FindingKind, detail: str, where: str) -> None:
        if not self.full:
            self.found.setdefault((kind, detail, where), Finding(kind, detail, where))


def _key_path(path: str, key: str) -> str:
    """A key made printable: it comes from the server and ends up on a terminal."""
    if not _PLAIN_KEY.fullmatch(key):
        return f"{path}[{json.dumps(key[:_SHOWN_KEY] + ('...' if len(key) > _SHOWN_KEY else ''))}]"
    return f"{path}.{key}" if path else key


def scan(value: object, where: str = "") -> list[Finding]:
    """Findings in every string, dict keys included, of a decoded JSON value. Never raises."""
    add = _Collector()
    stack: list[tuple[object, str, int]] = [(value, where, 0)]
    while stack and not add.full:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _scan_text(item, path, add)
        elif isinstance(item, dict | list) and depth >= MAX_DEPTH:
            # Unread is not clean: a definition nested this deep is withheld like a poisoned one.
            add("hidden-instruction", f"nested deeper than {MAX_DEPTH} levels (not read)", path)
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                child_path = _key_path(path, key) if isinstance(key, str) else f"{path}[{key!r}]"
                stack.append((child, child_path, depth + 1))
                if isinstance(key, str):
                    stack.append((key, child_path, depth + 1))
        elif isinstance(item, list):
            stack.extend((item[i], f"{path}[{i}]", depth + 1) for i in reversed(range(len(item))))
    return list(add.found.values())
