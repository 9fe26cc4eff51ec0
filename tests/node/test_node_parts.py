"""The round engine's small parts: inbox, chain writer, run folder and checkpoints, attacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trio

from incentive.ledger import LedgerError
from node.attacks import behaviour_by_name
from node.chainwriter import ChainOutage, ChainWriter, Patience
from node.checkpoint import Checkpoint, CheckpointError, StaleCheckpoint
from node.inbox import Inbox
from node.rundir import RunFolder
from p2p.announce import Announcement

DIGEST_A = "0x" + "a" * 64
DIGEST_B = "0x" + "b" * 64


def _ann(sender: str, digest: str = DIGEST_A, round_no: int = 1, kind: str = "update") -> Announcement:
    return Announcement(swarm="s", round=round_no, kind=kind, digest=digest, size=10, samples=5,
                        codec="f32", sender=sender)


def test_inbox_keeps_first_digest_and_counts_equivocation() -> None:
    inbox = Inbox()
    sender = "12D3KooW" + "A" * 44
    assert inbox.add(_ann(sender)) is True
    assert inbox.add(_ann(sender)) is False
    assert inbox.add(_ann(sender, DIGEST_B)) is False
    assert inbox.get("update", 1)[sender].digest == DIGEST_A
    assert inbox.equivocations[sender] == 1
    assert inbox.latest_round("update") == 1 and inbox.latest_round("model") == 0


def test_inbox_wait_wakes_on_arrival_and_times_out() -> None:
    async def main() -> tuple[bool, bool]:
        inbox = Inbox()
        async with trio.open_nursery() as nursery:
            async def later() -> None:
                await trio.sleep(0.05)
                inbox.add(_ann("12D3KooW" + "B" * 44, round_no=2))
            nursery.start_soon(later)
            got = await inbox.wait_until(lambda: bool(inbox.get("update", 2)), trio.current_time() + 5)
        missed = await inbox.wait_until(lambda: bool(inbox.get("update", 3)), trio.current_time() + 0.05)
        return got, missed

    assert trio.run(main) == (True, False)


def test_chain_writer_retries_transport_faults_but_not_reverts() -> None:
    writer = ChainWriter("t", Patience(seconds=0.05, first_delay=0.001, max_delay=0.01)).start()
    calls = {"flaky": 0, "revert": 0}

    def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] < 3:  # the endpoint comes back within the writer's patience
            raise ConnectionError("endpoint down")
        return "mined"

    def revert() -> None:
        calls["revert"] += 1
        raise LedgerError(error="AlreadyCommitted")

    assert writer.submit("flaky", flaky).result(5) == "mined"
    with pytest.raises(LedgerError):
        writer.submit("revert", revert).result(5)
    with pytest.raises(ChainOutage, match="unreachable"):
        writer.submit("dead", lambda: (_ for _ in ()).throw(ConnectionError("gone"))).result(5)
    writer.stop()
    status = writer.status()
    assert calls == {"flaky": 3, "revert": 1}
    assert (status.sent, status.reverted, status.failed) == (1, 1, 1)
    assert "gone" in status.last_error


def test_checkpoint_round_trip_and_corruption(tmp_path: Path) -> None:
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(2, np.float32)}
    shapes = {"w": (2, 3), "b": (2,)}
    task = "0x" + "1" * 40 + "/1"
    run = RunFolder(tmp_path)
    assert run.load_checkpoint(shapes, task) is None and run.checkpoint_round() is None
    blob = run.save_checkpoint(Checkpoint(4, tensors), task)
    assert blob == run.checkpoint_blob.read_bytes() and run.checkpoint_round() == 4
    loaded = run.load_checkpoint(shapes, task)
    assert loaded is not None and loaded.round == 4
    assert all(np.array_equal(loaded.tensors[k], tensors[k]) for k in tensors)
    with pytest.raises(CheckpointError, match="another model"):
        run.load_checkpoint({"w": (3, 3), "b": (2,)}, task)
    with pytest.raises(StaleCheckpoint, match="belongs to task"):
        run.load_checkpoint(shapes, "0x" + "2" * 40 + "/1")
    run.checkpoint_blob.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(CheckpointError, match="does not match its digest"):
        run.load_checkpoint(shapes, task)


def test_run_folder_records_round_trip(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "node").create()
    assert run.read_metrics() == [] and run.read_scores() == [] and run.read_summary() is None
    run.append_metrics({"round": 1, "val_loss": float("nan"), "acc": np.float32(0.5)})
    run.append_scores(1, {"hungary": 7})
    run.write_summary({"rounds": 1})
    with open(run.metrics, "a") as fh:
        fh.write('{"round": 2, "val_lo')  # a line the node is still writing
    assert run.read_metrics() == [{"round": 1, "val_loss": None, "acc": 0.5}]
    assert run.read_scores() == [{"round": 1, "scores": {"hungary": 7}}]
    assert run.read_summary() == {"rounds": 1}
    run.clear_run_files()
    assert not any(p.exists() for p in run.run_files())


def test_attacks_rewrite_the_update() -> None:
    update = {"w": np.array([1.0, -2.0], np.float32)}
    assert np.array_equal(behaviour_by_name("scale", 100).rewrite(update)["w"], [100.0, -200.0])
    assert np.array_equal(behaviour_by_name("signflip", 1).rewrite(update)["w"], [-1.0, 2.0])
    assert not behaviour_by_name("zero").rewrite(update)["w"].any()
    assert behaviour_by_name("none").rewrite(update)["w"] is update["w"]
    assert not behaviour_by_name("uncommitted").commits and not behaviour_by_name("noserve").serves
    with pytest.raises(ValueError, match="unknown attack"):
        behaviour_by_name("bribe")
