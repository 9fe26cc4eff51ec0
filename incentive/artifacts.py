"""Load committed compiled contract artifacts (ABI + bytecode) without any compiler or Node."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"
BUILD_DIR = CONTRACTS_DIR / "build"
LEDGER_CONTRACT = "MedSwarmLedger"


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: what deploy and the client need, plus provenance."""

    contract_name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler: str
    sources: dict[str, str]  # source path (relative to the build root) -> sha256 hex
    settings: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Artifact":
        return cls(
            contract_name=data["contractName"],
            abi=data["abi"],
            bytecode=data["bytecode"],
            deployed_bytecode=data["deployedBytecode"],
            compiler=data["compiler"]["version"],
            sources={k: v["sha256"] for k, v in data["sources"].items()},
            settings=data["settings"],
        )


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_artifact_file(path: Path) -> Artifact:
    """Read one artifact JSON file."""
    return Artifact.from_json(json.loads(Path(path).read_text()))


@lru_cache(maxsize=None)
def ledger_artifact() -> Artifact:
    """The committed MedSwarmLedger artifact (contracts/build/MedSwarmLedger.json)."""
    return load_artifact_file(BUILD_DIR / f"{LEDGER_CONTRACT}.json")
