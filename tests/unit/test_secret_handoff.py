"""The entry shim, run by real shells: exact values in, not one byte of the client's stream consumed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpbox.profile.model import SecretRef
from mcpbox.secrets import handoff
from mcpbox.secrets.store import Resolved

SHELLS = [sh for sh in ("dash", "bash", "busybox") if shutil.which(sh)]
# Prints the variable's bytes as hex, every inherited name starting "mcpbox", then stdin as the server sees it.
SERVER = [
    sys.executable,
    "-c",
    "import os,sys;print(os.environb.get(b'TOKEN',b'<unset>').hex());"
    "print(sorted(k for k in os.environ if k.lower().startswith('mcpbox')));"
    "print(sys.stdin.buffer.read().hex())",
]


def run_shim(
    shell: str, stdin: bytes, tmp_path: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    argv = handoff.entrypoint()
    script = argv[2].replace(handoff_dir(), str(tmp_path))  # /run/secrets is not writable on the host
    prefix = [shell, "sh"] if shell == "busybox" else [shell]
    env = {"PATH": os.environ["PATH"], **(extra_env or {})}
    return subprocess.run(
        [*prefix, "-c", script, argv[3], *SERVER], check=False, input=stdin, capture_output=True, env=env, timeout=30
    )


def handoff_dir() -> str:
    from mcpbox.profile.model import SECRETS_DIR

    return SECRETS_DIR


def resolved(value: bytes, *, as_file: bool = False) -> Resolved:
    return Resolved(SecretRef("TOKEN", "tok", as_file=as_file), value)


@pytest.mark.parametrize("shell", SHELLS)
def test_value_arrives_exactly_and_stdin_continues(shell: str, tmp_path: Path) -> None:
    value = "sk-'$(touch /tmp/pwned)`id`\n\\x41 é\t%s%n end\n".encode()
    rest = b'{"jsonrpc":"2.0","id":1,"method":"initialize"}\nend\n'
    # An image that sets a variable the shim uses must not get an encoded copy of the value.
    done = run_shim(shell, handoff.frame([resolved(value)]) + rest, tmp_path, {"mcpbox_v": "image", "mcpbox_l": "x"})
    assert done.returncode == 0, done.stderr
    token_hex, names, stdin_hex = done.stdout.decode().splitlines()
    assert bytes.fromhex(token_hex) == value
    assert names == "[]"
    assert bytes.fromhex(stdin_hex) == rest
    assert not Path("/tmp/pwned").exists()


@pytest.mark.parametrize("shell", SHELLS)
def test_file_secret_is_written_private_and_its_path_exported(shell: str, tmp_path: Path) -> None:
    value = b"file-secret-\x01\xff-value"
    done = run_shim(shell, handoff.frame([resolved(value, as_file=True)]), tmp_path)
    assert done.returncode == 0, done.stderr
    secret = tmp_path / "TOKEN"
    assert secret.read_bytes() == value
    assert secret.stat().st_mode & 0o777 == 0o600
    assert done.stdout.decode().splitlines()[0] == b"<unset>".hex()


@pytest.mark.parametrize(
    "stdin",
    [
        b"",
        b'{"jsonrpc":"2.0"}\n',
        b"mcpbox-secrets 1\nenv TOKEN \\101\n",  # no end: the client closed early
        b"mcpbox-secrets 1\nenv TOKEN $(id)\nend\n",
        b"mcpbox-secrets 1\nenv BAD-NAME \\101\nend\n",
        b"mcpbox-secrets 1\nexec TOKEN \\101\nend\n",
    ],
    ids=["empty", "client first", "cut short", "code", "bad name", "bad kind"],
)
def test_anything_but_a_well_formed_frame_starts_nothing(stdin: bytes, tmp_path: Path) -> None:
    done = run_shim(SHELLS[0], stdin, tmp_path)
    assert done.returncode == 125
    assert done.stdout == b""
    assert b"mcpbox:" in done.stderr


@settings(max_examples=40)
@given(value=st.binary(min_size=1, max_size=300).filter(lambda b: b"\0" not in b))
def test_property_any_bytes_survive_the_shim(value: bytes) -> None:
    done = run_shim(SHELLS[0], handoff.frame([resolved(value)]), Path("/nonexistent"))
    assert done.returncode == 0, done.stderr
    assert bytes.fromhex(done.stdout.decode().splitlines()[0]) == value


def test_frame_is_ascii_and_never_holds_the_value() -> None:
    value = b"plain-token-value"
    frame = handoff.frame([resolved(value)])
    assert frame.isascii()
    assert value not in frame
    assert value not in " ".join(handoff.entrypoint()).encode()
