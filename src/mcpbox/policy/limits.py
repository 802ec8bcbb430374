"""Rate and concurrency limits on tool calls: a model in a loop, or one talked into
hammering a tool, is stopped at the relay instead of at the user's bill or data."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from mcpbox.profile.model import Policy

WINDOW = 60.0


class Window:
    """Calls in the last minute, exactly (a sliding log, not a refilling bucket: the 121st call
    within any 60 seconds is refused, whatever the spacing)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.times: deque[float] = deque()

    def full(self, now: float) -> bool:
        while self.times and now - self.times[0] >= WINDOW:
            self.times.popleft()
        return len(self.times) >= self.limit

    def record(self, now: float) -> None:
        self.times.append(now)


class Limits:
    def __init__(self, policy: Policy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self.clock = clock
        self.total = Window(policy.calls_per_minute)
        self.per_tool: dict[str, Window] = {}
        self.in_flight = 0

    def admit(self, tool: str) -> str | None:
        """Count one call, or say which limit refuses it (and count nothing)."""
        now = self.clock()
        if self.in_flight >= self.policy.max_concurrent_calls:
            return (
                f"{self.in_flight} tool calls are already running, the most policy.max_concurrent_calls allows; "
                "retry when one has finished"
            )
        if self.total.full(now):
            return f"more than {self.total.limit} tool calls in one minute (policy.calls_per_minute); retry later"
        limit = self.policy.tool_limit(tool)
        window = None
        if limit is not None:
            window = self.per_tool.setdefault(tool, Window(limit))
            if window.full(now):
                return f"more than {limit} calls of {tool} in one minute (policy.tool_calls_per_minute); retry later"
            window.record(now)
        self.total.record(now)
        return None
