"""Who owns a sandbox, and which sandboxes have lost their owner.

A sandbox is labelled with its owner's pid, start time and host. It is an
orphan when that process no longer runs on this host (a recycled pid has a
different start time). Sandboxes of other hosts sharing a remote engine are
never touched.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from mcpbox.sandbox.docker import Engine, SandboxInfo
from mcpbox.sandbox.spec import Owner

# psutil reports start times rounded differently from what we stored; allow for it.
START_TIME_SLACK = 1.0


def this_host() -> str:
    return socket.gethostname()


def _own_start_time() -> float:
    """This process's start time, as psutil's create_time() computes it.

    On Linux it is read straight from /proc (psutil's own method), keeping
    psutil's import off `mcpbox run`'s start-up path; elsewhere, psutil.
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
        boot = next(
            int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        import psutil  # noqa: PLC0415

        return float(psutil.Process().create_time())


def current_owner(session: str) -> Owner:
    return Owner(session=session, pid=os.getpid(), started=_own_start_time(), host=this_host())


def owner_alive(pid: int, started: float) -> bool:
    import psutil  # noqa: PLC0415

    try:
        actual = psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, ValueError):
        return False
    except psutil.AccessDenied:
        return True  # it exists; not ours to judge
    return abs(actual - started) <= START_TIME_SLACK


def is_orphan(info: SandboxInfo, host: str, alive: Callable[[int, float], bool] = owner_alive) -> bool:
    if info.host != host:
        return False
    return info.parent_pid <= 0 or not alive(info.parent_pid, info.parent_started)


def collect_garbage(engine: Engine, *, min_age: float = 0.0) -> list[SandboxInfo]:
    """Remove every sandbox on this host whose mcpbox process is gone; returns what was removed.

    ``min_age`` spares sandboxes created in the last seconds, whose owner may
    still be between `create` and its first label-visible moment.
    """
    host = this_host()
    removed = []
    now = time.time()
    for info in engine.sandboxes():
        if now - info.created < min_age:
            continue
        if is_orphan(info, host):
            engine.remove(info.id)
            removed.append(info)
    # A session's own network goes after its containers: the engine refuses to remove one in use.
    for info in engine.networks():
        if is_orphan(info, host):
            engine.remove_network(info.id)
            removed.append(info)
    return removed
