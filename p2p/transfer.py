"""The update-transfer stream protocol: fetch a blob by its keccak256 digest.

Protocol ``/medswarm/blob/1.0.0``, one request per stream::

    request   version u8 (=1) | digest 32 bytes                      (33 bytes, then the
                                                                      client may half-close)
    response  status u8 | length u64 little-endian | length bytes    (then the server closes)

Status: 0 OK, 1 NOT_FOUND, 2 BAD_REQUEST, 3 REFUSED (peer not allowed), 4 NOT_RELEASED (the
server holds the blob but its release rule does not let this peer have it yet: ask again later).
Non-OK responses carry length 0. The fetcher checks ``length`` against its cap before reading a single
payload byte, reads exactly ``length`` bytes into one preallocated buffer, and verifies the
digest. The server reads at most 33 bytes within a deadline and never lets a peer's input
escape as an exception.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF

from p2p.codec import digest as keccak_digest, keccak256
from p2p.libp2p_patches import read_direct

__all__ = [
    "PROTOCOL_ID", "BadResponse", "BlobServer", "BlobTooLarge", "DigestMismatch", "FetchError",
    "FetchTimeout", "NotFound", "NotReleased", "PeerUnavailable", "Release", "digest_to_bytes", "read_blob",
]

PROTOCOL_ID = TProtocol("/medswarm/blob/1.0.0")
VERSION = 1
REQUEST = struct.Struct("<B32s")
RESPONSE = struct.Struct("<BQ")
OK, NOT_FOUND, BAD_REQUEST, REFUSED, NOT_RELEASED = 0, 1, 2, 3, 4
#: Bytes handed to one ``stream.write`` call; Yamux cuts them into 64 KiB frames.
WRITE_CHUNK = 1 * 2**20
#: Upper bound of one ``stream.read`` call on the fetching side.
READ_CHUNK = 4 * 2**20
#: The fetcher hands received bytes to the hashing thread in pieces of at least this size
#: (smaller pieces cost more in hand-overs than they overlap).
HASH_PIECE = 256 * 2**10

logger = logging.getLogger(__name__)

#: A blob's release rule: called with the requesting peer's id, True when that peer may have it now.
Release = Callable[[str], Awaitable[bool]]


class FetchError(Exception):
    """A blob could not be fetched; the subclass says why."""


class FetchTimeout(FetchError):
    """The peer did not deliver the whole blob within the deadline."""


class DigestMismatch(FetchError):
    """The peer sent bytes whose keccak256 differs from the requested digest (it lied)."""


class BlobTooLarge(FetchError):
    """The peer announced more bytes than the fetcher accepts."""


class NotFound(FetchError):
    """The peer does not serve (or no longer serves) that digest."""


class NotReleased(FetchError):
    """The peer holds the blob but will not send it to us yet (e.g. we have not committed our own
    update of that round); asking again later may succeed."""


class PeerUnavailable(FetchError):
    """The peer could not be reached, refused us, or went away mid-transfer."""


class BadResponse(FetchError):
    """The peer broke the protocol: unknown status, truncated payload, malformed header."""


def digest_to_bytes(digest: str) -> bytes:
    """``"0x" + 64 lowercase hex`` -> 32 bytes; ValueError otherwise."""
    if not (isinstance(digest, str) and len(digest) == 66 and digest.startswith("0x")):
        raise ValueError(f"digest must be '0x' + 64 hex chars, got {digest!r:.80}")
    raw = bytes.fromhex(digest[2:])
    if "0x" + raw.hex() != digest:
        raise ValueError(f"digest must be lowercase hex, got {digest!r:.80}")
    return raw


class _EOF(Exception):
    pass


async def _read_exactly(stream: Any, n: int, max_chunk: int) -> bytearray:
    """Read exactly ``n`` bytes (each read bounded by ``max_chunk``); _EOF if the stream ends."""
    buf = bytearray(n)
    await _read_into(stream, buf, max_chunk)
    return buf


async def _read_into(
    stream: Any, buf: bytearray | memoryview, max_chunk: int, on_progress: Callable[[int], Any] | None = None,
    got: int = 0,
) -> None:
    """Fill ``buf`` from ``got`` on from the stream (each read bounded by ``max_chunk``); _EOF if
    the stream ends.

    ``on_progress`` is told after every read how many leading bytes of ``buf`` are final.
    """
    n = len(buf)
    view = memoryview(buf)
    while got < n:
        try:
            chunk = await stream.read(min(n - got, max_chunk))
        except StreamEOF:
            chunk = b""
        if not chunk:
            raise _EOF(f"stream ended after {got} of {n} bytes")
        size = len(chunk)
        if size > n - got:  # a muxer must never do this; do not trust it either
            raise _EOF(f"read returned {size} bytes, asked for at most {n - got}")
        view[got : got + size] = chunk
        got += size
        if on_progress is not None:
            on_progress(got)


class _BehindHasher:
    """keccak256 of a buffer as it fills, computed in a worker thread one piece behind the
    reader: keccak releases the GIL, so verification overlaps with the event loop receiving
    and decrypting the next frames instead of adding its time to the fetch.

    One worker thread for the process keeps each hasher's pieces in order (FIFO) and bounds the
    CPU that concurrent fetches spend on hashing to one core.
    """

    _worker: ThreadPoolExecutor | None = None

    def __init__(self, buffer: memoryview) -> None:
        self._buffer = buffer
        self._hasher = keccak256()
        self._hashed = 0
        self._last: Future[None] | None = None

    @classmethod
    def _pool(cls) -> ThreadPoolExecutor:
        if cls._worker is None:
            cls._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-keccak")
        return cls._worker

    def received(self, upto: int) -> None:
        """Bytes ``[0, upto)`` of the buffer are final; hash them once a piece has gathered."""
        if upto > self._hashed and (upto - self._hashed >= HASH_PIECE or upto == len(self._buffer)):
            piece = self._buffer[self._hashed : upto]
            self._last = self._pool().submit(self._hasher.update, piece)
            self._hashed = upto

    async def hexdigest(self) -> str:
        """The digest of the whole buffer, once every piece is hashed."""
        if self._last is not None:
            await trio.to_thread.run_sync(self._last.result, abandon_on_cancel=True)
        return self._hasher.hexdigest()


async def read_blob(stream: Any, digest: str, max_bytes: int) -> bytes:
    """Client side over an open stream: request ``digest``, read and verify the reply.

    Raises NotFound, PeerUnavailable (refused), BlobTooLarge, BadResponse, DigestMismatch.
    Stream errors propagate for the caller to classify.
    """
    await stream.write(REQUEST.pack(VERSION, digest_to_bytes(digest)))
    try:
        status, length = RESPONSE.unpack(await _read_exactly(stream, RESPONSE.size, RESPONSE.size))
    except _EOF as exc:
        raise BadResponse(f"no response header: {exc}") from None
    if status == NOT_FOUND:
        raise NotFound(f"peer does not serve {digest}")
    if status == REFUSED:
        raise PeerUnavailable("peer refused the request (we are not on its allowlist)")
    if status == BAD_REQUEST:
        raise BadResponse("peer rejected our request as malformed")
    if status == NOT_RELEASED:
        raise NotReleased(f"peer holds {digest} but has not released it to us yet")
    if status != OK:
        raise BadResponse(f"unknown status {status}")
    if length > max_bytes:
        raise BlobTooLarge(f"peer announced {length} bytes for {digest}, limit is {max_bytes}")
    buf = bytearray(length)
    view = memoryview(buf)
    hasher = _BehindHasher(view)
    try:
        # Straight from the muxer's frames into buf; whatever that leaves, through the stream.
        filled = await read_direct(stream, view, hasher.received)
        await _read_into(stream, view, READ_CHUNK, hasher.received, got=filled)
    except _EOF as exc:
        raise BadResponse(f"truncated blob: {exc}") from None
    got = "0x" + await hasher.hexdigest()
    if got != digest:
        raise DigestMismatch(f"asked for {digest}, received {length} bytes hashing to {got}")
    return bytes(buf)


class BlobServer:
    """Serves registered blobs by digest on PROTOCOL_ID; never raises on a peer's input."""

    def __init__(
        self,
        *,
        is_allowed: Callable[[str], bool],
        log: logging.LoggerAdapter[logging.Logger] | logging.Logger = logger,
        request_timeout: float = 5.0,
        stall_timeout: float = 20.0,
        max_concurrent: int = 16,
    ) -> None:
        self._blobs: dict[bytes, bytes] = {}
        self._releases: dict[bytes, Release] = {}
        self._is_allowed = is_allowed
        self._log = log
        self._request_timeout = request_timeout
        self._stall_timeout = stall_timeout
        self._slots = trio.Semaphore(max_concurrent)
        self.served = 0
        self.bytes_served = 0  # payload bytes of completed responses
        self.rejected = 0
        self._fetched_by: dict[bytes, set[str]] = {}
        self._asked_by: dict[bytes, set[str]] = {}  # peers that requested a blob, whatever the answer

    def add(self, data: bytes, verified_digest: str | None = None, release: Release | None = None) -> str:
        """Serve `data`; `verified_digest` skips hashing bytes a fetch has just verified.

        `release`, when given, decides per requesting peer whether it may have the blob yet; the
        newest rule given for a digest applies (identical bytes can be served for two reasons).
        """
        d = keccak_digest(data) if verified_digest is None else verified_digest
        key = digest_to_bytes(d)
        self._blobs[key] = bytes(data)
        self._fetched_by.setdefault(key, set())
        self._asked_by.setdefault(key, set())
        if release is None:
            self._releases.pop(key, None)
        else:
            self._releases[key] = release
        return d

    def remove(self, digest: str) -> None:
        key = digest_to_bytes(digest)
        self._blobs.pop(key, None)
        self._fetched_by.pop(key, None)
        self._asked_by.pop(key, None)
        self._releases.pop(key, None)

    def fetched_by(self, digest: str) -> frozenset[str]:
        """Peers that received the whole blob `digest` from us (empty if we do not serve it)."""
        return frozenset(self._fetched_by.get(digest_to_bytes(digest), ()))

    def asked_by(self, digest: str) -> frozenset[str]:
        """Peers that requested the blob `digest` from us, served or not (it was not released to
        them yet, or the transfer broke off): each has its announcement and asks again on its own."""
        return frozenset(self._asked_by.get(digest_to_bytes(digest), ()))

    def __contains__(self, digest: str) -> bool:
        return digest_to_bytes(digest) in self._blobs

    async def handle(self, stream: Any) -> None:
        """Stream handler registered with the host. Catches everything a peer can cause."""
        peer = "?"
        done = False
        try:
            peer = stream.muxed_conn.peer_id.to_base58()
            if not self._is_allowed(peer):
                self.rejected += 1
                self._log.warning("refusing a blob request from %s: not on the allowlist", peer)
                with trio.move_on_after(self._request_timeout):
                    await stream.write(RESPONSE.pack(REFUSED, 0))
                    await stream.close()
                    done = True
                return
            async with self._slots:
                done = await self._serve(stream, peer)
        except Exception as exc:  # noqa: BLE001 - a peer's garbage must never kill the host
            self.rejected += 1
            self._log.warning("blob request from %s failed: %s: %.200s", peer, type(exc).__name__, exc)
        finally:
            if not done:
                await _reset_quietly(stream)

    async def _serve(self, stream: Any, peer: str) -> bool:
        """Answer one request; True if the stream ended cleanly (closed, not to be reset)."""
        try:
            with trio.fail_after(self._request_timeout):
                raw = await _read_exactly(stream, REQUEST.size, REQUEST.size)
        except trio.TooSlowError:
            self.rejected += 1
            self._log.warning("blob request from %s timed out after %.1f s", peer, self._request_timeout)
            return False
        except _EOF as exc:
            self.rejected += 1
            self._log.warning("incomplete blob request from %s: %s", peer, exc)
            return False
        version, key = REQUEST.unpack(raw)
        if version != VERSION:
            self.rejected += 1
            self._log.warning("malformed blob request from %s (version byte %d)", peer, version)
            with trio.move_on_after(self._request_timeout):
                await stream.write(RESPONSE.pack(BAD_REQUEST, 0))
                await stream.close()
                return True
            return False
        blob = self._blobs.get(key)
        if blob is None:
            self._log.info("peer %s asked for unknown blob 0x%s", peer, key.hex())
            with trio.move_on_after(self._request_timeout):
                await stream.write(RESPONSE.pack(NOT_FOUND, 0))
                await stream.close()
                return True
            return False
        if (askers := self._asked_by.get(key)) is not None:
            askers.add(peer)
        release = self._releases.get(key)
        if release is not None and not await self._released(release, peer):
            self._log.info("blob 0x%s not released to %s yet", key.hex()[:10], peer)
            with trio.move_on_after(self._request_timeout):
                await stream.write(RESPONSE.pack(NOT_RELEASED, 0))
                await stream.close()
                return True
            return False
        view = memoryview(blob)
        with trio.fail_after(self._stall_timeout):
            await stream.write(RESPONSE.pack(OK, len(blob)))
        for start in range(0, len(blob), WRITE_CHUNK):
            with trio.fail_after(self._stall_timeout):
                await stream.write(view[start : start + WRITE_CHUNK])
        self.served += 1
        self.bytes_served += len(blob)
        if (fetchers := self._fetched_by.get(key)) is not None:
            fetchers.add(peer)
        self._log.debug("served %d bytes of 0x%s to %s", len(blob), key.hex(), peer)
        with trio.move_on_after(self._request_timeout):
            await stream.close()
            return True
        return False

    async def _released(self, release: Release, peer: str) -> bool:
        """Ask the release rule, bounded in time; a rule that fails or stalls releases nothing."""
        with trio.move_on_after(self._request_timeout):
            try:
                return bool(await release(peer))
            except Exception as exc:  # noqa: BLE001 - the rule reads the chain, which may be away
                self._log.warning("release rule failed for %s: %s: %.200s", peer, type(exc).__name__, exc)
                return False
        self._log.warning("release rule for %s took longer than %.1f s", peer, self._request_timeout)
        return False


async def _reset_quietly(stream: Any) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await stream.reset()
        except Exception:  # noqa: BLE001 - already closed or gone
            pass
