"""Flat JSON objects: scalars only, no duplicates, no nesting handed to the recursive parser."""

from __future__ import annotations

import pytest

from p2p.flatjson import FlatJSONError, parse_flat_object


def test_parses_a_flat_object() -> None:
    data = b'{"a": 1, "b": "x[y]{z}\\"}", "c": null, "d": true, "e": 2.5}'
    assert parse_flat_object(data, 100) == {"a": 1, "b": 'x[y]{z}"}', "c": None, "d": True, "e": 2.5}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a": 1, "a": 2}', "duplicate key"),
        (b'{"a": {}}', "nested"),
        (b"{" * 100_000, "nested"),
        (b"[" * 100_000, "arrays"),
        (b'{"a": [1]}', "arrays"),
        (b"{}{}", "repeated"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": -Infinity}', "Infinity"),
        (b'{"a": 1e999}', "overflows"),
        (b"\xff", "not UTF-8"),
        (b'"text"', "expected a JSON object"),
        (b'{"a": 1', "not valid JSON"),
    ],
)
def test_refuses(data: bytes, message: str) -> None:
    with pytest.raises(FlatJSONError, match=message):
        parse_flat_object(data, 200_000)


def test_size_is_checked_first() -> None:
    with pytest.raises(FlatJSONError, match="exceeds the limit of 100"):
        parse_flat_object(b"[" * 101, 100)
