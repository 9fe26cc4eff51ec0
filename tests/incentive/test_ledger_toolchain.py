"""The committed artifacts match their sources; recompiling (npm solc via py-solc-x) gives them back."""

from __future__ import annotations

import shutil

import pytest

from incentive import compile as build
from incentive.artifacts import BUILD_DIR, CONTRACTS_DIR, ledger_artifact

from ledger_fixtures import ATTACKERS_DIR

HAVE_SOLC = shutil.which("node") is not None and (build.SOLC_JS / "package.json").exists()
needs_solc = pytest.mark.skipif(not HAVE_SOLC, reason="node or node_modules/solc missing (run scripts/setup.sh)")


def test_ledger_artifact_loads_with_provenance():
    art = ledger_artifact()
    assert art.contract_name == "MedSwarmLedger"
    assert art.bytecode.startswith("0x60") and len(art.bytecode) > 1000
    assert art.compiler.startswith("0.8.37")
    assert art.settings["evmVersion"] == "prague" and art.settings["optimizer"]["enabled"]
    assert set(art.sources) == {"contracts/MedSwarmLedger.sol"}


@pytest.mark.parametrize("out_dir", [BUILD_DIR, ATTACKERS_DIR], ids=["ledger", "attackers"])
def test_recorded_source_hashes_match_files(out_dir):
    assert build.source_hash_mismatches(out_dir) == []


@needs_solc
@pytest.mark.parametrize(
    "source,out_dir",
    [(CONTRACTS_DIR / "MedSwarmLedger.sol", BUILD_DIR), (ATTACKERS_DIR.parent / "Attackers.sol", ATTACKERS_DIR)],
    ids=["ledger", "attackers"],
)
def test_artifact_is_fresh(source, out_dir):
    reasons = build.stale_reasons(source, out_dir)
    assert reasons == [], "stale artifact: run python -m incentive.compile\n" + "\n".join(reasons)


@needs_solc
def test_stale_artifact_is_detected(tmp_path):
    src = tmp_path / "contracts" / "MedSwarmLedger.sol"
    src.parent.mkdir()
    src.write_text((CONTRACTS_DIR / "MedSwarmLedger.sol").read_text().replace("MAX_SCORE = 10000", "MAX_SCORE = 9999"))
    out = tmp_path / "build"
    out.mkdir()
    shutil.copy(BUILD_DIR / "MedSwarmLedger.json", out / "MedSwarmLedger.json")
    reasons = build.stale_reasons(src, out, root=tmp_path)
    assert any("bytecode" in r for r in reasons)
    assert build.source_hash_mismatches(out, root=tmp_path)
