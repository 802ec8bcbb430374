"""Which secrets exist, who uses them, and which are due for rotation: never their values."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mcpbox.errors import MCPBoxError
from mcpbox.profile import Profile, list_profiles, load_profile
from mcpbox.profile.model import SecretRef
from mcpbox.secrets.store import SecretStore, overdue


@dataclass
class EntryStatus:
    entry: str
    present: bool
    set_at: float | None = None  # None: not set through mcpbox
    used_by: list[str] = field(default_factory=list)  # "profile:VAR"
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "entry": self.entry,
            "present": self.present,
            "set_at": _iso(self.set_at),
            "used_by": self.used_by,
            "warnings": self.warnings,
        }


def _iso(when: float | None) -> str | None:
    return None if when is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _profiles() -> tuple[list[Profile], list[str]]:
    """Every profile that loads; the others are named, since their secrets cannot be counted."""
    loaded: list[Profile] = []
    broken: list[str] = []
    for ref in list_profiles():
        if ref.shadowed:
            continue
        try:
            loaded.append(load_profile(str(ref.path)))
        except MCPBoxError:
            broken.append(ref.name)
    return loaded, broken


def entries(store: SecretStore) -> tuple[list[EntryStatus], list[str]]:
    """Every entry mcpbox set or a profile names, and the profiles that could not be read."""
    times = store.set_times()
    profiles, broken = _profiles()
    names = set(times) | {ref.entry for profile in profiles for ref in profile.secrets}
    status = {name: EntryStatus(name, present=store.get(name) is not None, set_at=times.get(name)) for name in names}
    for profile in profiles:
        for ref in profile.secrets:
            status[ref.entry].used_by.append(f"{profile.name}:{ref.var}")
        for late in overdue(profile.secrets, times):
            status[late.ref.entry].warnings.append(f"{profile.name}: {late.describe()}; rotate it")
    for item in status.values():
        if not item.present:
            item.warnings.append(f"not in the keyring; set it with `mcpbox secret set {item.entry}`")
    return sorted(status.values(), key=lambda item: item.entry), broken


@dataclass(frozen=True)
class ProfileSecret:
    ref: SecretRef
    present: bool
    set_at: float | None
    warning: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "var": self.ref.var,
            "entry": self.ref.entry,
            "as": "file" if self.ref.as_file else "env",
            "present": self.present,
            "set_at": _iso(self.set_at),
            "rotate_after_days": self.ref.rotate_after_days,
            "warning": self.warning,
        }


def check(store: SecretStore, name_or_path: str) -> tuple[Profile, list[ProfileSecret]]:
    """Each secret of one profile: present or not, and due for rotation or not."""
    profile = load_profile(name_or_path)
    times = store.set_times()
    late = {item.ref: item.describe() for item in overdue(profile.secrets, times)}
    rows = [
        ProfileSecret(ref, store.get(ref.entry) is not None, times.get(ref.entry), late.get(ref))
        for ref in profile.secrets
    ]
    return profile, rows
