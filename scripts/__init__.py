"""Operator and benchmark scripts; `scripts.bench` is importable for `python -m scripts.bench.fuzz`."""
