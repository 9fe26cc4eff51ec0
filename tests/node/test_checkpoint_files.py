"""A damaged or hostile checkpoint on disk ends in one CheckpointError line, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from node.checkpoint import Checkpoint, CheckpointError
from node.rundir import RunFolder

TASK = "0x" + "1" * 40 + "/1"
TENSORS = {"w": np.ones((2, 3), np.float32)}
SHAPES = {"w": (2, 3)}


def _saved(tmp_path: Path) -> dict:
    RunFolder(tmp_path).save_checkpoint(Checkpoint(2, TENSORS), TASK)
    return json.loads(RunFolder(tmp_path).checkpoint_meta.read_text())


def _meta(tmp_path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    RunFolder(tmp_path).checkpoint_meta.write_bytes(data)


@pytest.mark.parametrize("change", [
    {"round": True}, {"round": -1}, {"round": 2.0}, {"round": 2**64}, {"bytes": "12"}, {"bytes": 0},
    {"bytes": 10**12}, {"digest": "0x12"}, {"digest": None}, {"task": 7}, {"extra": 1},
])
def test_bad_meta_fields(tmp_path: Path, change: dict) -> None:
    meta = _saved(tmp_path) | change
    _meta(tmp_path, json.dumps(meta))
    with pytest.raises(CheckpointError) as err:
        RunFolder(tmp_path).load_checkpoint(SHAPES, TASK)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", [
    "[" * 100_000, '{"round": {"a": 1}}', "{" * 3000 + "}" * 3000, b"\xff\xfe\x00", "", "null",
    '{"round": 1, "round": 2, "digest": "x", "bytes": 1, "task": "t"}', '{"round": NaN}', " " * 5000,
])
def test_bad_meta_text(tmp_path: Path, text: str | bytes) -> None:
    _saved(tmp_path)
    _meta(tmp_path, text)
    with pytest.raises(CheckpointError):
        RunFolder(tmp_path).load_checkpoint(SHAPES, TASK)


def test_blob_size_checked_before_reading(tmp_path: Path) -> None:
    _saved(tmp_path)
    RunFolder(tmp_path).checkpoint_blob.write_bytes(b"\x00" * 10_000)
    with pytest.raises(CheckpointError, match="checkpoint.json says"):
        RunFolder(tmp_path).load_checkpoint(SHAPES, TASK)


def test_missing_or_directory_blob(tmp_path: Path) -> None:
    _saved(tmp_path)
    RunFolder(tmp_path).checkpoint_blob.unlink()
    with pytest.raises(CheckpointError, match="unreadable"):
        RunFolder(tmp_path).load_checkpoint(SHAPES, TASK)
    RunFolder(tmp_path).checkpoint_blob.mkdir()
    with pytest.raises(CheckpointError):
        RunFolder(tmp_path).load_checkpoint(SHAPES, TASK)


def test_meta_is_a_directory(tmp_path: Path) -> None:
    RunFolder(tmp_path).checkpoint_meta.mkdir()
    with pytest.raises(CheckpointError, match="unreadable"):
        RunFolder(tmp_path).load_checkpoint(SHAPES, TASK)


def test_bounds_apply_when_reading(tmp_path: Path) -> None:
    RunFolder(tmp_path).save_checkpoint(Checkpoint(1, {"w": np.full((2, 3), 1e20, np.float32)}, max_abs=1e30), TASK)
    assert RunFolder(tmp_path).load_checkpoint(SHAPES, TASK, max_abs=1e30).tensors["w"][0, 0] == np.float32(1e20)
    with pytest.raises(CheckpointError, match="beyond"):
        RunFolder(tmp_path).load_checkpoint(SHAPES, TASK)


def test_real_statistics_fit_the_engine_bounds(tmp_path: Path) -> None:
    """Sums of squares of real columns (5e8 on breast cancer) are far beyond the update bound."""
    from node.datasets import breast_cancer_shards
    from node.bundle import BUNDLE_MAX_ABS, STATS_PREFIX, model_bundle
    from node.preprocess import STATS_MAX_ABS, FeatureStats
    from p2p.codec import CodecError, decode_update, encode_update

    stats = FeatureStats.of(breast_cancer_shards(1)[0].train.x)
    with pytest.raises(CodecError):
        encode_update(stats.to_tensors())
    blob = encode_update(stats.to_tensors(), max_abs=STATS_MAX_ABS)
    assert FeatureStats.from_tensors(decode_update(blob, expected=stats.expected_shapes(), max_abs=STATS_MAX_ABS))
    bundle = model_bundle(TENSORS, stats)
    RunFolder(tmp_path).save_checkpoint(Checkpoint(3, bundle, max_abs=BUNDLE_MAX_ABS), TASK)
    shapes = {k: v.shape for k, v in bundle.items()}
    loaded = RunFolder(tmp_path).load_checkpoint(shapes, TASK, max_abs=BUNDLE_MAX_ABS)
    key = STATS_PREFIX + "sumsq_hi"
    assert loaded is not None and np.array_equal(loaded.tensors[key], bundle[key])
