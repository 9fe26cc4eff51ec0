"""Persistent identity: 0600 key file, stable peer id, clear errors, never logged."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from p2p.identity import IdentityError, load_or_create_keypair, peer_id_for_key_file


def test_key_file_is_created_owner_only_and_stable(tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "sub" / "node.key"
    first = peer_id_for_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert peer_id_for_key_file(path) == first and first.startswith("12D3KooW")
    raw = path.read_bytes()
    key = load_or_create_keypair(path).private_key.to_bytes()
    logged = caplog.text
    assert raw.hex() not in logged and key.hex() not in logged and first in logged


def test_loose_permissions_are_tightened(tmp_path) -> None:
    path = tmp_path / "k"
    peer_id_for_key_file(path)
    os.chmod(path, 0o644)
    peer_id_for_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_corrupt_key_file_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "k"
    path.write_bytes(b"garbage")
    os.chmod(path, 0o600)
    with pytest.raises(IdentityError, match="does not hold a libp2p private key"):
        peer_id_for_key_file(path)
