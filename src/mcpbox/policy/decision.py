"""What the policy decides about one message, and what it may do on its own later."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mcpbox.jsonrpc import RequestId

Action = Literal["forward", "rewrite", "reply", "hold", "drop"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """``forward``: the bytes as received. ``rewrite``: ``message`` instead. ``reply``: not
    forwarded; ``message`` goes back to the sender. ``hold``: kept until a person decides.
    ``drop``: not forwarded, nothing sent."""

    action: Action
    rule: str | None = None
    reason: str | None = None
    message: dict[str, Any] | None = None
    label: str | None = None  # the log's word for it when it is not the action ("block", "ask")

    @property
    def verdict(self) -> str:
        return self.label or self.action


FORWARD = Verdict("forward")


class Effects(Protocol):
    """What the engine may do besides judging the message in hand: the relay implements it."""

    def release_to_server(self, message: dict[str, Any], raw: bytes | None, *, rule: str, reason: str) -> None:
        """A held client request is approved: forward it now (as ``raw``, the bytes received, when given)."""

    def release_to_client(self, message: dict[str, Any], raw: bytes | None, *, rule: str, reason: str) -> None:
        """A held server message is approved: forward it now."""

    def send_client(self, message: dict[str, Any], *, rule: str, reason: str) -> None:
        """mcpbox's own message to the client (an approval question, an answer for a held call)."""

    def send_server(self, message: dict[str, Any], *, rule: str, reason: str) -> None:
        """mcpbox's own message to the server (a cancellation, an answer to a held request)."""

    def expire(self, ident: RequestId) -> bool:
        """Stop waiting for the server's answer to a client request; False if none was pending."""

    def call_later(self, delay: float, action: Callable[[], None]) -> Callable[[], None]:
        """Run ``action`` after ``delay`` seconds; returns a function that cancels it."""

    def warn(self, text: str) -> None:
        """One line for the person watching mcpbox's stderr (the client's log)."""

    def event(self, name: str, **fields: Any) -> None:
        """One record in the session log."""

    def mask(self, value: Any) -> Any:
        """``value`` with the profile's secret values masked, for anything shown to a person."""
