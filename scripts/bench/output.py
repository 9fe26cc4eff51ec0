"""Where every benchmark's results go: JSON (NaN and numpy values made plain), markdown, a plot.

Kept apart from the harness so that benchmarks that run no swarm (gas) do not load the node stack.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(payload), indent=2) + "\n")


def publish(out: Path, name: str, payload: dict[str, Any], markdown: str,
            plot: Callable[[Path], None] | None = None) -> None:
    """Write a benchmark's `name`.json, `name`.md and (with `plot`) `name`'s picture into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", payload)
    (out / f"{name}.md").write_text(markdown)
    if plot is not None:
        plot(out)


def jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (np.floating, np.integer)):
        return jsonable(value.item())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
