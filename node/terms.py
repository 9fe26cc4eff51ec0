"""The task's exchange terms (codec, kept share, partner draws) as this node's config sets them, and
the check that a task's on-chain terms agree with them.

The task fixes on chain how its members exchange updates (`incentive.ledger.ExchangeTerms`): a
node whose pipeline would send another codec, keep another share of the entries or draw other
partners could not merge with the others (the pipeline refuses blobs in a foreign codec, and a
different partner count gives a different draw), so it refuses to join with a clear error.
"""

from __future__ import annotations

from incentive.ledger import SPARSE_CODECS, ExchangeTerms

from .config import SwarmConfig
from .pipeline import COMPRESSION, stage_by_name


def exchange_terms(swarm: SwarmConfig) -> ExchangeTerms:
    """The terms a task must fix for nodes with these `[swarm]` settings."""
    codec = stage_by_name(COMPRESSION, swarm.compression, fraction=swarm.compression_fraction).wire_codec(swarm.codec)
    fraction = swarm.compression_fraction if codec in SPARSE_CODECS else 0.0
    return ExchangeTerms(codec, round(fraction * 10000) / 10000, swarm.exchange_all_up_to, swarm.partners)


def exchange_conflict(task: ExchangeTerms, mine: ExchangeTerms) -> str | None:
    """Why a node with terms `mine` cannot join a task with terms `task` (None: it can)."""
    for what, key, theirs, ours in (
            ("codec", "swarm.codec/swarm.compression", task.codec, mine.codec),
            ("kept share of a sparse codec", "swarm.compression_fraction", task.compression_fraction,
             mine.compression_fraction),
            ("all-to-all size", "swarm.exchange_all_up_to", task.exchange_all_up_to, mine.exchange_all_up_to),
            ("partner count", "swarm.partners", task.partners, mine.partners)):
        if theirs != ours:
            return f"the task fixes the updates' {what} at {theirs!r} on chain, this node's {key} gives {ours!r}"
    return None
