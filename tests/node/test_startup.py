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


#: Heavy modules a node's start-up must not import: the in-process test chain (eth-tester with
#: py-evm), SciPy and SymPy (Opacus's), py_ecc's BLS scheme and curve (eth-keyfile's, deferred by
#: incentive.deferred_imports; 0.15-0.55 CPU-s).
NOT_AT_START = ("eth_tester", "evm", "scipy", "sympy", "py_ecc.bls", "py_ecc.bls12_381")


def test_a_node_without_dp_never_imports_opacus_and_warms_up_dynamo_in_the_background() -> None:
    loaded = _modules_after("import node.cli\nfrom node import runtime")
    assert "node.dp" in loaded and "opacus" not in loaded  # Opacus waits until a DP node trains
    assert "web3" in loaded and "eth_keyfile.keyfile" in loaded  # the check below is not vacuous
    assert [name for name in NOT_AT_START if name in loaded] == []
    assert "torch._dynamo" not in loaded  # not on the start-up path
    warmed = _modules_after("from node import warmup\nthread = warmup.start()\n"
                            "assert warmup.start() is thread\nthread.join()")
    assert "torch._dynamo" in warmed


def test_opacus_waits_for_the_warm_up_and_plain_training_needs_none() -> None:
    # Opacus's optimiser imports torch._dynamo itself; it must not race the warm-up thread. Plain
    # training (node.optim) never imports it, so a node without DP starts no warm-up at all.
    code = ("import sys, numpy as np, torch\nfrom node import dp, training, warmup\n"
            "training.train_local(torch.nn.Linear(3, 2), np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1]),"
            " epochs=1, batch_size=2, lr=0.1, seed=0)\n"
            "assert 'torch._dynamo' not in sys.modules\n"
            "thread = warmup.start()\n"
            "assert dp.calibrate_noise(1.0, 1e-3, 0.1, 20) > 0\n"
            "assert not thread.is_alive()")
    assert "torch._dynamo" in _modules_after(code)


def test_the_node_command_imports_neither_the_launcher_nor_heavy_modules(tmp_path) -> None:
    # `medswarm node` itself, stopped at its config: everything it imports before it builds the node.
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "node.cli", "node", "--config",
                          str(tmp_path / "missing.toml")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "missing.toml does not exist" in out.stderr
    loaded = {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert {"node.runtime", "node.engine", "web3", "libp2p", "torch"} <= loaded
    # the swarm launcher (which imports eth-account before incentive can defer py_ecc.bls) is not the node's
    assert [name for name in (*NOT_AT_START, "node.launcher", "opacus") if name in loaded] == []


def test_the_deferred_bls_scheme_is_the_real_one_once_used() -> None:
    # A version-4 keystore is the one use eth-keyfile makes of py_ecc's BLS modules: its key bound
    # must be the real curve order, its public key the real scheme's, and the stand-ins must not
    # outlive eth-keyfile's import.
    code = ("import sys\nimport incentive\nfrom eth_keyfile import keyfile\n"
            "assert 'py_ecc.bls' not in sys.modules and 'py_ecc.bls12_381' not in sys.modules\n"
            "from py_ecc.bls12_381 import curve_order\n"
            "assert keyfile.MAX_V4_PRIVATE_KEY == curve_order - 1\n"
            "made = keyfile.create_keyfile_json(bytes(31) + b'\\x07', b'pw', version=4, iterations=2)\n"
            "from py_ecc.bls import G2ProofOfPossession\n"
            "assert G2ProofOfPossession.__module__ == 'py_ecc.bls.ciphersuites'\n"
            "assert made['pubkey'] == G2ProofOfPossession.SkToPk(7).hex(), made['pubkey']\n"
            "assert keyfile.decode_keyfile_json(made, b'pw') == bytes(31) + b'\\x07'\n"
            "assert type(keyfile).__name__ == 'module' and keyfile.__loader__.__class__.__name__ == 'SourceFileLoader'")
    _modules_after(code)


def test_nothing_is_deferred_when_the_bls_scheme_is_already_loaded() -> None:
    code = ("import py_ecc.bls\nimport incentive\nfrom eth_keyfile import keyfile\n"
            "assert keyfile.bls is py_ecc.bls.G2ProofOfPossession")
    _modules_after(code)


def test_a_name_beyond_the_deferred_ones_imports_the_real_scheme_at_once() -> None:
    # A later eth-keyfile taking another name from py_ecc.bls gets the real object, not a stand-in.
    code = ("import importlib.machinery, sys, types\nfrom incentive import deferred_imports\n"
            "class Loader:\n"
            "    def create_module(self, spec): return None\n"
            "    def exec_module(self, module): exec('from py_ecc.bls import G2Basic', module.__dict__)\n"
            "module = types.ModuleType('later_keyfile')\n"
            "module.__spec__ = importlib.machinery.ModuleSpec('later_keyfile', None)\n"
            "deferred_imports._StandInWhileImporting(Loader()).exec_module(module)\n"
            "import py_ecc.bls\n"
            "assert module.G2Basic is py_ecc.bls.G2Basic and sys.modules['py_ecc.bls'] is py_ecc.bls")
    _modules_after(code)
