"""Announcements: the small, versioned gossip message that says "I have update X for round r".

An announcement carries only metadata (round, kind, digest, size, sample count, codec,
sender); the update bytes themselves travel over the transfer protocol (p2p.transfer).
The wire form is compact JSON of at most MAX_ANNOUNCEMENT_BYTES, parsed strictly: one flat
object (checked before json sees it, see `p2p.flatjson`), no duplicate keys, exactly the
expected fields, and ints that are ints (JSON `true` is not a version or a round number).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from p2p.codec import CODECS
from p2p.flatjson import FlatJSONError, parse_flat_object

__all__ = ["KINDS", "MAX_ANNOUNCEMENT_BYTES", "Announcement", "AnnouncementError"]

# scores: a partner-score sheet (node.sampled); val: a validation-loss report (node.selection)
KINDS = ("update", "model", "stats", "scores", "val")
MAX_ANNOUNCEMENT_BYTES = 1024
VERSION = 1
_MAX_U63 = 2**63 - 1
_SWARM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DIGEST_RE = re.compile(r"0x[0-9a-f]{64}")
_PEER_ID_RE = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,128}")
_FIELDS = ("swarm", "round", "kind", "digest", "size", "samples", "codec", "sender", "version")


class AnnouncementError(ValueError):
    """An announcement that is malformed, oversize or of an unsupported version."""


@dataclass(frozen=True)
class Announcement:
    """One node's notice that an update (or merged model, or statistics) is available."""

    swarm: str
    round: int
    kind: str
    digest: str
    size: int
    samples: int
    codec: str
    sender: str
    version: int = VERSION

    def __post_init__(self) -> None:
        _validate(self)

    def to_bytes(self) -> bytes:
        """Compact JSON with sorted keys, bounded to MAX_ANNOUNCEMENT_BYTES."""
        data = json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()
        if len(data) > MAX_ANNOUNCEMENT_BYTES:
            raise AnnouncementError(f"announcement of {len(data)} bytes exceeds {MAX_ANNOUNCEMENT_BYTES}")
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> "Announcement":
        """Parse and validate; raises AnnouncementError on anything unexpected."""
        try:
            obj = parse_flat_object(data, MAX_ANNOUNCEMENT_BYTES)
        except FlatJSONError as exc:
            raise AnnouncementError(f"announcement: {exc}") from None
        version = obj.get("version")
        if type(version) is not int or version != VERSION:
            raise AnnouncementError(f"unsupported announcement version {version!r:.40}")
        if set(obj) != set(_FIELDS):
            raise AnnouncementError(
                f"fields {sorted(obj)} differ from the expected {sorted(_FIELDS)}"
            )
        return cls(**obj)


def _validate(a: Announcement) -> None:
    def _int(name: str, value: object, lo: int) -> None:
        if type(value) is not int or not lo <= value <= _MAX_U63:
            raise AnnouncementError(f"{name} must be an int in [{lo}, 2**63), got {value!r:.80}")

    def _str(name: str, value: object, pattern: re.Pattern[str]) -> None:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise AnnouncementError(f"bad {name}: {value!r:.80}")

    if type(a.version) is not int or a.version != VERSION:
        raise AnnouncementError(f"unsupported announcement version {a.version!r:.40}")
    _str("swarm", a.swarm, _SWARM_RE)
    _int("round", a.round, 0)
    if a.kind not in KINDS:
        raise AnnouncementError(f"kind must be one of {KINDS}, got {a.kind!r:.80}")
    _str("digest", a.digest, _DIGEST_RE)
    _int("size", a.size, 1)
    _int("samples", a.samples, 0)
    if a.codec not in CODECS:
        raise AnnouncementError(f"codec must be one of {CODECS}, got {a.codec!r:.80}")
    _str("sender", a.sender, _PEER_ID_RE)
