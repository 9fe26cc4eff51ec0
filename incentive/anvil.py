"""Run the native anvil binary (npm @foundry-rs/anvil) as a managed child process.

Free port, readiness check via eth_chainId, clean stop (SIGTERM, then SIGKILL after a grace
period; the process group is reaped so nothing is orphaned), optional --state persistence.
The native binary is run directly: the npm Node wrapper exits on SIGTERM and leaves anvil behind.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
_FOUNDRY = REPO_ROOT / "node_modules" / "@foundry-rs"


class ToolMissing(FileNotFoundError):
    """A native Foundry binary (anvil or cast) is not installed."""


def _binary(tool: str) -> Path:
    env = os.environ.get(f"MEDSWARM_{tool.upper()}")
    path = Path(env) if env else _FOUNDRY / f"{tool}-linux-amd64" / "bin" / tool
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ToolMissing(f"{tool} binary not found at {path}: run scripts/setup.sh (npm ci installs @foundry-rs/{tool})")
    return path


def anvil_binary() -> Path:
    """Path of the native anvil binary; raises ToolMissing naming scripts/setup.sh if absent."""
    return _binary("anvil")


def cast_binary() -> Path:
    """Path of the native cast binary; raises ToolMissing naming scripts/setup.sh if absent."""
    return _binary("cast")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Anvil:
    """Context manager around one anvil process: `with Anvil() as chain: connect(chain.url)`."""

    def __init__(
        self,
        *,
        port: int | None = None,
        state_file: Path | None = None,
        chain_id: int = 31337,
        block_time: float | None = None,
        accounts: int = 10,
        host: str = "127.0.0.1",
        startup_timeout: float = 15.0,
    ):
        self.host = host
        self.port = port or free_port(host)
        self.state_file = Path(state_file) if state_file else None
        self.chain_id = chain_id
        self.block_time = block_time
        self.accounts = accounts
        self.startup_timeout = startup_timeout
        self.url = f"http://{host}:{self.port}"
        self._proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        cmd = [str(anvil_binary()), "--host", self.host, "--port", str(self.port),
               "--chain-id", str(self.chain_id), "--accounts", str(self.accounts), "--silent"]
        if self.block_time:
            cmd += ["--block-time", str(self.block_time)]
        if self.state_file:
            cmd += ["--state", str(self.state_file)]
        return cmd

    def _ready(self) -> bool:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=1) as resp:
                return int(json.loads(resp.read())["result"], 16) == self.chain_id
        except (OSError, ValueError, KeyError):
            return False

    def start(self) -> "Anvil":
        """Start anvil and wait until it answers eth_chainId."""
        if self._proc is not None:
            return self
        cmd = self.command()
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                self._proc = None
                raise RuntimeError(f"anvil exited at start ({' '.join(cmd)}): {err.strip()}")
            if self._ready():
                logger.info("anvil ready at %s (pid %d)", self.url, self._proc.pid)
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"anvil did not answer at {self.url} within {self.startup_timeout}s")

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (anvil dumps --state on a clean exit), then SIGKILL after `grace` seconds."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                logger.warning("anvil pid %d ignored SIGTERM; killing", proc.pid)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        if proc.stderr:
            proc.stderr.close()
        logger.info("anvil at %s stopped (exit %s)", self.url, proc.returncode)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __enter__(self) -> "Anvil":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
