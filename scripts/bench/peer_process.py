"""A SwarmHost in its own process, driven over stdin/stdout with JSON lines.

Used by the multi-process tests (tests/p2p/test_multiprocess.py) and by the p2p benchmark
(scripts/bench/p2p.py), so both launch peers the same way, from the repository root::

    python -m scripts.bench.peer_process --key K [--listen MA] [--bootstrap MA ...]
                                         [--serve SIZE ...] [--seed N] [--name NAME]

On start it prints ``{"event": "ready", "peer_id", "addrs", "digests": {size: digest}}``.
Commands (one JSON object per stdin line) and their replies:

- ``{"cmd": "publish", "round": r}`` -> ``{"event": "published", "round", "t"}``
- ``{"cmd": "fetch", "peer", "digest"}`` -> ``{"event": "fetched", "ok", "size", "seconds", "error"}``
- ``{"cmd": "peers"}`` -> ``{"event": "peers", "peers", "topic_peers"}``
- ``{"cmd": "stats"}`` -> ``{"event": "stats", "rss_mb"}``
- ``{"cmd": "quit"}`` (or EOF on stdin) -> clean shutdown, exit code 0

Every received announcement is reported as ``{"event": "ann", "sender", "round", "t"}``.
Blob bytes are ``blob_bytes(size, seed)`` so a parent can check them independently.
With ``--stall`` the peer answers every blob request with a header, 1 MiB of the body,
prints ``{"event": "stalled"}`` and then hangs (to kill it mid-transfer).

The parent side is :class:`PeerProcess`.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import trio

from p2p.announce import Announcement
from p2p.codec import digest
from p2p.host import TRANSFER_PROTOCOL_ID, FetchError, HostConfig, SwarmHost

# The child runs this module with `python -m` from the repository root, where `scripts` and
# `p2p` are importable as packages whatever the parent's working directory is.
REPO_ROOT = Path(__file__).resolve().parents[2]


class PeerProcess:
    """Parent side: start a peer process and talk to it; ``stop()`` never leaves an orphan."""

    def __init__(self, key: Path, *, listen: str | None = None, serve: list[int] = (),
                 bootstrap: list[str] = (), name: str = "", stall: bool = False,
                 ready_timeout: float = 30.0, quiet: bool = False) -> None:
        cmd = [sys.executable, "-m", "scripts.bench.peer_process", "--key", str(Path(key).resolve()), "--name", name]
        if listen:
            cmd += ["--listen", listen]
        for size in serve:
            cmd += ["--serve", str(size)]
        for addr in bootstrap:
            cmd += ["--bootstrap", addr]
        if stall:
            cmd.append("--stall")
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1, stderr=subprocess.DEVNULL if quiet else None)
        self.events: queue.Queue[dict | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.backlog: list[dict] = []
        try:
            self.ready = self.wait("ready", ready_timeout)
        except BaseException:
            self.stop()
            raise
        self.peer_id: str = self.ready["peer_id"]
        self.addr: str = self.ready["addrs"][0]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put(None)

    def send(self, **cmd: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def wait(self, event: str, timeout: float = 30.0) -> dict:
        """Next message of kind ``event``; others are kept in ``backlog``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no {event!r} from peer within {timeout} s") from None
            if msg is None:
                raise RuntimeError(f"peer exited (code {self.proc.poll()}) before {event!r}")
            if msg["event"] == event:
                return msg
            self.backlog.append(msg)

    def request(self, event: str, timeout: float = 30.0, **cmd: object) -> dict:
        self.send(**cmd)
        return self.wait(event, timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            try:
                self.send(cmd="quit")
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(timeout=timeout)
            except Exception:  # noqa: BLE001 - fall back to SIGKILL
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)


def blob_bytes(size: int, seed: int) -> bytes:
    """Deterministic pseudo-random blob of ``size`` bytes."""
    return np.random.default_rng([seed, size]).bytes(size)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    config = HostConfig(
        key_file=Path(args.key), listen=args.listen, bootstrap=tuple(args.bootstrap), swarm=args.swarm
    )
    host = SwarmHost(config, name=args.name)
    async with host.run():
        digests = {str(size): host.serve(blob_bytes(size, args.seed)) for size in args.serve}
        if args.stall:
            host.libp2p_host.set_stream_handler(TRANSFER_PROTOCOL_ID, _stall_handler)
        emit({"event": "ready", "peer_id": host.peer_id, "addrs": host.listen_addrs, "digests": digests})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_report_announcements, host)
            stdin = trio.wrap_file(sys.stdin)
            while True:
                line = await stdin.readline()
                if not line:
                    break
                cmd = json.loads(line)
                if cmd["cmd"] == "quit":
                    break
                nursery.start_soon(_run_command, host, cmd)
            nursery.cancel_scope.cancel()


async def _stall_handler(stream: object) -> None:
    await stream.read(33)  # type: ignore[attr-defined]
    await stream.write(struct.pack("<BQ", 0, 64 * 2**20) + b"\x00" * 2**20)  # type: ignore[attr-defined]
    emit({"event": "stalled"})
    await trio.sleep_forever()


async def _report_announcements(host: SwarmHost) -> None:
    async for ann in host.announcements():
        emit({"event": "ann", "sender": ann.sender, "round": ann.round, "t": time.time()})


async def _run_command(host: SwarmHost, cmd: dict) -> None:
    kind = cmd["cmd"]
    if kind == "publish":
        fake = digest(f"{host.peer_id}/{cmd['round']}".encode())
        ann = Announcement(host.config.swarm, cmd["round"], "update", fake, 1, 1, "f32", host.peer_id)
        t = time.time()
        await host.publish(ann)
        emit({"event": "published", "round": cmd["round"], "t": t})
    elif kind == "fetch":
        t0 = time.perf_counter()
        try:
            data = await host.fetch(cmd["peer"], cmd["digest"])
            emit({"event": "fetched", "ok": digest(data) == cmd["digest"], "size": len(data),
                  "seconds": time.perf_counter() - t0, "error": None})
        except FetchError as exc:
            emit({"event": "fetched", "ok": False, "size": 0, "seconds": time.perf_counter() - t0,
                  "error": f"{type(exc).__name__}: {exc}"})
    elif kind == "peers":
        emit({"event": "peers", "peers": host.peers(), "topic_peers": host.topic_peers()})
    elif kind == "stats":
        emit({"event": "stats", "rss_mb": rss_mb()})
    else:
        emit({"event": "error", "error": f"unknown command {kind!r}"})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--key", required=True)
    p.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    p.add_argument("--bootstrap", action="append", default=[])
    p.add_argument("--serve", action="append", type=int, default=[])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--swarm", default="medswarm")
    p.add_argument("--name", default="")
    p.add_argument("--stall", action="store_true")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


if __name__ == "__main__":
    ns = parse_args()
    logging.basicConfig(level=ns.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    trio.run(main, ns)
