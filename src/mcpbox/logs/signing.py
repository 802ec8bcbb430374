"""The log-signing key: an Ed25519 key pair kept in the OS keyring, and the seals it makes.

A seal is a log record that signs the chain head: the SHA-256 of the record before it,
which through ``prev`` covers every record since the first. The signed bytes also name
the session and the seal's own position, so a seal cannot be moved to another place or
another session's log. The private key never leaves the keyring except into the memory
of a running `mcpbox run`; `mcpbox logs pubkey` exports the public half, so logs can be
checked on a machine (or by a person) that holds no secret at all.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mcpbox import paths
from mcpbox.errors import MCPBoxError, UsageError

KEY_ENTRY = "_log-signing-key"  # "_": reserved for mcpbox; `secret set` refuses such names
DOMAIN = b"mcpbox-log-seal/1"  # the signed bytes say what they are: a signature made here means nothing elsewhere


def seal_message(session: str, seq: int, prev: str, stamp: str, *, final: bool) -> bytes:
    """What a seal at record ``seq`` signs: the session, that position, the hash of all before it,
    the seal's own time as written, and whether it closes the log."""
    parts = (DOMAIN, session.encode(), str(seq).encode(), prev.encode(), stamp.encode(), b"final" if final else b"")
    return b"\0".join(parts)


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey
    key: str  # key_id of the public half, written in each seal

    @classmethod
    def of(cls, private: Ed25519PrivateKey) -> Signer:
        return cls(private, key_id(private.public_key()))

    def seal(self, session: str, seq: int, prev: str, stamp: str, *, final: bool) -> str:
        return base64.b64encode(self.private.sign(seal_message(session, seq, prev, stamp, final=final))).decode()


class Verifier:
    """Public keys by key id; checks seals."""

    def __init__(self, keys: list[Ed25519PublicKey]) -> None:
        self.keys = {key_id(k): k for k in keys}

    def check(self, key: str, sig: str, message: bytes) -> bool | None:
        """True: a good seal. False: a forged or broken one. None: made by a key not given here."""
        public = self.keys.get(key)
        if public is None:
            return None
        try:
            raw = base64.b64decode(sig, validate=True)
            public.verify(raw, message)
        except (InvalidSignature, ValueError):
            return False
        # Only the writer's own spelling: base64's last character carries spare bits that decoding ignores.
        return base64.b64encode(raw).decode() == sig


@contextlib.contextmanager
def _creation_lock() -> Iterator[None]:
    """Two first sessions starting at once must not each make a key and keep only one."""
    lock_path = paths.ensure_private_dir(paths.state_dir()) / "log-signing.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _decode(stored: str) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(stored, validate=True))
    except ValueError as exc:
        raise MCPBoxError(
            f"the keyring entry {KEY_ENTRY!r} (service mcpbox) is not an Ed25519 key.",
            "Something else wrote it. Remove that entry with your keyring's own tool; the next "
            "`mcpbox logs pubkey` makes a new key (logs sealed by the old one then need its public key to verify).",
        ) from exc


def load_key() -> Ed25519PrivateKey | None:
    """The key from the OS keyring, or None if there is none yet.
    Raises :class:`mcpbox.errors.KeyringError` when no secure keyring is usable."""
    from mcpbox.secrets.store import SecretStore  # noqa: PLC0415 - the keyring import: ~70 ms

    stored = SecretStore().get_own(KEY_ENTRY)
    return None if stored is None else _decode(stored)


def load_or_make_key() -> Ed25519PrivateKey:
    """The key from the OS keyring, made and stored there on first use."""
    from mcpbox.secrets.store import SecretStore  # noqa: PLC0415

    store = SecretStore()
    stored = store.get_own(KEY_ENTRY)
    if stored is not None:
        return _decode(stored)
    with _creation_lock():
        stored = store.get_own(KEY_ENTRY)  # another session may have made it while we waited
        if stored is not None:
            return _decode(stored)
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        store.set_own(KEY_ENTRY, base64.b64encode(raw).decode())
        return key


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def read_public_keys(files: list[Path]) -> list[Ed25519PublicKey]:
    """Public keys from PEM files (as `mcpbox logs pubkey` writes them)."""
    keys: list[Ed25519PublicKey] = []
    for file in files:
        try:
            loaded = serialization.load_pem_public_key(file.read_bytes())
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"{file} is not a readable PEM public key ({exc}).",
                "Give a file written by `mcpbox logs pubkey -o FILE`.",
            ) from exc
        if not isinstance(loaded, Ed25519PublicKey):
            raise UsageError(f"{file} holds a {type(loaded).__name__}, not an Ed25519 key.", "Give the mcpbox log key.")
        keys.append(loaded)
    return keys
