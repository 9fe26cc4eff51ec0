"""Announcements: bounded compact JSON, strict parsing."""

from __future__ import annotations

import json

import pytest

from p2p.announce import INLINE_MAX_BYTES, MAX_ANNOUNCEMENT_BYTES, Announcement, AnnouncementError
from p2p.codec import digest

PEER = "12D3KooWDrY9rCLkPYJnWq9GihJxRYoC3iAf5TRZnQCS2Ks6bnW6"
GOOD = Announcement("medswarm", 3, "update", "0x" + "ab" * 32, 1234, 50, "f32", PEER)


def _with(**changes: object) -> bytes:
    obj = json.loads(GOOD.to_bytes())
    obj.update(changes)
    return json.dumps(obj).encode()


def test_round_trip_and_size() -> None:
    data = GOOD.to_bytes()
    assert len(data) <= MAX_ANNOUNCEMENT_BYTES
    assert Announcement.from_bytes(data) == GOOD


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"{" + b" " * 3000 + b"}",
        _with(version=2),
        _with(round=-1),
        _with(round=True),
        _with(round=1.5),
        _with(size=0),
        _with(kind="weights"),
        _with(codec="pickle"),
        _with(digest="0x" + "AB" * 32),
        _with(digest="0x1234"),
        _with(sender="not a peer id!"),
        _with(swarm="bad swarm/name"),
        _with(extra=1),
    ],
)
def test_rejects_malformed(data: bytes) -> None:
    with pytest.raises(AnnouncementError):
        Announcement.from_bytes(data)


def _dup(key: str, value: str) -> bytes:
    """GOOD's bytes with `key` given a second time (json would keep the last silently)."""
    return GOOD.to_bytes()[:-1] + f',"{key}":{value}}}'.encode()


@pytest.mark.parametrize(
    "data",
    [
        _dup("round", "4"),                     # duplicate key: readers could disagree
        _dup("sender", f'"{PEER}"'),            # duplicate key, even with the same value
        _with(version=True),                    # bool for int
        _with(version=1.0),                     # float for int
        _with(samples=False),
        _with(size=1e999),                      # overflows to infinity
        b'{"version": NaN}',
        b"[" * 600 + b"]" * 600,                # nesting: refused before json recurses
        b'{"a": {"b": 1}}',
        b'{"a": [1]}',
        b"{}{}",
        b'"a string"',
        b"1",
    ],
)
def test_rejects_tricks(data: bytes) -> None:
    with pytest.raises(AnnouncementError):
        Announcement.from_bytes(data)


def test_brackets_inside_strings_are_only_text() -> None:
    data = _with(swarm="a[b]{c}")
    with pytest.raises(AnnouncementError, match="bad swarm"):  # rejected by the field check, not the scan
        Announcement.from_bytes(data)


def test_constructor_rejects_bool_version() -> None:
    with pytest.raises(AnnouncementError, match="version"):
        Announcement("medswarm", 1, "update", "0x" + "ab" * 32, 1, 1, "f32", PEER, version=True)


def test_rejects_missing_field() -> None:
    obj = json.loads(GOOD.to_bytes())
    del obj["samples"]
    with pytest.raises(AnnouncementError, match="fields"):
        Announcement.from_bytes(json.dumps(obj).encode())


def test_constructor_validates() -> None:
    with pytest.raises(AnnouncementError):
        Announcement("medswarm", 1, "update", "nope", 1, 1, "f32", PEER)


SHEET = bytes(range(200))
CARRYING = Announcement.carrying(SHEET, swarm="medswarm", round=3, kind="scores", samples=0, codec="f32", sender=PEER)


def _inline(**changes: object) -> bytes:
    obj = json.loads(CARRYING.to_bytes())
    obj.update(changes)
    return json.dumps(obj).encode()


def test_a_small_blob_rides_inline_and_comes_back_checked() -> None:
    assert b'"inline"' not in GOOD.to_bytes() and GOOD.blob is None  # absent unless carried
    parsed = Announcement.from_bytes(CARRYING.to_bytes())
    assert parsed == CARRYING and parsed.blob == SHEET
    assert (parsed.size, parsed.digest) == (len(SHEET), digest(SHEET))
    largest = Announcement.carrying(b"\xff" * INLINE_MAX_BYTES, swarm="m" * 64, round=2**63 - 1, kind="stats",
                                    samples=2**63 - 1, codec="sparse16", sender=PEER + "x" * 76)
    assert len(largest.to_bytes()) <= MAX_ANNOUNCEMENT_BYTES  # the longest fields still fit
    with pytest.raises(AnnouncementError, match="longer than"):
        Announcement.carrying(b"x" * (INLINE_MAX_BYTES + 1), swarm="m", round=1, kind="stats", samples=0,
                              codec="f32", sender=PEER)


@pytest.mark.parametrize(
    "data, why",
    [
        (_inline(inline=""), "empty inline"),
        (_inline(inline=5), "longer than|base64"),
        (_inline(size=len(SHEET) + 1), "size says"),
        (_inline(digest=digest(b"other")), "does not match"),
        (_inline(inline=CARRYING.inline[:-4]), "size says"),
        (_inline(inline=CARRYING.inline + "\n"), "canonical"),
        (_inline(inline="AB=="), "canonical"),  # padding bits set: a second text for one blob
        (_inline(inline=CARRYING.inline.replace("A", "-", 1)), "canonical"),
    ],
)
def test_an_inline_blob_that_does_not_match_its_announcement_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(AnnouncementError, match=why):
        Announcement.from_bytes(data)
