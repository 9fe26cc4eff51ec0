"""Ethereum key files: one hex private key per file, mode 0600, never logged or printed."""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

logger = logging.getLogger(__name__)

MAX_KEY_FILE_BYTES = 1024  # a key is 66 characters; read no more than this of whatever is there
_HEX_KEY_RE = re.compile(r"(0x)?[0-9a-fA-F]{64}")


class KeyFileError(Exception):
    """A key file is unreadable, malformed or readable by others."""


def write_key(path: Path, private_key: str) -> LocalAccount:
    """Write `private_key` to `path` (created 0600, parent dirs 0700) and return its account."""
    account = Account.from_key(private_key)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (account.key.to_0x_hex() + "\n").encode())
    finally:
        os.close(fd)
    logger.info("wrote key file %s for %s", path, account.address)
    return account


def load_key(path: Path) -> LocalAccount:
    """Read a key file; refuses files that group or others can read, and anything but one hex key."""
    path = Path(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        mode = st.st_mode & 0o777
        if mode & 0o077:
            raise KeyFileError(f"{path} has mode {oct(mode)}; run: chmod 600 {path}")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"key file {path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    # Messages never include the content: it could be key material.
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    if len(raw) > MAX_KEY_FILE_BYTES or not _HEX_KEY_RE.fullmatch(text):
        raise KeyFileError(f"{path} does not hold a valid hex private key (64 hex digits, optional 0x)")
    try:
        return Account.from_key(text)
    except Exception:  # zero or beyond the curve order; eth_keys raises several types
        raise KeyFileError(f"{path} does not hold a valid hex private key (out of range)") from None


def load_or_create_key(path: Path) -> LocalAccount:
    """Load the key at `path`, or create a fresh random one there (0600)."""
    path = Path(path)
    if path.exists():
        return load_key(path)
    return write_key(path, Account.create().key.to_0x_hex())
