"""Secrets end to end: a real Secret Service keyring, real containers, a server that tries to leak its token.

The value is looked for everywhere the issue names: docker inspect, every host
process's argv and environment, the host's disk where mcpbox and Docker write,
the session log, mcpbox's stderr and every byte the client receives. Each
search is paired with a positive control, so a search that could not find the
value would fail the test instead of passing it.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest

from tests.conftest import MCPBOX, Home, RawClient, container_of, hostile_profile, read_log, sdk_client
from tests.keyring_session import KeyringSession

pytestmark = pytest.mark.docker
ENTRY = "leak-token"
MARK = f"[secret:{ENTRY}]"


def new_token() -> str:
    # '/' and '+' make base64, URL and JSON spellings differ from the raw one.
    return f"tok/{secrets.token_hex(12)}+Zq"


def mcpbox(home: Home, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MCPBOX, *args], input=stdin, capture_output=True, text=True, env=home.full_env(**env), timeout=60, check=False
    )


def set_secret(home: Home, value: str, entry: str = ENTRY) -> None:
    done = mcpbox(home, "secret", "set", entry, stdin=value + "\n")
    assert done.returncode == 0, done.stderr
    assert value not in done.stdout + done.stderr


def spellings(value: str) -> dict[str, bytes]:
    """The value as a leaking server would spell it, computed here independently of mcpbox's masker."""
    raw = value.encode()
    return {
        "raw": raw,
        "base64": base64.b64encode(raw).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
        "base64 at offset 1": base64.b64encode(b"x" + raw)[4:-4],
        "base64 at offset 2": base64.b64encode(b"xy" + raw)[4:-4],
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "url": quote(raw, safe="").encode(),
        "json unicode": "".join(f"\\u{ord(c):04x}" for c in value).encode(),
    }


def assert_absent(where: str, data: bytes, value: str) -> None:
    for name, form in spellings(value).items():
        assert form not in data, f"the secret ({name}) is visible in {where}"


