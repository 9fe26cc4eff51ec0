"""The local optimisers give the bits torch.optim gives, and training never imports torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from node.models import build_model
from node.optim import SGD, Adam, make_optimizer


def _run(model: nn.Module, opt, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        x = torch.randn(16, 22, generator=gen)
        y = torch.randint(0, 2, (16,), generator=gen)
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("kind", ["logreg", "mlp"])
@pytest.mark.parametrize("name, settings", [
    ("adam", {"lr": 1e-2}),
    ("adam", {"lr": 0.3, "weight_decay": 0.05}),
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "weight_decay": 1e-3, "momentum": 0.9}),
])
def test_the_same_bits_as_torch_optim(kind: str, name: str, settings: dict) -> None:
    ours, theirs = build_model(kind, 22, seed=3), build_model(kind, 22, seed=3)
    _run(ours, make_optimizer(name, ours.parameters(), **settings), 40, seed=11)
    reference = torch.optim.Adam if name == "adam" else torch.optim.SGD
    _run(theirs, reference(theirs.parameters(), **settings), 40, seed=11)
    moved = False
    for (key, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert torch.equal(a, b), key
        moved |= not torch.equal(a, build_model(kind, 22, seed=3).state_dict()[key])
    assert moved


def test_parameters_without_a_gradient_stay_put() -> None:
    used, unused = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    for opt in (Adam([used, unused], lr=0.1, weight_decay=0.5), SGD([used, unused], lr=0.1, weight_decay=0.5, momentum=0.5)):
        (used * torch.arange(3.0)).sum().backward()
        opt.step()
        assert torch.equal(unused, torch.ones(3))
        assert not torch.equal(used.detach(), torch.ones(3))
        opt.zero_grad()
        assert used.grad is None


def test_bad_settings_are_refused() -> None:
    p = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("rmsprop", p, lr=0.1)
    with pytest.raises(ValueError, match="lr=0"):
        Adam(p, lr=0.0)
    with pytest.raises(ValueError, match="weight_decay=-1"):
        SGD(p, lr=0.1, weight_decay=-1)
    with pytest.raises(ValueError, match="momentum"):
        SGD(p, lr=0.1, momentum=1.0)


def test_local_training_does_not_import_torch_dynamo() -> None:
    code = ("import sys, numpy as np\n"
            "from node.models import build_model\n"
            "from node.training import train_local\n"
            "rng = np.random.default_rng(0)\n"
            "x, y = rng.normal(size=(64, 5)).astype(np.float32), rng.integers(0, 2, 64)\n"
            "for opt in ('adam', 'sgd'):\n"
            "    train_local(build_model('mlp', 5), x, y, epochs=2, batch_size=8, lr=0.01, seed=0, optimizer=opt,"
            " momentum=0.9, weight_decay=0.01)\n"
            "print('torch._dynamo' in sys.modules, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "True"]
