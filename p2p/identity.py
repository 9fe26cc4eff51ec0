"""Persistent libp2p identity: one Ed25519 key per node in an owner-only (0600) key file.

The file holds the libp2p protobuf serialisation of the private key (the format go- and
js-libp2p also use). The key is never logged; only the peer id derived from it is.
"""

from __future__ import annotations

import functools
import logging
import os
import stat
from pathlib import Path

from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.crypto.serialization import deserialize_private_key
from libp2p.peer.id import ID

__all__ = ["IdentityError", "base58", "load_or_create_keypair", "peer_id_for_key_file"]

logger = logging.getLogger(__name__)
MAX_KEY_FILE_BYTES = 4096


def base58(peer: ID) -> str:
    """``peer.to_base58()``, remembered: gossip checks the signer's and forwarder's ids of every
    message, each a fresh ID object whose base58 encoding (pure Python) would be computed again."""
    return _base58(peer.to_bytes())


@functools.lru_cache(maxsize=4096)
def _base58(raw: bytes) -> str:
    return ID(raw).to_base58()


class IdentityError(Exception):
    """A key file that exists but cannot be used (unreadable, corrupt, wrong key type)."""


def load_or_create_keypair(path: Path) -> KeyPair:
    """Load the Ed25519 key pair in ``path``, creating it (mode 0600) if the file is missing.

    Any unusable file (unreadable, a directory, empty, oversize, not a libp2p Ed25519 key) is
    one IdentityError line.
    """
    path = Path(path)
    try:
        if not path.exists():
            _create(path)
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise IdentityError(f"key file {path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            logger.warning("key file %s is readable by others (mode %o); restricting to 0600", path, mode)
            os.chmod(path, 0o600)
        with open(path, "rb") as fh:
            raw = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise IdentityError(f"key file {path} cannot be read or created: {reason}") from None
    if not raw or len(raw) > MAX_KEY_FILE_BYTES:
        raise IdentityError(f"key file {path} has an implausible size ({len(raw)} bytes; at most {MAX_KEY_FILE_BYTES})")
    try:
        key = deserialize_private_key(raw)
        key_type, public = key.get_type(), key.get_public_key()
    except Exception as exc:  # the library raises several types for garbage
        raise IdentityError(f"key file {path} does not hold a libp2p private key: {type(exc).__name__}") from None
    if key_type != KeyType.Ed25519:
        raise IdentityError(f"key file {path} holds a {key_type.name} key; Ed25519 expected")
    return KeyPair(key, public)


def peer_id_for_key_file(path: Path) -> str:
    """The base58 peer id of the identity in ``path`` (created, 0600, if missing)."""
    return ID.from_pubkey(load_or_create_keypair(path).public_key).to_base58()


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.new()
    data = key.serialize()
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic, and never replaces a key another process just created
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    logger.info("created libp2p identity %s in %s", ID.from_pubkey(key.get_public_key()).to_base58(), path)
