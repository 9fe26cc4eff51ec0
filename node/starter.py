"""Node processes for a local swarm, forked from one warm parent instead of started cold.

A fresh `medswarm node` process spends about 5.5 CPU-seconds importing torch, web3 and py-libp2p
before it does anything (scripts/bench/startup.py); a local swarm of N nodes paid that N times
over on the machine's few cores before round 1 (32 nodes: minutes). The launcher instead keeps
one *starter* process, which imports those modules once (`PRELOAD`) and then forks each node
from itself: a node is ready in well under a second, and the nodes share the imported code's
memory pages until they write to them (the same design as a pre-forking web server).

Each forked node runs exactly what `medswarm node --config FILE` runs, in its own session
(process group), with its output appended to its node.log. The launcher talks to the starter
over the starter's stdin and stdout, one JSON object per line, and never the other way round:
only the launcher that started it can ask it for a node.

    launcher -> starter   {"config": "/abs/node.toml", "log": "/abs/node.log"}
    starter -> launcher   {"ready": true}  once, after the imports
                          {"started": PID} for each request, in order ({"refused": true} for a
                          request that is not such an object)
                          {"exited": PID, "code": C} when a node ends (C < 0: killed by signal -C)
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Callable

__all__ = ["NodeStarter", "StartedNode", "StarterError", "PRELOAD"]

#: What the starter imports once for every node: the node command and everything a node's first
#: round needs. Not torch._dynamo: only a DP node's Opacus optimiser imports it (node.warmup).
PRELOAD = ("node.cli", "node.runtime")
READY_TIMEOUT_S = 180.0  # the imports, on a machine whose cores other swarms keep busy
REAP_EVERY_S = 0.2
LOST_STATUS = -1  # the exit status of a node that outlived its starter (no parent left to tell)


class StarterError(RuntimeError):
    """The starter process died or answered something else than the protocol says."""


class StartedNode:
    """A node forked by the starter, with the part of `subprocess.Popen`'s interface the
    launcher, the tests and the benchmarks use (pid, poll, wait, returncode)."""

    def __init__(self, pid: int, starter: "NodeStarter") -> None:
        self.pid = pid
        self._starter = starter

    @property
    def returncode(self) -> int | None:
        return self._starter.exit_code(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        code = self._starter.wait_exit(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"node process {self.pid}", timeout or 0.0)
        return code


class NodeStarter:
    """The launcher's side: starts the starter process on first use, asks it for nodes."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()  # one request and its answer at a time
        self._exits: dict[int, int] = {}
        self._changed = threading.Condition()
        self._started: list[int] = []
        self._ready = False
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The starter process's id while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def warm(self, wait: bool = False) -> None:
        """Start the starter process now: its imports then overlap whatever the caller does next,
        or with `wait` are done when this returns."""
        with self._lock:
            self._ensure_process()
            if wait:
                self._await(lambda: self._ready, READY_TIMEOUT_S, "the starter's imports")

    def start(self, config: Path, log: Path) -> StartedNode:
        """Fork one node for `config`, its output appended to `log`; waits for the imports once."""
        with self._lock:
            proc = self._ensure_process()
            self._await(lambda: self._ready, READY_TIMEOUT_S, "the starter's imports")
            assert proc.stdin is not None
            before = len(self._started)
            try:
                proc.stdin.write(json.dumps({"config": str(config), "log": str(log)}) + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError) as exc:
                raise StarterError(f"the node starter stopped ({exc})") from None
            self._await(lambda: len(self._started) > before, READY_TIMEOUT_S, "a forked node")
            if self._started[before] < 0:
                raise StarterError(f"the node starter refused the request for {config}")
            return StartedNode(self._started[before], self)

    def exit_code(self, pid: int) -> int | None:
        with self._changed:
            if pid not in self._exits and self._dead() and not _alive(pid):
                self._exits[pid] = LOST_STATUS  # it ended after its starter did: its status went with it
            return self._exits.get(pid)

    def wait_exit(self, pid: int, timeout: float | None) -> int | None:
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exits or self._dead(), timeout)
        if self._dead():  # nobody reports its exit any more: watch the process itself
            ends = None if timeout is None else time.monotonic() + timeout
            while self.exit_code(pid) is None and (ends is None or time.monotonic() < ends):
                time.sleep(REAP_EVERY_S)
        return self.exit_code(pid)

    def close(self) -> None:
        """End the starter (nodes it forked run on; stop those first). Safe to call twice."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(5)

    # ------------------------------------------------------------------ internals

    def _ensure_process(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._ready = False
            self._proc = subprocess.Popen([sys.executable, "-m", "node.starter"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, text=True, start_new_session=True,
                                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
            self._reader = threading.Thread(target=self._read, args=(self._proc,), name="starter-reader",
                                            daemon=True)
            self._reader.start()
        return self._proc

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue  # not ours: a library printing on the starter's stdout
            with self._changed:
                if message.get("ready") is True:
                    self._ready = True
                elif isinstance(message.get("started"), int):
                    self._started.append(message["started"])
                elif message.get("refused") is True:
                    self._started.append(-1)
                elif isinstance(message.get("exited"), int) and isinstance(message.get("code"), int):
                    self._exits[message["exited"]] = message["code"]
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _dead(self) -> bool:
        return self._proc is None or self._proc.poll() is not None

    def _await(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: done() or self._dead(), timeout) or not done():
                code = self._proc.poll() if self._proc is not None else None
                raise StarterError(f"no {what} from the node starter within {timeout:.0f} s"
                                   + (f" (it exited with status {code})" if code is not None else ""))


# ---------------------------------------------------------------------- the starter process

def _serve(requests: IO[str], answers: IO[str]) -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    _say(answers, {"ready": True})
    children: set[int] = set()
    fd = requests.fileno()
    buffered = b""
    while True:
        readable, _, _ = select.select([fd], [], [], REAP_EVERY_S)
        _reap(children, answers)
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return  # the launcher closed the pipe (or died): no more nodes; forked ones run on
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            try:
                request = json.loads(line)
                config, log = Path(request["config"]), Path(request["log"])
            except (ValueError, KeyError, TypeError) as exc:
                print(f"node starter: bad request {line[:200]!r} ({exc})", file=sys.stderr, flush=True)
                _say(answers, {"refused": True})
                continue
            pid = os.fork()
            if pid == 0:
                os._exit(_run_node(config, log))
            children.add(pid)
            _say(answers, {"started": pid})


def _reap(children: set[int], answers: IO[str]) -> None:
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            children.discard(pid)
            _say(answers, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _run_node(config: Path, log: Path) -> int:
    """In the forked child: become `medswarm node --config config`, writing to `log`."""
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.close(null)
        sys.stdout.reconfigure(line_buffering=True)
        from node.cli import main

        return main(["node", "--config", str(config)])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # the child must never return into the starter's loop
        import traceback

        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _alive(pid: int) -> bool:
    """Whether `pid` still runs: a zombie nobody reaps (an orphan under a PID 1 that does not
    reap) counts as ended."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _say(answers: IO[str], message: dict) -> None:
    answers.write(json.dumps(message) + "\n")
    answers.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the launcher, which stops the nodes
    _serve(sys.stdin, sys.stdout)
