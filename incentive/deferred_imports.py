"""Keeps py_ecc's BLS12-381 code out of a process until something uses it.

eth-account imports eth-keyfile, whose `keyfile` module imports two BLS modules at module level
for version-4 (BLS12-381) keystores, which MedSwarm never creates (its keys are secp256k1):
`py_ecc.bls` for the public key written into such a keystore, and (eth-keyfile 0.10)
`py_ecc.bls12_381` for the curve's order, the bound on such a key. Importing either builds
pairing tables in pure Python: 0.15-0.55 CPU-seconds, up to a tenth of a fresh node's start-up.

:func:`install` puts a finder first on `sys.meta_path`. While `eth_keyfile.keyfile` executes,
each module of :data:`STAND_INS` is a stand-in: `py_ecc.bls`'s `G2ProofOfPossession` imports the
real scheme on its first attribute read, and `py_ecc.bls12_381`'s `curve_order` is the curve's
published group order (tests check it against py_ecc's). The stand-ins leave `sys.modules` as soon
as `eth_keyfile.keyfile` has run, so every other importer gets the real modules. A module already
imported is not stood in for; any other name `eth_keyfile.keyfile` takes from one (a later
version) imports the real module at once. Installing costs no import.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec

__all__ = ["BLS12_381_ORDER", "IMPORTER", "STAND_INS", "install"]

IMPORTER = "eth_keyfile.keyfile"
#: r, the order of BLS12-381's prime-order subgroups (the bound on a BLS secret key).
BLS12_381_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001


class _OnFirstUse:
    """Stands for `module.name`: the first attribute read imports the real module."""

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(getattr(importlib.import_module(self._module), self._name), attribute)

    def __repr__(self) -> str:
        return f"<{self._module}.{self._name}, imported on first use>"


#: Module -> the names IMPORTER takes from it -> what stands for each while IMPORTER executes.
STAND_INS: dict[str, dict[str, Callable[[], Any]]] = {
    "py_ecc.bls": {"G2ProofOfPossession": lambda: _OnFirstUse("py_ecc.bls", "G2ProofOfPossession")},
    "py_ecc.bls12_381": {"curve_order": lambda: BLS12_381_ORDER},
}


def _stand_in(module: str) -> types.ModuleType:
    stand_in = types.ModuleType(module, f"Stand-in for {module} while {IMPORTER} imports.")
    for name, make in STAND_INS[module].items():
        setattr(stand_in, name, make())

    def real_attribute(name: str) -> Any:
        # A name a later eth-keyfile may take besides the stood-in ones: the real one, imported now.
        # (The import system probes dunders such as __path__: the stand-in has none.)
        if name.startswith("__"):
            raise AttributeError(name)
        if sys.modules.get(module) is stand_in:
            del sys.modules[module]
        return getattr(importlib.import_module(module), name)

    stand_in.__getattr__ = real_attribute  # type: ignore[method-assign]
    return stand_in


class _StandInWhileImporting:
    """Runs IMPORTER's own loader with the stand-ins in `sys.modules` for the duration."""

    def __init__(self, loader: Loader) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # The module keeps its real loader (tracebacks and `inspect` read source through it).
        module.__loader__ = module.__spec__.loader = self._loader
        placed = {name: _stand_in(name) for name in STAND_INS if name not in sys.modules}
        sys.modules.update(placed)
        try:
            self._loader.exec_module(module)
        finally:
            for name, stand_in in placed.items():
                if sys.modules.get(name) is stand_in:
                    del sys.modules[name]


class _DeferBLS:
    """Finds IMPORTER through the other finders and wraps its loader; declines everything else."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> ModuleSpec | None:
        if fullname != IMPORTER:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _StandInWhileImporting(spec.loader)
                return spec
        return None


def install() -> None:
    """Defer py_ecc's BLS modules for eth-keyfile (once per process; a no-op if eth-keyfile is loaded)."""
    if IMPORTER not in sys.modules and not any(isinstance(f, _DeferBLS) for f in sys.meta_path):
        sys.meta_path.insert(0, _DeferBLS())