def call(client: RawClient, ident: int, name: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    """A tools/call; returns its response and every raw line the client received until then."""
    client.send(
        {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    )
    lines: list[bytes] = []
    while True:
        line = client.recv_line(timeout=60)
        lines.append(line)
        message = json.loads(line)
        if message.get("id") == ident and "method" not in message:
            return message, lines


def pid_namespace(pid: int | str) -> str | None:
    try:
        return str(Path(f"/proc/{pid}/ns/pid").readlink())
    except OSError:
        return None


def host_processes_holding(value: bytes, sandbox_ns: str) -> tuple[list[str], list[str]]:
    """(host processes whose argv or environment hold ``value``, sandboxed ones that do)."""
    host: list[str] = []
    sandboxed: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        for part in ("cmdline", "environ"):
            try:
                data = (entry / part).read_bytes()
            except OSError:
                continue  # the process exited meanwhile
            if value in data:
                (sandboxed if pid_namespace(entry.name) == sandbox_ns else host).append(f"{entry.name}/{part}")
    return host, sandboxed


def files_holding(value: bytes, *roots: Path) -> list[str]:
    found = []
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink() and value in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def test_secret_reaches_the_server_and_nothing_else(
    kr_home: Home, keyring: KeyringSession, docker_clean: Any, raw_clients: list[RawClient]
) -> None:
    value = new_token()
    set_secret(kr_home, value)
    hostile_profile(
        kr_home,
        "leaky",
        secrets={"LEAK_TOKEN": ENTRY, "LEAK_FILE": {"entry": ENTRY, "as": "file"}},
        # The leak through a sampling request must reach the masking, not wait for an approval.
        policy={"server_requests": {"sampling": "allow"}},
    )
    client = RawClient("leaky", kr_home)
    raw_clients.append(client)
    received: list[bytes] = []
    assert "result" in client.initialize()

    # The server has it, in its environment and in a private file.
    where, lines = call(client, 1, "secret_where", {"var": "LEAK_TOKEN", "file": "/run/secrets/LEAK_FILE"})
    received += lines
    report = json.loads(where["result"]["content"][0]["text"])
    assert report["env"] == {"set": True, "length": len(value)}
    assert report["file"]["mode"] == "0600"
    assert report["file"]["same_as_env"] is True
    assert report["proc_self_environ"]["contains_value"] is True
    as_file, lines = call(client, 2, "secret_where", {"var": "LEAK_FILE", "file": "/run/secrets/LEAK_FILE"})
    received += lines
    file_report = json.loads(as_file["result"]["content"][0]["text"])
    assert file_report["env"]["set"] is False  # as: file keeps it out of the environment
    assert file_report["value_from"] == "file"

    # While it runs: docker inspect, every process on the host, and the disk where mcpbox and Docker write.
    row = container_of(docker_clean, client.proc.pid)
    info = docker_clean.inspect_container(row["Id"])
    assert_absent("docker inspect", json.dumps(info).encode(), value)
    assert info["Config"]["Entrypoint"][:2] == ["/bin/sh", "-c"]
    sandbox_ns = pid_namespace(info["State"]["Pid"])
    assert sandbox_ns is not None
    host, sandboxed = host_processes_holding(value.encode(), sandbox_ns)
    assert host == []
    assert sandboxed, "the scan found the value in no sandboxed process either: it cannot see anything"
    roots = [kr_home.root, keyring.root, Path("/var/lib/docker/containers") / info["Id"]]
    upper = (info.get("GraphDriver") or {}).get("Data", {}).get("UpperDir")
    roots += [Path(upper)] if upper else []
    assert files_holding(value.encode(), *roots) == []

    # Every way the server tries to hand it to the client.
    leaked, lines = call(client, 3, "leak_secret", {"var": "LEAK_TOKEN", "how": "all"})
    received += lines
    texts = [item["text"] for item in leaked["result"]["content"]]
    assert len(texts) >= 10
    assert all(MARK in text for text in texts), texts
    assert list(leaked["result"]["structuredContent"]) == [MARK]
    error, lines = call(client, 4, "leak_secret", {"var": "LEAK_TOKEN", "how": "error"})
    received += lines
    assert MARK in error["error"]["message"]
    from_file, lines = call(client, 5, "leak_secret", {"var": "x", "file": "/run/secrets/LEAK_FILE", "how": "raw"})
    received += lines
    assert MARK in from_file["result"]["content"][0]["text"]
    kinds = {json.loads(line).get("method") for line in received}
    assert {"notifications/message", "elicitation/create", "sampling/createMessage"} <= kinds
    client.close_stdin()
    assert client.wait() == 0

    to_client = b"".join(received)
    assert_absent("what the client received", to_client, value)
    assert_absent("mcpbox's stderr", client.stderr, value)
    assert MARK.encode() in client.stderr  # the server's stderr leak arrived, masked
    (log_path,) = kr_home.session_logs()
    log_bytes = log_path.read_bytes()
    assert_absent("the session log", log_bytes, value)
    masked = [r for r in read_log(log_path) if r.get("event") == "masked"]
    assert {r["direction"] for r in masked} >= {"s2c", "stderr"}
    assert all(r["secrets"] == [MARK] for r in masked)
    assert files_holding(value.encode(), kr_home.root, keyring.root) == []
    assert_absent_from_everything_made_of_the_log(kr_home, log_path, value)


def assert_absent_from_everything_made_of_the_log(home: Home, log_path: Path, value: str) -> None:
    """Exports, the HTML report and each viewer command: none may hold the value in any spelling."""
    stem = log_path.stem
    commands = {
        "export jsonl": ["export", stem, "--format", "jsonl"],
        "export otlp": ["export", stem, "--format", "otlp"],
        "the HTML report": ["report", stem, "-o", "-"],
        "show --full": ["show", stem, "--full"],
        "show --json": ["show", stem, "--json"],
        "tail --json": ["tail", stem, "-n", "100000", "--json"],
        "search --json": ["search", "--text", "secret", "--json"],
        "list --json": ["list", "--json"],
        "stats --json": ["stats", "--json"],
        "verify --json": ["verify", stem, "--json"],
    }
    for what, args in commands.items():
        done = subprocess.run(
            [MCPBOX, "logs", *args], env=home.full_env(), capture_output=True, check=False, timeout=60
        )
        assert done.returncode == 0, (what, done.stderr)
        assert done.stdout, what
        assert_absent(f"`mcpbox logs {' '.join(args)}`", done.stdout + done.stderr, value)
        if what in ("export jsonl", "export otlp", "show --full", "the HTML report"):
            # Positive control: the leaks are in there, masked; a search that saw nothing would pass too.
            assert MARK.encode() in done.stdout.replace(b"&#x27;", b"'"), what


def test_sdk_client_in_both_eras_sees_only_masked_values(
    kr_home: Home, keyring: KeyringSession, docker_clean: Any
) -> None:
    value = new_token()
    set_secret(kr_home, value)
    hostile_profile(kr_home, "leaky-sdk", secrets={"LEAK_TOKEN": ENTRY})

    async def leak(mode: str) -> list[str]:
        with anyio.fail_after(60):
            async with sdk_client("leaky-sdk", kr_home, mode=mode, env=keyring.env) as client:
                result = await client.call_tool("leak_secret", {"var": "LEAK_TOKEN", "how": "all"})
                return [item.text for item in result.content]

    for mode in ("auto", "legacy"):
        texts = anyio.run(leak, mode)
        assert texts
        assert all(MARK in text for text in texts)
        assert_absent(f"the SDK client's results ({mode})", json.dumps(texts).encode(), value)


def test_a_missing_secret_is_a_json_rpc_error_and_no_container(kr_home: Home, docker_clean: Any) -> None:
    hostile_profile(kr_home, "needs-secret", secrets={"API_KEY": "never-set-entry"})
    since = int(time.time()) - 1
    client = RawClient("needs-secret", kr_home)
    try:
        response = client.initialize()
    finally:
        client.close_stdin()
        client.wait()
    error = response["error"]
    assert error["code"] == -32014
    assert "'never-set-entry' (for API_KEY)" in error["message"]
    assert "mcpbox secret set never-set-entry" in error["message"]
    creates = list(
        docker_clean.events(
            since=since,
            until=int(time.time()) + 1,
            filters={"type": "container", "event": "create", "label": "mcpbox.profile=needs-secret"},
            decode=True,
        )
    )
    assert creates == []


INSECURE = {
    "plaintext file": {"PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring"},
    "null": {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"},
    "no keyring running": {"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/bus"},
}


@pytest.mark.parametrize("env", INSECURE.values(), ids=INSECURE.keys())
def test_an_insecure_keyring_is_refused(home: Home, tmp_path: Path, docker_clean: Any, env: dict[str, str]) -> None:
    data_home = tmp_path / "data"
    env = {"XDG_DATA_HOME": str(data_home), **env}
    done = mcpbox(home, "secret", "set", ENTRY, stdin=new_token(), **env)
    assert done.returncode == 1
    assert "no secure OS keyring is available" in done.stderr
    assert "gnome-keyring-daemon" in done.stderr  # how to get a real one
    assert not data_home.exists() or list(data_home.rglob("*")) == []  # nothing written in plaintext

    hostile_profile(home, "insecure", secrets={"API_KEY": ENTRY})
    client = RawClient("insecure", home, env=env)
    try:
        response = client.initialize()
    finally:
        client.close_stdin()
        client.wait()
    assert response["error"]["code"] == -32014
    assert "no secure OS keyring" in response["error"]["message"]


def test_rotation_and_the_secret_commands(kr_home: Home, docker_clean: Any, raw_clients: list[RawClient]) -> None:
    entry = "rotating-token"  # the keyring outlives each test: an entry of its own
    hostile_profile(kr_home, "rotating", secrets={"TOKEN": {"entry": entry, "rotate_after": "90d"}})
    missing = mcpbox(kr_home, "secret", "check", "rotating", "--json")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["secrets"][0]["present"] is False

    def length_seen() -> tuple[int, bytes]:
        client = RawClient("rotating", kr_home)
        raw_clients.append(client)
        client.initialize()
        where, _ = call(client, 1, "secret_where", {"var": "TOKEN"})
        client.close_stdin()
        client.wait()
        return json.loads(where["result"]["content"][0]["text"])["env"]["length"], client.stderr

    first, second = new_token(), new_token() + "-rotated"
    set_secret(kr_home, first, entry)
    assert length_seen()[0] == len(first)
    set_secret(kr_home, second, entry)  # rotation: the next session gets the new value
    length, stderr = length_seen()
    assert length == len(second)
    assert b"warning" not in stderr

    # Age it past rotate_after: run, list and check all warn.
    index = kr_home.state / "mcpbox" / "secrets.json"
    data = json.loads(index.read_text())
    data["entries"][entry]["set_at"] = time.time() - 100 * 86400
    index.write_text(json.dumps(data))
    _, stderr = length_seen()
    assert b"warning: secret 'rotating-token' was set 100 days ago, rotate_after is 90d" in stderr
    listed = mcpbox(kr_home, "secret", "list", "--json")
    (row,) = [r for r in json.loads(listed.stdout)["secrets"] if r["entry"] == entry]
    assert row["used_by"] == ["rotating:TOKEN"]
    assert row["present"] is True
    assert any("rotate" in warning for warning in row["warnings"])
    assert second not in listed.stdout + listed.stderr
    checked = mcpbox(kr_home, "secret", "check", "rotating")
    assert checked.returncode == 0
    assert "100 days ago" in checked.stdout

    removed = mcpbox(kr_home, "secret", "rm", entry)
    assert removed.returncode == 0
    assert mcpbox(kr_home, "secret", "check", "rotating").returncode == 1
    again = mcpbox(kr_home, "secret", "rm", entry)
    assert again.returncode == 1
    assert "no secret 'rotating-token'" in again.stderr


def test_bad_values_are_refused_before_the_keyring_keeps_them(kr_home: Home) -> None:
    for value, words in (("short", "shorter than 8"), ("", "shorter than 8")):
        done = mcpbox(kr_home, "secret", "set", "bad-value", stdin=value)
        assert done.returncode == 1
        assert words in done.stderr
    done = mcpbox(kr_home, "secret", "set", "../escape", stdin=new_token())
    assert done.returncode == 2
    assert "not a valid secret name" in done.stderr
    assert mcpbox(kr_home, "secret", "check", "time").stdout.strip() == "profile time uses no secrets"
