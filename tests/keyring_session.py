"""A real, private, headless Secret Service (GNOME Keyring) for tests.

`start_keyring(root)` runs its own D-Bus session bus and gnome-keyring-daemon with every file
(bus socket, control socket, keyrings) under `root`, so tests exercise the same backend a desktop
user has without touching the developer's bus, keyring or home. Linux only; needs the Debian
packages dbus-daemon, dbus-bin (dbus-send) and gnome-keyring.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Unlocks the login keyring, and on first start creates it encrypted with this password.
PASSWORD = "mcpbox-test-keyring"  # noqa: S105 - a throwaway keyring's password, not a credential
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes; deep pytest tmp dirs can exceed it
# A bus of our own config, not session.conf: no service directories, so nothing (a second keyring,
# a prompter) is ever auto-activated with the wrong environment or outlives stop().
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <!-- session.conf's policy, verbatim: without the bare eavesdrop rule, replies never reach dbus-send -->
    <allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/>
  </policy>
</busconfig>
"""


@dataclass
class KeyringSession:
    env: dict[str, str]  # overlay on os.environ for a child that should use this keyring
    root: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        """Stop the keyring, then its bus; each ran in its own process group, so any child goes too."""
        procs, self.procs = self.procs, []  # idempotent: a second call finds nothing to do
        for proc in reversed(procs):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=STOP_TIMEOUT)  # reaps it: no zombie left either
                    break

    def logs(self) -> str:
        """The daemons' stderr, for error messages."""
        logs = sorted(self.root.glob("*.log"))
        return "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace').strip()}" for log in logs)


def _name_owned(address: str, name: str) -> bool:
    """Whether `name` has an owner on the bus at `address` (False while the bus is not up yet)."""
    ask = ["dbus-send", f"--bus={address}", "--print-reply=literal", "--dest=org.freedesktop.DBus",
           "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner", f"string:{name}"]  # fmt: skip
    try:
        reply = subprocess.run(ask, capture_output=True, text=True, timeout=2, check=False)
    except subprocess.TimeoutExpired:
        return False
    return reply.returncode == 0 and reply.stdout.split() == ["boolean", "true"]


def _wait(session: KeyringSession, what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        exited = [p for p in session.procs if p.poll() is not None]
        if exited or time.monotonic() > deadline:  # start_keyring stops the daemons
            why = f"{exited[0].args!r} exited with {exited[0].returncode}" if exited else f"{START_TIMEOUT:.0f} s"
            raise RuntimeError(f"test keyring: no {what} ({why})\n{session.logs()}")
        time.sleep(0.05)


def _spawn(session: KeyringSession, argv: list[str], env: dict[str, str], stdin: int) -> subprocess.Popen[bytes]:
    log = session.root / f"{Path(argv[0]).name}.log"
    with log.open("ab") as err:
        proc = subprocess.Popen(argv, env=env, stdin=stdin, stdout=err, stderr=err, start_new_session=True)
    session.procs.append(proc)
    return proc


def start_keyring(root: Path) -> KeyringSession:
    """A running, unlocked Secret Service on a private bus under `root`; call stop() when done."""
    missing = [tool for tool in ("dbus-daemon", "dbus-send", "gnome-keyring-daemon") if not shutil.which(tool)]
    if missing:
        raise RuntimeError(f"test keyring: {', '.join(missing)} not found (apt-get install dbus-daemon gnome-keyring)")
    root = root.resolve()
    socket, runtime, data = root / "bus", root / "runtime", root / "data"
    if len(str(runtime / "keyring" / "control")) > SOCKET_PATH_MAX:
        raise RuntimeError(f"test keyring: {root} is too deep for a unix socket path; use a shorter root")
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)  # owner-only, as the XDG spec requires of a runtime dir
    data.mkdir(parents=True, exist_ok=True)
    (root / "home").mkdir(exist_ok=True)
    (root / "bus.conf").write_text(BUS_CONFIG.format(socket=socket))
    address = f"unix:path={socket}"
    # XDG_DATA_HOME is returned too: a test that falls back to a file backend then writes under root.
    env = {"DBUS_SESSION_BUS_ADDRESS": address, "XDG_RUNTIME_DIR": str(runtime), "XDG_DATA_HOME": str(data)}
    # HOME too, for the daemons only: whatever they write outside XDG dirs stays in root.
    daemon_env = {**os.environ, **env, "HOME": str(root / "home")}
    for stale in ("GNOME_KEYRING_CONTROL", "SSH_AUTH_SOCK", "DISPLAY", "WAYLAND_DISPLAY"):
        daemon_env.pop(stale, None)  # else it may join the developer's keyring or try a graphical prompt
    session = KeyringSession(env=env, root=root)
    try:
        _start(session, address, daemon_env)
    except BaseException:
        session.stop()  # a failed or interrupted start leaves no daemon behind
        raise
    return session


def _start(session: KeyringSession, address: str, daemon_env: dict[str, str]) -> None:
    root = session.root
    _spawn(session, ["dbus-daemon", f"--config-file={root / 'bus.conf'}", "--nofork"], daemon_env, subprocess.DEVNULL)
    _wait(session, "D-Bus session bus", lambda: _name_owned(address, "org.freedesktop.DBus"))
    gnome_keyring = ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"]
    keyring = _spawn(session, gnome_keyring, daemon_env, subprocess.PIPE)
    assert keyring.stdin is not None
    with contextlib.suppress(BrokenPipeError):  # if it died at once, _wait reports why
        keyring.stdin.write(PASSWORD.encode())
        keyring.stdin.close()  # --unlock reads the password up to end of file
    _wait(session, "Secret Service (org.freedesktop.secrets)", lambda: _name_owned(address, "org.freedesktop.secrets"))
