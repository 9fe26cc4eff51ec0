"""Compile Solidity sources into committed JSON artifacts with py-solc-x and the npm `solc`.

The npm package `solc` (solc-js, the Solidity team's WebAssembly build) is wrapped by
tools/solc (tools/solc-wrapper.js), a small executable that behaves like native `solc`
for `--version` and `--standard-json`; py-solc-x drives it. Only building needs Node:
running and testing load the committed artifacts (see incentive.artifacts).

    python -m incentive.compile                 # rebuild contracts/build/MedSwarmLedger.json
    python -m incentive.compile --check         # exit 1 if the committed artifact is stale
    python -m incentive.compile --source X.sol --out-dir DIR   # other contracts (tests)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from incentive.artifacts import BUILD_DIR, CONTRACTS_DIR, LEDGER_CONTRACT, load_artifact_file, sha256_file

logger = logging.getLogger(__name__)

REPO_ROOT = CONTRACTS_DIR.parent
SOLC_WRAPPER = REPO_ROOT / "tools" / "solc"
SOLC_JS = REPO_ROOT / "node_modules" / "solc"
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "prague",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


class CompilerUnavailable(RuntimeError):
    """Node or the npm `solc` package is missing (run scripts/setup.sh)."""


def compiler_path() -> Path:
    """The native-solc-compatible wrapper; raises CompilerUnavailable with the reason if unusable."""
    override = os.environ.get("MEDSWARM_SOLC")
    if override:
        return Path(override)
    if shutil.which("node") is None:
        raise CompilerUnavailable("node is not installed; the Solidity compiler (npm solc) needs it")
    if not (SOLC_JS / "package.json").exists():
        raise CompilerUnavailable(f"{SOLC_JS} is missing: run scripts/setup.sh (npm ci)")
    return SOLC_WRAPPER


def compile_source(source: Path, root: Path = REPO_ROOT) -> dict[str, dict[str, Any]]:
    """Compile one Solidity file; return {contract name: artifact dict} for every contract in it."""
    import solcx  # imported here: running and testing never need the compiler

    solc = compiler_path()
    source = Path(source).resolve()
    rel = source.relative_to(root).as_posix()
    std_input = {"language": "Solidity", "sources": {rel: {"content": source.read_text()}}, "settings": SETTINGS}
    version = str(solcx.wrapper.get_version_str_from_solc_binary(solc))
    out = solcx.compile_standard(std_input, solc_binary=solc, base_path=str(root), allow_paths=str(root))
    for err in out.get("errors", []):
        logger.warning("solc: %s", err.get("formattedMessage", err).strip())
    artifacts: dict[str, dict[str, Any]] = {}
    for name, c in out["contracts"][rel].items():
        artifacts[name] = {
            "contractName": name,
            "sourceName": rel,
            "abi": c["abi"],
            "bytecode": "0x" + c["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + c["evm"]["deployedBytecode"]["object"],
            "compiler": {"name": "solc-js (npm solc) via py-solc-x", "version": version},
            "sources": {rel: {"sha256": sha256_file(source)}},
            "settings": SETTINGS,
        }
    return artifacts


def write_artifacts(source: Path, out_dir: Path, root: Path = REPO_ROOT) -> list[Path]:
    """Compile `source` and write one `<Contract>.json` per contract into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, art in compile_source(source, root).items():
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(art, indent=1, sort_keys=True) + "\n")
        paths.append(path)
    return paths


def stale_reasons(source: Path, out_dir: Path, root: Path = REPO_ROOT) -> list[str]:
    """Why the committed artifacts of `source` differ from a fresh compile (empty: up to date)."""
    fresh = compile_source(source, root)
    reasons = []
    for name, art in fresh.items():
        path = out_dir / f"{name}.json"
        if not path.exists():
            reasons.append(f"{path} missing")
            continue
        committed = json.loads(path.read_text())
        for key in ("abi", "bytecode", "deployedBytecode", "sources", "settings", "compiler"):
            if committed.get(key) != art[key]:
                reasons.append(f"{path.name}: {key} differs from a fresh compile of {art['sourceName']}")
    return reasons


def source_hash_mismatches(out_dir: Path, root: Path = REPO_ROOT) -> list[str]:
    """Compare the source sha256 recorded in each artifact with the file on disk (no compiler needed)."""
    problems = []
    for path in sorted(Path(out_dir).glob("*.json")):
        art = load_artifact_file(path)
        for rel, digest in art.sources.items():
            src = root / rel
            if not src.exists():
                problems.append(f"{path.name}: source {rel} missing")
            elif sha256_file(src) != digest:
                problems.append(f"{path.name}: {rel} changed since the artifact was built: python -m incentive.compile")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=CONTRACTS_DIR / f"{LEDGER_CONTRACT}.sol")
    parser.add_argument("--out-dir", type=Path, default=BUILD_DIR)
    parser.add_argument("--check", action="store_true", help="only check that the artifacts are fresh")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.check:
            reasons = stale_reasons(args.source, args.out_dir)
            for r in reasons:
                logger.error("stale: %s", r)
            return 1 if reasons else 0
        for path in write_artifacts(args.source, args.out_dir):
            logger.info("wrote %s", path)
    except CompilerUnavailable as exc:
        logger.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
