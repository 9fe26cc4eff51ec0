"""What a node process imports before it is ready, and the background warm-up of round 1's imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


def test_a_node_without_dp_never_imports_opacus_and_warms_up_dynamo_in_the_background() -> None:
    loaded = _modules_after("import node.cli\nfrom node import runtime")
    assert "node.dp" in loaded and "opacus" not in loaded  # Opacus waits until a DP node trains
    assert "torch._dynamo" not in loaded  # not on the start-up path
    warmed = _modules_after("from node import warmup\nthread = warmup.start()\n"
                            "assert warmup.start() is thread\nthread.join()")
    assert "torch._dynamo" in warmed


def test_training_waits_for_the_warm_up_before_its_optimiser_imports() -> None:
    # The first optimiser imports torch._dynamo itself; it must not race the warm-up thread.
    code = ("import threading, numpy as np, torch\nfrom node import warmup, training\n"
            "thread = warmup.start()\n"
            "training.train_local(torch.nn.Linear(3, 2), np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1]),"
            " epochs=1, batch_size=2, lr=0.1, seed=0)\n"
            "assert not thread.is_alive()")
    _modules_after(code)
