"""The ledger's Ed25519 key pair: made once per workspace, never overwritten."""

from __future__ import annotations

import os
from pathlib import Path

from soundscape.errors import LedgerError

PRIVATE_KEY_NAME = "ledger-ed25519.pem"
PUBLIC_KEY_NAME = "ledger-ed25519.pub.pem"


def _write_exclusive(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` with ``data`` unless it exists; True when this call created it.

    Written to a temp file then hard-linked into place, so a concurrent opener never sees a
    half-written key and two processes creating a key at once agree on one.
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def load_or_create_key(keys_dir: Path, *, create: bool = True):
    """The ledger's Ed25519 private key from ``keys_dir``, made (mode 0600) on first use.

    Returns:
        The private key, or None when there is none and ``create`` is false.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey)

    private_path = Path(keys_dir) / PRIVATE_KEY_NAME
    public_path = Path(keys_dir) / PUBLIC_KEY_NAME
    if not private_path.exists():
        if not create:
            return None
        try:
            Path(keys_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger's keys folder {keys_dir}: "
                              f"{exc.strerror or exc}") from None
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        _write_exclusive(private_path, pem, 0o600)
    try:
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    except (ValueError, OSError) as exc:
        reason = (exc.strerror if isinstance(exc, OSError) and exc.strerror
                  else "not an unencrypted PEM private key")
        raise LedgerError(f"cannot read the ledger key {private_path}: {reason}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError(f"{private_path} is not an Ed25519 key")
    if not public_path.exists():
        _write_exclusive(public_path, public_pem(key.public_key()).encode(), 0o644)
    return key


def public_pem(public_key) -> str:
    """PEM text of a public key."""
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
