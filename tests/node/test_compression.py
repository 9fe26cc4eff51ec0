"""Compression stages: what they keep, that error feedback loses nothing, and that a node merges
its own compressed update exactly as its peers decode it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trio

from node.compression import Quantise8, Ternary, TopK
from node.pipeline import COMPRESSION, UpdatePipeline, stage_by_name
from p2p.announce import Announcement
from p2p.codec import decode_update, digest

SHAPES = {"fc.weight": (64, 40), "fc.bias": (64,)}


def _delta(seed: int) -> dict[str, np.ndarray]:
    gen = np.random.default_rng(seed)
    return {k: (gen.standard_normal(s) * 0.01).astype(np.float32) for k, s in SHAPES.items()}


def _pipeline(name: str, fraction: float = 0.05) -> UpdatePipeline:
    async def committed(ann: Announcement) -> str | None:
        return ann.digest

    return UpdatePipeline(SHAPES, 1 << 20, "f32", committed, compression=stage_by_name(COMPRESSION, name, fraction=fraction))


def test_the_registry_holds_every_stage_and_passes_options_only_where_taken() -> None:
    assert set(COMPRESSION) == {"none", "q8", "topk", "ternary"}
    assert stage_by_name(COMPRESSION, "topk", fraction=0.2).fraction == 0.2
    assert isinstance(stage_by_name(COMPRESSION, "q8", fraction=0.2), Quantise8)
    with pytest.raises(ValueError, match="fraction"):
        TopK(0.0)


@pytest.mark.parametrize("name, codec", [("none", "f32"), ("q8", "q8"), ("topk", "sparse16"), ("ternary", "ternary")])
def test_each_stage_names_its_wire_codec(name: str, codec: str) -> None:
    pipeline = _pipeline(name)
    assert pipeline.codec == codec and f"compression {name}" in pipeline.describe()


def test_topk_keeps_the_largest_fraction_of_each_tensor() -> None:
    delta = _delta(1)
    out = TopK(0.05).outgoing(delta, 1)
    for k, v in delta.items():
        keep = math.ceil(0.05 * v.size)
        assert np.count_nonzero(out[k]) == keep
        assert np.abs(out[k]).min(where=out[k] != 0, initial=np.inf) >= np.sort(np.abs(v).ravel())[-keep]


@pytest.mark.parametrize("name", ["q8", "topk", "ternary"])
def test_error_feedback_delays_but_never_drops(name: str) -> None:
    """After any number of rounds, what the peers decoded plus the residual is what was trained."""
    pipeline = _pipeline(name)
    trained = {k: np.zeros(s, np.float64) for k, s in SHAPES.items()}
    sent = {k: np.zeros(s, np.float64) for k, s in SHAPES.items()}
    for r in range(1, 6):
        delta = _delta(r)
        blob = pipeline.prepare(delta, r)
        decoded = decode_update(blob, expected=SHAPES)
        for k in SHAPES:
            trained[k] += delta[k]
            sent[k] += decoded[k]
    residual = pipeline.compression._residual
    for k in SHAPES:
        np.testing.assert_allclose(sent[k] + residual[k], trained[k], atol=1e-5)
    # and the sparse stages sent a twentieth of the entries per round, yet most of the mass arrived
    if name != "q8":
        assert np.linalg.norm(sent["fc.weight"]) > 0.5 * np.linalg.norm(trained["fc.weight"])


@pytest.mark.parametrize("name", ["q8", "topk", "ternary"])
def test_own_update_is_what_peers_decode(name: str) -> None:
    pipeline = _pipeline(name)
    blob = pipeline.prepare(_delta(3), 1)
    own = pipeline.own_update(blob, 10, "me")
    ann = Announcement(swarm="s", round=1, kind="update", digest=digest(blob), size=len(blob), samples=10,
                       codec=pipeline.codec, sender="Qm" + "a" * 44)
    theirs = trio.run(_accept, _pipeline(name), ann, blob)
    assert all(np.array_equal(own.tensors[k], theirs.tensors[k]) for k in SHAPES)
    assert all(np.array_equal(own.tensors[k], v) for k, v in decode_update(blob, expected=SHAPES).items())


async def _accept(pipeline: UpdatePipeline, ann: Announcement, blob: bytes):
    await pipeline.verify(ann)
    return pipeline.accept(ann, blob)


def test_ternary_sends_one_magnitude_per_tensor() -> None:
    pipeline = _pipeline("ternary", fraction=0.1)
    decoded = decode_update(pipeline.prepare(_delta(4), 1), expected=SHAPES)
    for v in decoded.values():
        assert len(np.unique(np.abs(v[v != 0]))) == 1
    assert isinstance(pipeline.compression, Ternary)


def test_a_blob_in_another_codec_than_the_tasks_is_rejected() -> None:
    from node.pipeline import Rejected
    from p2p.codec import encode_update

    ternary = _pipeline("ternary")
    with pytest.raises(Rejected, match="codec f32 where this task uses ternary"):
        ternary.decode(encode_update(_delta(5), "f32"))


def test_an_entry_beyond_float16_goes_out_clipped_and_the_rest_follows() -> None:
    pipeline = _pipeline("topk", fraction=0.01)
    delta = {k: np.zeros(s, np.float32) for k, s in SHAPES.items()}
    delta["fc.bias"][3] = 1e5  # within the codec's bound (1e6), beyond float16
    first = decode_update(pipeline.prepare(delta, 1), expected=SHAPES)
    assert first["fc.bias"][3] == 65504.0
    zero = {k: np.zeros(s, np.float32) for k, s in SHAPES.items()}
    second = decode_update(pipeline.prepare(zero, 2), expected=SHAPES)
    assert second["fc.bias"][3] == np.float32(np.float16(1e5 - 65504.0))
