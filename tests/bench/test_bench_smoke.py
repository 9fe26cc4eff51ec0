"""Seconds-long smoke runs of the benchmarks (`--quick`), checking the JSON they write.

The full benchmarks (`scripts/bench_all.sh`) take minutes and are not part of CI; these only prove
that each benchmark runs end to end on the real launcher and writes well-formed reports.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(module: str, tmp_path: Path) -> Path:
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", module, "--quick", "--out", str(out),
                           "--runs", str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "benchmark done" in proc.stdout  # progress lines were printed
    return out


def _prob(x) -> bool:
    return isinstance(x, float) and 0.0 <= x <= 1.0


def test_bench_learning_quick(tmp_path: Path) -> None:
    out = _run("scripts.bench.learning", tmp_path)
    data = json.loads((out / "learning.json").read_text())
    heart = data["results"]["heart"]
    assert heart["nodes"] == ["cleveland", "hungary"]
    assert set(heart["methods"]) == {"swarm_mean", "pooled", "local"}
    seed = heart["per_seed"][0]
    for method in heart["methods"]:
        for where in heart["nodes"] + ["pooled_test"]:
            assert _prob(seed[method][where]["accuracy"]), (method, where)
            assert _prob(seed[method][where]["auc"]), (method, where)
        assert heart["summary"][method]["pooled_test"]["accuracy"]["n"] == 1
    # every node ran every round and heard its peer; the curve has one point per round
    assert seed["swarm_mean_heard"] == seed["swarm_mean_expected"] == 2 * 1 * 2
    assert all(len(c) == 2 for c in seed["swarm_mean_curves"].values())
    # the re-evaluated final models and our local-only arm agree with what the nodes reported
    assert seed["swarm_mean_max_diff_vs_node_summary"] < 1e-9
    assert seed["local_max_diff_vs_node_summary"] < 1e-9
    assert data["targets"] and all("gap_points" in t for t in data["targets"])
    assert (out / "learning.md").read_text().startswith("# Learning quality")
    assert (out / "learning_curves.png").stat().st_size > 1000


def test_bench_systems_quick(tmp_path: Path) -> None:
    out = _run("scripts.bench.systems", tmp_path)
    data = json.loads((out / "systems.json").read_text())
    run = data["scale"][0]
    assert run["nodes"] == 2 and run["rounds"] == 2
    assert set(run["phase_mean_s"]) >= {"train", "commit", "share", "collect", "merge", "score", "checkpoint"}
    assert all(v >= 0 for v in run["phase_mean_s"].values())
    assert run["heard"] == run["expected"] == 2 * 1 * 2
    # one commit per node per round reached the chain, with gas from its receipt
    per_fn = run["txs_by_function"]
    assert per_fn.get("commit", 0) + per_fn.get("commitAndVote", 0) == 2 * 2
    assert run["gas_per_node_round_amortised"] > 20_000
    assert all(g > 20_000 for g in run["gas_by_function"].values())
    size = data["model_size"][0]
    assert size["params"] == 10_117 and size["raw_model_bytes"] == 4 * 10_117
    if size["bytes_in_per_node_round"] is not None:  # the engine reports blob bytes per round
        # a 2-node round moves at least the peer's update in; what we serve counts in the round
        # in which the peer fetches it, which after the last report is no round at all
        assert size["bytes_in_over_raw"] >= 0.9 and size["bytes_out_over_raw"] >= 0.4
    assert not math.isnan(run["node_round_s"])
    assert (out / "systems.md").read_text().startswith("# Systems cost")
    assert (out / "systems_phases.png").stat().st_size > 1000


def test_bench_robustness_quick(tmp_path: Path) -> None:
    out = _run("scripts.bench.robustness", tmp_path)
    data = json.loads((out / "robustness.json").read_text())
    assert list(data["runs"]) == ["none", "garbage"]
    baseline, garbage = data["runs"]["none"][0], data["runs"]["garbage"][0]
    assert baseline["attackers"] == [] and garbage["attackers"] == ["va-long-beach"]
    for run in (baseline, garbage):  # the honest nodes lost nothing and agree on their model
        assert run["honest_rounds_lost"] == 0 and run["honest_models"] == 1 and run["audit_ok"]
        assert all(_prob(a) for a in run["honest_accuracy"].values())
    # undecodable updates: never merged, never paid, struck by each of 3 honest nodes each round
    assert garbage["attacker_payout_eth"] == 0 and garbage["honest_strikes_on_attacker"] >= 3 * 2
    assert garbage["accuracy_change"] is not None and baseline["accuracy_change"] == 0
    assert (out / "robustness.md").read_text().startswith("# Robustness")


def test_bench_contribution_quick(tmp_path: Path) -> None:
    out = _run("scripts.bench.contribution", tmp_path)
    data = json.loads((out / "contribution.json").read_text())
    heart = data["summary"]["heart mlp"]
    for variant in ("updates only", "with public validation"):
        assert heart[variant]["honest"]["flags"] == 0
        assert heart[variant]["attacks"]["zero"]["flagged"] == heart[variant]["attacks"]["zero"]["rounds"] == 2
    assert heart["geometry"]["concurrent"]["max"] < data["thresholds"]["copy_cos"]
    assert _prob(heart["switzerland"]["accuracy_with"]["mean"])
    turns = heart["every_member_attacking"]
    assert turns["x2"]["attacker_vs_honest_self_max"] == 0.0 and turns["x2"]["largest_honest_loss_max"] == 0.0
    assert turns["random vector (median norm)"]["below_every_honest"] == turns["random vector (median norm)"]["runs"] == 4
    # closed loop: each of 4 members copies each of the other 3 with loud noise, merged and trained on
    loud = heart["closed_loop"]["loud copy of each other member in turn"]
    assert loud["runs"] == loud["below_every_honest"] == 12 and loud["over_10_percent"] == 0
    assert "closed_loop" not in data["summary"].get("breast cancer iid mlp", {})
    assert (out / "contribution.md").read_text().startswith("# Checkable contribution scores")


def test_bench_scenarios_quick(tmp_path: Path) -> None:
    out = _run("scripts.bench.scenarios", tmp_path)
    data = json.loads((out / "scenarios.json").read_text())
    result = data["results"]["ecg-anomaly"]
    assert result["methods"] == ["swarm_mean", "local", "central"]
    seed = result["per_seed"][0]
    assert seed["swarm_mean"]["heard"] == seed["swarm_mean"]["expected"] == 2 * 1 * 2
    assert seed["swarm_mean"]["audit_ok"] is True
    for method in result["methods"]:
        assert _prob(seed[method]["node_mean"]) and _prob(seed[method]["published"]), method
        assert _prob(seed[method]["validation"]), method  # settings are chosen on these rows
    assert (out / "scenarios.md").read_text().startswith("# Clinical scenarios")
    assert (out / "scenarios.png").stat().st_size > 1000
    # runs made apart (one seed each) publish as one table: here the same run twice
    from scripts.bench import scenarios

    both = tmp_path / "combined"
    scenarios.main(["--combine", str(out / "scenarios.json"), "--combine", str(out / "scenarios.json"),
                    "--out", str(both)])
    combined = json.loads((both / "scenarios.json").read_text())["results"]["ecg-anomaly"]
    assert combined["seeds"] == [0, 0] and combined["summary"]["local"]["node_mean"]["std"] == 0.0
    assert combined["summary"]["local"]["node_mean"]["mean"] == pytest.approx(seed["local"]["node_mean"])
    assert "Combining the runs of" in (both / "scenarios.md").read_text()


def test_bench_quality_quick(tmp_path: Path) -> None:
    out = _run("scripts.bench.quality", tmp_path)
    data = json.loads((out / "quality.json").read_text())
    heart = data["results"]["heart"]["mlp 10 rounds"]
    run = heart["arms"]["default"][0]
    assert len(run["curve"]) == 10 and _prob(run["final"]["test"]["accuracy"]) and _prob(run["final"]["test"]["auc"])
    assert _prob(heart["baselines"][0]["central"]["accuracy"])
    assert set(heart["baselines"][0]["alone"]) == {"cleveland", "hungary", "switzerland", "va-long-beach"}
    bc = data["results"]["breast_cancer"]["mlp 10 rounds"]["default"][0]
    assert _prob(bc["final"]["test"]["accuracy"])
    assert "| mlp 10 rounds | default |" in (out / "quality.md").read_text()


def test_bench_heartswarm_quick(tmp_path: Path) -> None:
    out = _run("scripts.bench.heartswarm", tmp_path)
    data = json.loads((out / "heartswarm.json").read_text())
    cell = data["results"]["3"]
    swarm = cell["swarm"][0]
    assert swarm["metrics"]["n"] == 254 and _prob(swarm["metrics"]["accuracy"]) and _prob(swarm["metrics"]["roc_auc"])
    assert swarm["audit_ok"] is True and len(swarm["curve"]) == 3 and all(_prob(a) for a in swarm["curve"])
    assert _prob(cell["central"][0]["accuracy"])
    assert set(cell["alone"][0]) == {"cleveland", "hungary", "switzerland", "va-long-beach"}
    assert (out / "heartswarm.png").stat().st_size > 10_000


def test_bench_compression_quick(tmp_path: Path) -> None:
    out = _run("scripts.bench.compression", tmp_path)
    data = json.loads((out / "compression.json").read_text())
    assert len(data["results"]) == 3
    for runs in data["results"].values():
        assert set(runs) == {f"{c}/{m}" for c in ("none", "q8", "topk", "ternary") for m in ("median", "geomedian")}
        dense = runs["none/median"]
        assert dense["ratio"] == 1.0 and len(dense["curve"]) == 2 and _prob(dense["final_accuracy"])
        # each stage cuts the bytes on the wire, the sparse ones the most
        assert runs["q8/median"]["ratio"] > 3 and runs["ternary/median"]["ratio"] > runs["q8/median"]["ratio"]
    assert (out / "compression.md").read_text().startswith("# Compressed updates")


def test_bench_sampling_quick(tmp_path: Path) -> None:
    out = _run("scripts.bench.sampling", tmp_path)
    data = json.loads((out / "sampling.json").read_text())
    everyone, sampled = data["results"]
    assert (everyone["partners"], sampled["partners"]) == (7, 3)
    # all-to-all ends on one shared model; sampled partners keep distinct, close models for fewer bytes
    assert everyone["spread"][-1] == 0.0 and 0.0 < sampled["spread"][-1] < 0.5
    assert sampled["bytes_per_node_round"] * 7 == everyone["bytes_per_node_round"] * 3
    assert _prob(everyone["final_accuracy"]) and _prob(sampled["final_accuracy"])


def test_bench_chainreads_quick(tmp_path: Path) -> None:
    out = _run("scripts.bench.chainreads", tmp_path)
    (row,) = json.loads((out / "chainreads.json").read_text())["rows"]
    assert row["members"] == 4 and row["per_peer"]["reads"] == 3 and row["per_round"]["reads"] == 1
    assert row["per_peer"]["seconds"] > 0 and row["per_round"]["seconds"] > 0


def test_bench_privacy_quick(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "scripts.bench.privacy", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    heart = json.loads((out / "privacy.json").read_text())["results"]["heart"]["by_epsilon"]
    assert set(heart) == {"3", "inf"}
    for key in ("swarm_accuracy", "local_accuracy", "mia_auc"):
        assert _prob(heart["3"][key]["mean"]) and _prob(heart["inf"][key]["mean"])
    assert 0 < heart["3"]["max_epsilon_spent"] <= 3.0 and heart["inf"]["max_epsilon_spent"] == 0.0
    assert (out / "privacy.png").stat().st_size > 0


def test_bench_transport_quick(tmp_path: Path) -> None:
    out = _run("scripts.bench.transport", tmp_path)
    data = json.loads((out / "transport.json").read_text())
    (row,) = data["rows"]
    assert row["size_mib"] == 1 and row["p2p_MBps"] > 0 and row["tcp_MBps"] > 0
    assert math.isclose(row["ratio"], row["p2p_MBps_all"][0] / row["tcp_MBps_all"][0])
    assert data["crypto_Bps"]["keccak256"] > 0 and data["crypto_Bps"]["chacha20poly1305_decrypt"] > 0


@pytest.mark.anvil
def test_bench_startup_quick(tmp_path: Path) -> None:
    out = _run("scripts.bench.startup", tmp_path)
    data = json.loads((out / "startup.json").read_text())
    assert sorted(data["starts"]) == ["cold", "forked"]
    for starts in data["starts"].values():
        assert [s["node"] for s in starts] == ["cleveland", "hungary"]
        for start in starts:  # ready comes before round 1 ends, in wall and in CPU time
            assert 0 < start["ready_s"] < start["round1_s"] and 0 < start["ready_cpu_s"] <= start["round1_cpu_s"]
            # ready to train: a node without DP imports nothing more for round 1 (node.optim)
            assert "warm_s" not in start and start["train_ready_s"] == start["ready_s"] <= start["round1_s"]
            assert start["ready_cpu_s"] <= start["train_ready_cpu_s"] <= start["round1_cpu_s"]
            assert start["round1_train_s"] > 0
    # a forked node skips the imports a cold one pays
    assert data["summary"]["forked"]["ready_cpu_s"] < data["summary"]["cold"]["ready_cpu_s"]
    assert data["imports"]["process_s"] > 0 and "torch" in data["imports"]["by_package_s"]
    assert 0 < data["imports"]["process_cpu_s"]
