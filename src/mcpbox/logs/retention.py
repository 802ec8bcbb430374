"""How long session logs are kept: `log.keep_days` of the profile that wrote them (default 30).

`mcpbox logs prune` removes what is past its time, and every `mcpbox run` prunes its own
profile's old logs in the background, so retention holds without a cron job. A log whose
session is still running is never removed, whatever its age.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from mcpbox.errors import MCPBoxError
from mcpbox.logs import verify
from mcpbox.profile.model import LogSettings

DAY = 86400.0


@dataclass(frozen=True)
class Expired:
    path: Path
    profile: str | None
    age_days: float
    keep_days: int

    def as_dict(self) -> dict[str, object]:
        return {
            "session": self.path.stem,
            "path": str(self.path),
            "profile": self.profile,
            "age_days": round(self.age_days, 2),
            "keep_days": self.keep_days,
        }


def profile_of(path: Path) -> str | None:
    """The profile named in a log's start record."""
    try:
        with path.open("rb") as handle:
            first = json.loads(handle.readline())
    except (OSError, ValueError):
        return None
    name = first.get("profile") if isinstance(first, dict) else None
    return name if isinstance(name, str) else None


def keep_days_of(profile: str | None, cache: dict[str | None, int]) -> int:
    """The profile's `log.keep_days`; the default when the profile is gone or does not load
    (a broken profile must not make its logs immortal, nor delete them early)."""
    if profile not in cache:
        days = LogSettings().keep_days
        if profile is not None:
            from mcpbox.profile import load_profile  # noqa: PLC0415

            with contextlib.suppress(MCPBoxError):
                days = load_profile(profile).log.keep_days
        cache[profile] = days
    return cache[profile]


def expired(
    *, older_than_days: float | None = None, profile: str | None = None, now: float | None = None
) -> list[Expired]:
    """Logs past their keep time (or past ``older_than_days`` when given), oldest first."""
    now = time.time() if now is None else now
    cache: dict[str | None, int] = {}
    found: list[Expired] = []
    for path in verify.all_logs():
        owner = profile_of(path)
        if profile is not None and owner != profile:
            continue
        try:
            age = (now - path.stat().st_mtime) / DAY  # since its last record
        except OSError:
            continue  # removed meanwhile
        keep = keep_days_of(owner, cache)
        limit = keep if older_than_days is None else older_than_days
        if age > limit and not verify.running(path):
            found.append(Expired(path, owner, age, keep))
    return sorted(found, key=lambda item: -item.age_days)


def prune(items: list[Expired]) -> list[Expired]:
    """Remove the given logs; returns those actually removed."""
    removed: list[Expired] = []
    for item in items:
        try:
            item.path.unlink()
        except FileNotFoundError:
            continue
        removed.append(item)
    return removed
