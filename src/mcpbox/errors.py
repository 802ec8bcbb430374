"""The one exception tree of mcpbox.

Every error a user can meet is an :class:`MCPBoxError`: one plain sentence that
names the file, key or object at fault, a remedy, the process exit code, and a
JSON-RPC error code so that `mcpbox run` can hand the same sentence to an MCP
client instead of hanging it. Library exceptions (docker, yaml, OS) are
translated where those libraries are imported, with ``raise ... from``.
"""

from __future__ import annotations

from typing import Any, ClassVar

# JSON-RPC "server error" codes are implementation-defined in -32099..-32000.
RPC_SANDBOX_UNAVAILABLE = -32010
RPC_SERVER_EXITED = -32011
RPC_MESSAGE_TOO_LARGE = -32012
RPC_BAD_PROFILE = -32013
RPC_SECRET_UNAVAILABLE = -32014
RPC_POLICY_REFUSED = -32015  # a request mcpbox's policy refused outright (not a tool result)
RPC_CALL_TIMEOUT = -32016  # a tool call outlived policy.call_timeout


class MCPBoxError(Exception):
    """Root of every error mcpbox raises on purpose."""

    exit_code: ClassVar[int] = 1
    rpc_code: ClassVar[int] = RPC_SANDBOX_UNAVAILABLE

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return f"{self.message} {self.remedy}".strip()

    def rpc_error(self) -> dict[str, Any]:
        """The JSON-RPC ``error`` object a client receives for this failure."""
        return {
            "code": self.rpc_code,
            "message": f"mcpbox: {self}",
            "data": {"mcpbox": {"error": type(self).__name__, "remedy": self.remedy}},
        }


class UsageError(MCPBoxError):
    """Bad input on the command line."""

    exit_code = 2


class ProfileError(UsageError):
    """A profile that cannot be found, parsed or trusted; nothing is started."""

    rpc_code = RPC_BAD_PROFILE


class EngineError(MCPBoxError):
    """The Docker engine cannot be reached or refused an operation."""


class ImageMissingError(EngineError):
    """The profile's image is not present locally (mcpbox never pulls implicitly)."""


class SandboxError(MCPBoxError):
    """A sandbox failed while running: it crashed, was stopped, or could not be supervised."""

    rpc_code = RPC_SERVER_EXITED


class SecretError(MCPBoxError):
    """A secret the profile names cannot be handed to the server; nothing is started."""

    rpc_code = RPC_SECRET_UNAVAILABLE


class KeyringError(SecretError):
    """No secure OS keyring is usable (none at all, only a plaintext/null one, or it is locked)."""


class SecretMissingError(SecretError):
    """A keyring entry the profile names is not set."""


class SessionNotFoundError(UsageError):
    """A session id that matches no running sandbox or log."""


class PinError(MCPBoxError):
    """The pinned tool definitions of a profile cannot be read or changed."""


class ApprovalError(MCPBoxError):
    """Pending approvals cannot be listed or answered."""


__all__ = [
    "RPC_BAD_PROFILE",
    "RPC_CALL_TIMEOUT",
    "RPC_MESSAGE_TOO_LARGE",
    "RPC_POLICY_REFUSED",
    "RPC_SANDBOX_UNAVAILABLE",
    "RPC_SECRET_UNAVAILABLE",
    "RPC_SERVER_EXITED",
    "ApprovalError",
    "EngineError",
    "ImageMissingError",
    "KeyringError",
    "MCPBoxError",
    "PinError",
    "ProfileError",
    "SandboxError",
    "SecretError",
    "SecretMissingError",
    "SessionNotFoundError",
    "UsageError",
]
