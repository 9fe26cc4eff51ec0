"""Connections, dev keys and key files."""

from __future__ import annotations

import stat

import pytest

from incentive.chain import ChainUnavailable, connect, dev_keys
from incentive.keys import KeyFileError, load_key, load_or_create_key, write_key


def test_unreachable_url_names_it():
    with pytest.raises(ChainUnavailable, match="127.0.0.1:9"):
        connect("http://127.0.0.1:9", timeout=2)
    with pytest.raises(ChainUnavailable):
        connect("ftp://nope")


def test_an_in_process_chain_leaves_the_warning_filters_as_they_were():
    # eth-tester sets every warning to "default" when it picks its backend; the launcher's filter
    # (py-libp2p's sockets left to the garbage collector) must survive connecting.
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ResourceWarning)
        before = list(warnings.filters)
        connect("eth-tester")
        assert warnings.filters == before


def test_dev_keys_beyond_builtin_are_funded():
    w3 = connect("eth-tester")
    keys = dev_keys(w3, 12)
    assert len(set(keys)) == 12
    from eth_account import Account
    assert w3.eth.get_balance(Account.from_key(keys[11]).address) > 0


def test_key_files_are_private(tmp_path, caplog):
    path = tmp_path / "keys" / "node.key"
    acct = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path).address == acct.address
    assert acct.key.hex() not in caplog.text and acct.key.to_0x_hex() not in caplog.text
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key(path)
    other = write_key(tmp_path / "w.key", "0x" + "11" * 32)
    assert other.address == load_key(tmp_path / "w.key").address


@pytest.mark.parametrize("content", [
    b"", b"\n", b"0x1234", b"0x" + b"11" * 33, b"zz" * 32, b"\xff\xfe\x00\x01" * 8, b"0x" + b"00" * 32,
    b"0x" + b"ff" * 32, b"0x" + b"11" * 32 + b"\n0x" + b"22" * 32, b"1" * 5000, "é".encode() * 32,
])
def test_bad_key_file_content_is_one_line(tmp_path, content):
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="does not hold a valid hex private key") as err:
        load_key(path)
    assert "\n" not in str(err.value) and "11" * 32 not in str(err.value)


def test_key_file_that_is_a_directory_or_missing(tmp_path):
    (tmp_path / "dir.key").mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_key(tmp_path / "dir.key")
    with pytest.raises(KeyFileError, match="cannot be read"):
        load_key(tmp_path / "absent.key")
