"""Strict parsing of small, flat JSON objects: `{"key": scalar, ...}` and nothing deeper.

Every node process runs with a recursion limit of 100,000 (py_ecc, pulled in by web3, raises it
at import), so the json module fed deeply nested input recurses until the C stack overflows and
the process dies with SIGSEGV, which no `except` can catch. Input is therefore scanned for
nesting first, in one flat loop, and handed to json only when it is a single flat object. The
parse also refuses what json would quietly accept: duplicate keys (the last one would win, so two
readers could disagree), NaN and Infinity, and numbers that overflow to infinity.
"""

from __future__ import annotations

import json
import math

__all__ = ["FlatJSONError", "Scalar", "parse_flat_object"]

Scalar = str | int | float | bool | None


class FlatJSONError(ValueError):
    """Input that is not one flat JSON object of scalars, within the size limit."""


def parse_flat_object(data: bytes | bytearray, max_bytes: int) -> dict[str, Scalar]:
    """The object in ``data`` (UTF-8 JSON), or FlatJSONError; never recurses more than one level."""
    if not isinstance(data, (bytes, bytearray)):
        raise FlatJSONError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise FlatJSONError(f"{len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FlatJSONError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    _check_flat(text)
    try:
        obj = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite)
    except ValueError as exc:  # JSONDecodeError, our hooks, int digit limits
        raise FlatJSONError(f"not valid JSON: {_one_line(exc)}") from None
    if not isinstance(obj, dict):
        raise FlatJSONError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _check_flat(text: str) -> None:
    """Refuse any bracket or brace outside strings beyond the outer object's pair."""
    depth = opened = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
            opened += 1
            if depth > 1 or opened > 1:
                raise FlatJSONError("expected one flat object: nested or repeated objects are refused")
        elif ch == "}":
            depth -= 1
        elif ch == "[" or ch == "]":
            raise FlatJSONError("expected one flat object: arrays are refused")


def _unique_keys(pairs: list[tuple[str, Scalar]]) -> dict[str, Scalar]:
    obj: dict[str, Scalar] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r:.40}")
        obj[key] = value
    return obj


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text:.40} overflows a float")
    return value


def _one_line(exc: ValueError) -> str:
    return " ".join(str(exc).split())[:200]
