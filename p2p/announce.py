"""Announcements: the small, versioned gossip message that says "I have update X for round r".

An announcement carries metadata (round, kind, digest, size, sample count, codec, sender);
the bytes themselves travel over the transfer protocol (p2p.transfer), except a blob of at
most INLINE_MAX_BYTES that anyone may have at once (a score sheet, small statistics): it may
ride along base64-encoded as `inline`, checked against `size` and `digest` on parsing, so a
swarm of N does not open N^2 transfer streams for a few hundred bytes each.
The wire form is compact JSON of at most MAX_ANNOUNCEMENT_BYTES, parsed strictly: one flat
object (checked before json sees it, see `p2p.flatjson`), no duplicate keys, exactly the
expected fields (`inline` only when present), and ints that are ints (JSON `true` is not a
version or a round number).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import asdict, dataclass

from p2p.codec import CODECS, digest as blob_digest
from p2p.flatjson import FlatJSONError, parse_flat_object

__all__ = ["INLINE_MAX_BYTES", "KINDS", "MAX_ANNOUNCEMENT_BYTES", "Announcement", "AnnouncementError"]

# scores: a partner-score sheet (node.sampled); val: a validation-loss report (node.selection)
KINDS = ("update", "model", "stats", "scores", "val")
MAX_ANNOUNCEMENT_BYTES = 2048
INLINE_MAX_BYTES = 1024  # base64 makes it at most 1368 characters, leaving room for the rest
VERSION = 1
_MAX_U63 = 2**63 - 1
_SWARM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DIGEST_RE = re.compile(r"0x[0-9a-f]{64}")
_PEER_ID_RE = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,128}")
_FIELDS = ("swarm", "round", "kind", "digest", "size", "samples", "codec", "sender", "version")
_INLINE_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


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
    inline: str = ""  # the blob itself, base64, when it travels with its announcement

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def carrying(cls, blob: bytes, **fields: object) -> "Announcement":
        """An announcement with `blob` inline (its size and digest are the blob's)."""
        return cls(**fields, size=len(blob), digest=blob_digest(blob),  # type: ignore[arg-type]
                   inline=base64.b64encode(blob).decode())

    @property
    def blob(self) -> bytes | None:
        """The inline blob (checked against size and digest), or None."""
        return base64.b64decode(self.inline) if self.inline else None

    def to_bytes(self) -> bytes:
        """Compact JSON with sorted keys, bounded to MAX_ANNOUNCEMENT_BYTES."""
        fields = asdict(self)
        if not self.inline:  # absent, not empty: announcements without a blob are as before
            del fields["inline"]
        data = json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()
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
        if set(obj) - {"inline"} != set(_FIELDS):
            raise AnnouncementError(
                f"fields {sorted(obj)} differ from the expected {sorted(_FIELDS)} (and optionally inline)"
            )
        if obj.get("inline", None) == "":
            raise AnnouncementError("an empty inline field (absent when there is no inline blob)")
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
    if a.inline != "":
        _check_inline(a)


def _check_inline(a: Announcement) -> None:
    if not isinstance(a.inline, str) or len(a.inline) > 4 * -(-INLINE_MAX_BYTES // 3):
        raise AnnouncementError(f"inline blob longer than {INLINE_MAX_BYTES} bytes")
    if not _INLINE_RE.fullmatch(a.inline):
        raise AnnouncementError("inline blob is not canonical base64")
    try:
        blob = base64.b64decode(a.inline, validate=True)
    except (binascii.Error, ValueError):
        raise AnnouncementError("inline blob is not base64") from None
    if base64.b64encode(blob).decode() != a.inline:  # non-zero padding bits: one blob, one text
        raise AnnouncementError("inline blob is not canonical base64")
    if len(blob) > INLINE_MAX_BYTES:
        raise AnnouncementError(f"inline blob longer than {INLINE_MAX_BYTES} bytes")
    if len(blob) != a.size:
        raise AnnouncementError(f"inline blob of {len(blob)} bytes where size says {a.size}")
    if blob_digest(blob) != a.digest:
        raise AnnouncementError("inline blob does not match the announced digest")
