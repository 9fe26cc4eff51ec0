"""Seeded fuzzing of every decoder: no crash, no hang, nothing unsound accepted (a few seconds in all).

The findings the fuzzing led to have direct regression tests beside each module's other tests:
tests/p2p/test_codec.py, test_announce.py, test_flatjson.py, tests/node/test_config.py,
test_node_data.py, test_checkpoint_files.py, test_identity.py and incentive/test_ledger_chain_keys.py.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.bench.fuzz import main
from scripts.bench.fuzzing import Case, Target, run_target, targets

CASES = 400


@pytest.mark.parametrize("name", sorted(targets()))
def test_no_crash_no_hang_nothing_unsound(name: str) -> None:
    result = run_target(targets()[name], CASES, seed=1)
    assert result.tried == CASES
    assert result.ok, result.failures
    # The generator reaches both sides of the decoder, or the test proves little.
    assert result.outcomes["rejected"] > CASES // 4 and result.outcomes["accepted"] > CASES // 20


class FakeError(Exception):
    """The fake decoder's own named error."""


def _constant(value: object) -> object:
    def cases(rng: random.Random, tmp: Path) -> Iterator[Case]:
        while True:
            yield Case("same", value)

    return cases


def _decode(case: Case, tmp: Path) -> object:
    if case.data == "named":
        raise FakeError("bad input")
    if case.data == "other":
        raise OverflowError("escaped")
    if case.data == "slow":
        time.sleep(5)
    if case.data == "long message":
        raise FakeError("line one\nline two")
    return case.data


def _check(value: object) -> None:
    assert value == "good", "not good"


@pytest.mark.parametrize("value, outcome", [
    ("good", "accepted"), ("named", "rejected"), ("other", "crashed"), ("slow", "hung"), ("bad", "unsound"),
    ("long message", "unsound"),
])
def test_runner_classifies_each_outcome(value: str, outcome: str) -> None:
    target = Target("fake", _constant(value), _decode, (FakeError,), _check)
    result = run_target(target, 2, seed=0, case_seconds=0.2)
    assert result.outcomes[outcome] == 2 and result.tried == 2
    assert result.ok == (outcome in ("accepted", "rejected"))


def test_entry_point_writes_its_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cases", "20", "--only", "blob", "--only", "csv", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "fuzz.json").read_text())
    assert set(report["decoders"]) == {"blob", "csv"} and report["decoders"]["csv"]["tried"] == 20
    assert "blob" in capsys.readouterr().out
