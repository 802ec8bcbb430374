"""Which keyring backend is used: only a secure one, never a plaintext, null or failing one."""

from __future__ import annotations

from typing import Any

import keyring
import pytest
from keyring.backends import SecretService, chainer, fail, null
from keyrings.alt.file import PlaintextKeyring

from mcpbox.errors import KeyringError, SecretMissingError
from mcpbox.profile.model import SecretRef
from mcpbox.secrets.store import SecretStore, secure_backend


def make(backend_class: Any) -> Any:
    """An instance of an (untyped) keyring backend class."""
    return backend_class()


class Chain(chainer.ChainerBackend):
    """keyring's own chainer, over the members given instead of those this machine offers."""

    def __init__(self, members: list[Any]) -> None:
        self.members = members

    @property
    def backends(self) -> list[Any]:
        return self.members


Chain.__module__ = chainer.ChainerBackend.__module__
Chain.__name__ = "ChainerBackend"


@pytest.mark.parametrize(
    "backend", [make(null.Keyring), make(fail.Keyring), make(PlaintextKeyring)], ids=["null", "fail", "plain"]
)
def test_insecure_backends_are_refused(monkeypatch: pytest.MonkeyPatch, backend: Any) -> None:
    monkeypatch.setattr(keyring, "get_keyring", lambda: backend)
    with pytest.raises(KeyringError, match="no secure OS keyring") as caught:
        secure_backend()
    assert "gnome-keyring-daemon" in caught.value.remedy


def test_a_chain_is_used_only_through_its_secure_member(monkeypatch: pytest.MonkeyPatch) -> None:
    secure = make(SecretService.Keyring)
    monkeypatch.setattr(keyring, "get_keyring", lambda: Chain([make(PlaintextKeyring), secure]))
    assert secure_backend() is secure
    monkeypatch.setattr(keyring, "get_keyring", lambda: Chain([make(PlaintextKeyring)]))
    with pytest.raises(KeyringError, match="PlaintextKeyring keeps values in a file"):
        secure_backend()


def test_missing_entries_are_all_named_with_their_commands(tmp_path: Any) -> None:
    store = SecretStore(backend=make(null.Keyring), index=tmp_path / "secrets.json")
    with pytest.raises(SecretMissingError) as caught:
        store.resolve([SecretRef("A", "first"), SecretRef("B", "second")])
    text = str(caught.value)
    assert "'first' (for A), 'second' (for B)" in text
    assert "`mcpbox secret set first`; `mcpbox secret set second`" in text
