"""Keeps py_ecc's BLS signature scheme out of a process until something uses it.

eth-account imports eth-keyfile, whose `keyfile` module imports `py_ecc.bls` at module level for
one use: the public key written into a version-4 (BLS12-381) keystore, which MedSwarm never
creates (its keys are secp256k1). Importing `py_ecc.bls` builds pairing tables in pure Python:
about 0.55 CPU-seconds, a tenth of a fresh node's start-up.

:func:`install` puts a finder first on `sys.meta_path`. While `eth_keyfile.keyfile` executes,
`py_ecc.bls` is a stand-in module whose one name that module binds, `G2ProofOfPossession`,
imports the real scheme on its first attribute read. The stand-in leaves `sys.modules` as soon as
`eth_keyfile.keyfile` has run, so every other importer of `py_ecc.bls` gets the real module. If
`py_ecc.bls` is already imported, nothing is deferred; any other name `eth_keyfile.keyfile` takes
from it (a later version) imports the real module at once. Installing costs no import.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec

__all__ = ["BLS_MODULE", "IMPORTER", "install"]

BLS_MODULE = "py_ecc.bls"
IMPORTER = "eth_keyfile.keyfile"
#: The names IMPORTER takes from BLS_MODULE (`from py_ecc.bls import G2ProofOfPossession as bls`).
DEFERRED_NAMES = ("G2ProofOfPossession",)


class _OnFirstUse:
    """Stands for `BLS_MODULE.name`: the first attribute read imports the real module."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(getattr(importlib.import_module(BLS_MODULE), self._name), attribute)

    def __repr__(self) -> str:
        return f"<{BLS_MODULE}.{self._name}, imported on first use>"


class _StandInWhileImporting:
    """Runs IMPORTER's own loader with BLS_MODULE's stand-in in `sys.modules` for the duration."""

    def __init__(self, loader: Loader) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # The module keeps its real loader (tracebacks and `inspect` read source through it).
        module.__loader__ = module.__spec__.loader = self._loader
        if BLS_MODULE in sys.modules:
            self._loader.exec_module(module)
            return
        stand_in = types.ModuleType(BLS_MODULE, f"Stand-in for {BLS_MODULE} while {IMPORTER} imports.")
        for name in DEFERRED_NAMES:
            setattr(stand_in, name, _OnFirstUse(name))

        def real_attribute(name: str) -> Any:
            # A name a later eth-keyfile may take besides DEFERRED_NAMES: the real one, imported now.
            # (The import system probes dunders such as __path__: the stand-in has none.)
            if name.startswith("__"):
                raise AttributeError(name)
            if sys.modules.get(BLS_MODULE) is stand_in:
                del sys.modules[BLS_MODULE]
            return getattr(importlib.import_module(BLS_MODULE), name)

        stand_in.__getattr__ = real_attribute  # type: ignore[method-assign]
        sys.modules[BLS_MODULE] = stand_in
        try:
            self._loader.exec_module(module)
        finally:
            if sys.modules.get(BLS_MODULE) is stand_in:
                del sys.modules[BLS_MODULE]


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
    """Defer `py_ecc.bls` for eth-keyfile (once per process; a no-op if eth-keyfile is loaded)."""
    if IMPORTER not in sys.modules and not any(isinstance(f, _DeferBLS) for f in sys.meta_path):
        sys.meta_path.insert(0, _DeferBLS())
