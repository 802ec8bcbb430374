"""Hidden instructions in tool definitions, server instructions and prompts (tool poisoning).

A heuristic by nature: it finds the published patterns (an ``<IMPORTANT>``
block, "ignore previous instructions", requests for SSH keys or other clients'
configs, text hidden in invisible characters or terminal escapes). Pinning and a
person's review are what catch the rest.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

FindingKind = Literal["hidden-instruction", "invisible-unicode", "ansi-escape"]
MAX_FINDINGS = 50
MAX_DEPTH = 64
MAX_SCAN_CHARS = 1 << 20  # per string: past this only the start is scanned, and that is reported

_MARKERS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), label)
    for pattern, label in (
        (r"<\s*/?\s*important\s*>", "<IMPORTANT> tag"),
        (r"<\s*/?\s*system\s*>", "<SYSTEM> tag"),
        (r"<\s*/?\s*instructions?\s*>", "<instructions> tag"),
        (r"<\s*/?\s*secret\s*>", "<secret> tag"),
        (r"\[/?INST\]", "[INST] marker"),
        (r"<\|im_start\|>|<\|im_end\|>", "chat-template marker"),
        (
            r"\bignore\s+(?:all\s+)?(?:the\s+)?(?:previous|prior|above|earlier)\s+instructions",
            "'ignore previous instructions'",
        ),
        (
            r"\bdisregard\s+(?:all\s+)?(?:the\s+)?(?:previous|prior|above|earlier|other)\s+instructions",
            "'disregard instructions'",
        ),
        (
            r"\b(?:do\s+not|don'?t|never)\s+(?:tell|inform|mention|reveal|notify|alert)\b[^.]{0,40}\buser",
            "'do not tell the user'",
        ),
        (
            r"\bbefore\s+using\s+this\s+tool\b[^.]{0,40}\b(?:read|open|fetch|cat|send|pass)\b",
            "'before using this tool, read…'",
        ),
        (r"\bthis\s+is\s+very\s+important\b", "'this is very important'"),
        (r"~/\.ssh\b|\.ssh/", "mentions ~/.ssh"),
        (r"\bid_(?:rsa|dsa|ecdsa|ed25519)\b", "mentions an SSH private key"),
        (r"\.aws/credentials\b", "mentions AWS credentials"),
        (r"(?:^|[\s/'\"`])\.env\b", "mentions a .env file"),
        (r"/etc/shadow\b", "mentions /etc/shadow"),
        (r"\bclaude_desktop_config\.json\b|\.cursor/mcp\.json\b|\bmcp\.json\b", "mentions an MCP client config"),
        (r"\.netrc\b|\.git-credentials\b|\.kube/config\b|\.docker/config\.json\b", "mentions a credentials file"),
    )
)
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])|[\x80-\x9f]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _invisible(char: str) -> bool:
    """Format characters (zero-width, bidi, tags…): rendered as nothing, read by the model."""
    return unicodedata.category(char) == "Cf" or 0xE0000 <= ord(char) <= 0xE007F


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    detail: str
    where: str

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}" if self.where else self.detail


def _scan_text(text: str, where: str, found: list[Finding]) -> None:
    if len(text) > MAX_SCAN_CHARS:
        found.append(Finding("hidden-instruction", f"a {len(text)}-character string (only the start was read)", where))
        text = text[:MAX_SCAN_CHARS]
    hidden = [c for c in text if _invisible(c)]
    if hidden:
        tags = "".join(chr(ord(c) - 0xE0000) for c in hidden if 0xE0020 <= ord(c) <= 0xE007E)
        if tags:
            shown = tags[:60] + ("…" if len(tags) > 60 else "")
            found.append(Finding("invisible-unicode", f"tag characters spelling {shown!r}", where))
        others = sorted({c for c in hidden if not 0xE0000 <= ord(c) <= 0xE007F})
        for char in others[:5]:
            name = unicodedata.name(char, "FORMAT CHARACTER")
            found.append(Finding("invisible-unicode", f"U+{ord(char):04X} {name} (x{hidden.count(char)})", where))
    if _ESCAPE.search(text):
        found.append(Finding("ansi-escape", "terminal escape sequence", where))
    elif _CONTROL.search(text):
        found.append(Finding("ansi-escape", "control character", where))
    # Markers are looked for in what the model reads: with invisible characters removed and tags decoded.
    visible = "".join(c for c in text if not _invisible(c))
    decoded = "".join(chr(ord(c) - 0xE0000) for c in hidden if 0xE0020 <= ord(c) <= 0xE007E)
    for candidate in (visible, decoded):
        for pattern, label in _MARKERS:
            if pattern.search(candidate):
                found.append(Finding("hidden-instruction", label, where))


def scan(value: object, where: str = "") -> list[Finding]:
    """Findings in every string (keys too) of a decoded JSON value; never raises."""
    found: list[Finding] = []
    stack: list[tuple[object, str, int]] = [(value, where, 0)]
    while stack and len(found) < MAX_FINDINGS * 4:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _scan_text(item, path, found)
        elif depth >= MAX_DEPTH:
            found.append(Finding("hidden-instruction", "nested too deeply to be read", path))
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                child_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str):
                    _scan_text(key, child_path, found)
                stack.append((child, child_path, depth + 1))
        elif isinstance(item, list):
            for index in reversed(range(len(item))):
                stack.append((item[index], f"{path}[{index}]", depth + 1))
    unique: list[Finding] = []
    for finding in found:
        if finding not in unique:
            unique.append(finding)
    return unique[:MAX_FINDINGS]
