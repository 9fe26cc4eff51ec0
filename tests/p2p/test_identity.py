"""Persistent identity: 0600 key file, stable peer id, clear errors, never logged."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from p2p.identity import IdentityError, base58, load_or_create_keypair, peer_id_for_key_file


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


@pytest.mark.parametrize("content", [
    b"", b"\x00", b"\x08\x01\x12\x40" + b"\x00" * 10, b"\x08\x01\x12\x05abc", b"\x08\x02\x12\x20" + b"\x01" * 32,
    b"\xff" * 64, b"x" * 5000, b"\x08\x01\x12\x40" + b"\x01" * 64 + b"junk",
])
def test_bad_key_file_content_is_one_identity_error(tmp_path, content: bytes) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(IdentityError) as err:
        load_or_create_keypair(path)
    assert "\n" not in str(err.value)


def test_key_file_that_is_a_directory_is_left_alone(tmp_path) -> None:
    path = tmp_path / "k"
    path.mkdir(mode=0o755)
    with pytest.raises(IdentityError, match="not a regular file"):
        peer_id_for_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755  # never chmod-ed


def test_key_file_under_a_file_is_an_identity_error(tmp_path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(IdentityError, match="cannot be read or created"):
        peer_id_for_key_file(tmp_path / "plain" / "k")


def test_base58_is_the_peer_ids_own_encoding_for_any_id_object(tmp_path) -> None:
    from libp2p.peer.id import ID

    key_pair = load_or_create_keypair(tmp_path / "k")
    pid = ID.from_pubkey(key_pair.public_key)
    again = ID(pid.to_bytes())  # a fresh object, as each gossip message carries its signer
    assert base58(pid) == base58(again) == pid.to_base58() == peer_id_for_key_file(tmp_path / "k")
    other = ID.from_pubkey(load_or_create_keypair(tmp_path / "k2").public_key)
    assert base58(other) == other.to_base58() != base58(pid)
