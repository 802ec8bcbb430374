"""Sandbox profiles: the strict model and its loader."""

from mcpbox.profile.load import ProfileRef, find_profile, list_profiles, load_profile, parse_profile
from mcpbox.profile.model import Mount, Profile, Resources

__all__ = [
    "Mount",
    "Profile",
    "ProfileRef",
    "Resources",
    "find_profile",
    "list_profiles",
    "load_profile",
    "parse_profile",
]
