"""A cache of generated or converted data sets as `.npz` files of plain arrays.

Generating a scenario's data can take seconds to minutes (physiokit ECG) or needs a one-time
conversion (a pickled array inside an installed package). The result is kept as an `.npz` of
named plain arrays and read back with `allow_pickle=False`, so a cache file can never run code. Files are written to a temporary name and renamed, so several node processes that build the
same set at once never read half a file. The folder is `$MEDSWARM_CACHE`, else
`~/.cache/medswarm`.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

logger = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


def cache_dir() -> Path:
    return Path(os.environ.get("MEDSWARM_CACHE") or Path.home() / ".cache" / "medswarm")


def cached_arrays(key: str, build: Callable[[], Arrays]) -> Arrays:
    """The named arrays stored under `key`, built with `build()` and stored on the first call."""
    if not _KEY.match(key):
        raise ValueError(f"cache key {key!r}: letters, digits, '.', '_' and '-' only")
    path = cache_dir() / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("cache file %s is unreadable (%s); building it again", path, exc)
    arrays = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    logger.info("built and cached %s", key)
    return arrays
