"""The engine client's attach socket outlives the SDK objects that made it."""

from __future__ import annotations

import gc
import socket
from typing import Any

import pytest

from mcpbox.sandbox.docker import Engine

pytestmark = pytest.mark.docker


def test_a_garbage_collection_does_not_close_the_attach_socket(docker_clean: Any) -> None:
    engine = Engine()
    created = docker_clean.create_container(
        "mcpbox/base:bookworm", ["cat"], stdin_open=True, labels={"mcpbox-test": "attach"}
    )
    raw = None
    try:
        raw = engine.attach(created["Id"])
        for _ in range(3):
            gc.collect()  # what any allocation-heavy thread may trigger at any time during a session
        engine.start(created["Id"])
        raw.sendall(b"still open\n")
        raw.settimeout(10)
        echoed = b""
        while b"still open" not in echoed:
            chunk = raw.recv(4096)
            assert chunk, "the attach stream ended"
            echoed += chunk
        assert raw.fileno() != -1
        raw.shutdown(socket.SHUT_WR)
    finally:
        if raw is not None:
            raw.close()
        engine.detach(created["Id"])
        engine.api.close()
        docker_clean.remove_container(created["Id"], force=True)
