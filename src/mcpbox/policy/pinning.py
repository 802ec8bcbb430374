"""Which tool definitions (and server instructions) the client may see: allow/deny,
pins (trust on first use) and suspicious-definition checks, judged together.

A definition is shown only when the profile permits its name and it is either
the pinned one, or the first listing of a never-pinned profile and clean. Every
other one is withheld and recorded as pending, so `mcpbox pins accept` can show
exactly what changed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mcpbox.errors import PinError
from mcpbox.policy.pins import Pending, Pin, PinFile, PinStore, digest
from mcpbox.policy.suspicious import scan
from mcpbox.profile.model import Profile

MAX_SCANS = 4096  # cached findings, by definition digest
MAX_PENDING = 256  # pending definitions kept in a pin file

if TYPE_CHECKING:
    from mcpbox.policy.arguments import ArgumentChecker


@dataclass
class ToolView:
    """The latest definition of one tool the server listed, and whether the client may use it."""

    name: str
    definition: dict[str, Any]
    digest: str
    visible: bool
    rule: str | None = None  # why it is withheld
    reason: str | None = None
    _checker: ArgumentChecker | None = None

    def checker(self, profile: Profile) -> ArgumentChecker:
        if self._checker is None:
            # jsonschema costs ~80 ms to import: paid at the first call (or by prewarm()), not at start-up.
            from mcpbox.policy.arguments import ArgumentChecker  # noqa: PLC0415

            policy = profile.policy
            self._checker = ArgumentChecker(
                self.definition.get("inputSchema"),
                strict=policy.strict_arguments,
                max_chars=policy.max_argument_chars,
                rules=profile.tools.rules_for(self.name),
            )
        return self._checker


@dataclass(frozen=True)
class Judgement:
    visible: bool
    rule: str | None = None
    reason: str | None = None
    pin: bool = False  # trust it now (first use)
    pending: str | None = None  # record it as pending: changed | new | suspicious
    findings: tuple[str, ...] = ()
    digest: str = ""  # of the definition judged ("" when it was refused by name before being read)


class Pinning:
    def __init__(self, profile: Profile, store: PinStore | None) -> None:
        self.profile = profile
        self.store = store if profile.policy.pin_tools else None
        self.first_use: bool | None = None  # decided once per session, at the first definition seen
        self.listings = 0  # first pages of tools/list the client asked for
        self._scans: dict[str, tuple[str, ...]] = {}
        self.warned: set[str] = set()  # digests already reported, so a re-list does not repeat a warning

    def listing_started(self) -> None:
        """A client asks for the first page of tools: a second such listing ends first use, so a
        server that never completes a listing cannot keep trust-on-first-use open."""
        self.listings += 1
        if self.listings > 1:
            self.end_first_use()

    def end_first_use(self) -> None:
        """From now on a tool without a pin is new, and withheld (list_changed, a second listing)."""
        if not self.first_use:
            return  # not started (nothing was trusted yet) or already over
        self.first_use = False
        if self.store is not None:
            with contextlib.suppress(OSError, PinError):
                self.store.update(lambda pins: None if pins.tools_pinned else replace(pins, tools_pinned=True))

    def pins(self) -> PinFile | None:
        """The pin file; raises PinError when it exists but cannot be trusted."""
        return self.store.load() if self.store is not None else None

    def findings(self, definition: object, key: str) -> tuple[str, ...]:
        if key not in self._scans:
            if len(self._scans) >= MAX_SCANS:  # a server inventing definitions must not grow this without end
                self._scans.clear()
            self._scans[key] = tuple(str(f) for f in scan(definition))
        return self._scans[key]

    def _first_use(self, pins: PinFile | None) -> bool:
        if self.first_use is None:
            self.first_use = pins is None or not pins.tools_pinned
        return self.first_use

    def judge_tool(self, name: str, definition: dict[str, Any], pins: PinFile | None, error: str | None) -> Judgement:
        tools = self.profile.tools
        if not tools.permits(name):
            rule = (
                "tools.deny"
                if not tools.allow or any(fnmatch.fnmatchcase(name, p) for p in tools.deny)
                else "tools.allow"
            )
            return Judgement(False, rule, f"tool {name} is not allowed by profile {self.profile.name} ({rule})")
        pin = pins.tools.get(name) if pins is not None else None
        return self._judge(
            definition, pin, pins, error, what=f"tool {name}'s definition", accept=f"{self.profile.name} {name}"
        )

    def judge_instructions(self, text: object, pins: PinFile | None, error: str | None) -> Judgement:
        pin = pins.instructions if pins is not None else None
        what = "the server's instructions"
        return self._judge(text, pin, pins, error, what=what, accept=f"{self.profile.name} --instructions")

    def _judge(
        self, definition: object, pin: Pin | None, pins: PinFile | None, error: str | None, *, what: str, accept: str
    ) -> Judgement:
        """One definition against its pin and the suspicious-definition checks; the first that objects decides."""
        key = digest(definition)
        findings = self.findings(definition, key)
        judged = functools.partial(Judgement, digest=key)  # the listing and the record reuse the hash
        suspect = bool(findings) and self.profile.policy.block_suspicious
        suspect_reason = f"{what} looks like hidden instructions: {'; '.join(findings[:3])}"
        if self.store is None:
            if suspect:
                return judged(False, "suspicious", suspect_reason, findings=findings)
            return judged(True, findings=findings)
        if error is not None:
            return judged(False, "pinning", error)
        if pin is not None and pin.digest == key:
            return judged(True, findings=findings)  # a person trusted exactly this
        review = f"review it with `mcpbox pins accept {accept}`"
        if suspect:
            why = f"{suspect_reason}; {review}"
            return judged(False, "suspicious", why, pending="suspicious", findings=findings)
        if pin is None and self._first_use(pins):
            return judged(True, pin=True, findings=findings)
        if pin is None:
            why = f"{what} is new since profile {self.profile.name} was pinned; {review}"
            return judged(False, "pinning", why, pending="new", findings=findings)
        why = f"{what} changed since it was pinned; {review}"
        return judged(False, "pinning", why, pending="changed", findings=findings)

    def record(
        self,
        tools: list[tuple[str, dict[str, Any], Judgement]],
        instructions: tuple[object, Judgement] | None = None,
        *,
        listing_complete: bool = False,
    ) -> None:
        """Write what the judgements decided (new pins, pending changes) in one locked update."""
        if self.store is None:
            return
        pin_all = listing_complete and bool(self.first_use)
        work = [(n, d, j) for n, d, j in tools if j.pin or j.pending]
        if not work and instructions is None and not pin_all:
            return
        now = time.time()

        def change(pins: PinFile) -> PinFile | None:
            new_tools, pending = dict(pins.tools), dict(pins.pending)
            changed = False
            for name, definition, judgement in work:
                key = judgement.digest or digest(definition)
                if judgement.pin and name not in new_tools:
                    new_tools[name] = Pin(key, definition, now)
                    changed = True
                elif judgement.pending and (name not in pending or pending[name].digest != key):
                    pending[name] = Pending(key, definition, now, judgement.pending, judgement.findings)
                    changed = True
            if len(pending) > MAX_PENDING:  # keep the newest: a server inventing tools must not fill the file
                pending = dict(sorted(pending.items(), key=lambda item: item[1].at)[-MAX_PENDING:])
            result = replace(pins, tools=new_tools, pending=pending)
            if instructions is not None:
                text, judgement = instructions
                key = judgement.digest or digest(text)
                if judgement.pin and pins.instructions is None:
                    result = replace(result, instructions=Pin(key, text, now))
                    changed = True
                elif judgement.pending and (
                    pins.pending_instructions is None or pins.pending_instructions.digest != key
                ):
                    pending_text = Pending(key, text, now, judgement.pending, judgement.findings)
                    result = replace(result, pending_instructions=pending_text)
                    changed = True
            if pin_all and not pins.tools_pinned:
                result = replace(result, tools_pinned=True)
                changed = True
            return result if changed else None

        # On failure the decision stands (withheld stays withheld); only the record for `pins accept` is missing.
        with contextlib.suppress(OSError, PinError):
            self.store.update(change)
        if pin_all:
            self.first_use = False
