"""The wire codec on real model state: exact for float32, close for float16, strict on mismatch."""

from __future__ import annotations

import numpy as np
import pytest

from node.models import build_model, state_shapes, state_to_numpy
from p2p.codec import CodecError, decode_update, encode_update


@pytest.mark.parametrize("kind", ["logreg", "mlp", "cnn1d"])
def test_model_state_round_trips(kind: str) -> None:
    model = build_model(kind, n_features=22, hidden=16, seed=3)
    state, shapes = state_to_numpy(model), state_shapes(model)

    exact = decode_update(encode_update(state, "f32"), expected=shapes)
    assert list(exact) == list(state)
    assert all(np.array_equal(exact[k], state[k]) for k in state)

    half = decode_update(encode_update(state, "f16"), expected=shapes)
    assert all(np.allclose(half[k], state[k], rtol=1e-3, atol=1e-4) for k in state)


def test_an_update_for_another_model_is_rejected() -> None:
    mlp = state_to_numpy(build_model("mlp", n_features=22, hidden=16))
    logreg_shapes = state_shapes(build_model("logreg", n_features=22))
    with pytest.raises(CodecError):
        decode_update(encode_update(mlp), expected=logreg_shapes)
