"""Fixtures for the incentive tests (helpers live in ledger_fixtures.py)."""

from __future__ import annotations

import pytest
from ledger_fixtures import ATTACKERS_DIR

from incentive.artifacts import load_artifact_file


@pytest.fixture(scope="session")
def attacker_artifacts():
    return {p.stem: load_artifact_file(p) for p in ATTACKERS_DIR.glob("*.json")}
