"""Stand a consortium's ledger up: deploy the contract, register the members, open and fund a task.

`medswarm deploy` (an operator's admin key, members from a file) and the local swarm launcher
(fresh node keys on a dev chain) both go through `deploy_ledger`, so a chain is set up one way.
Members files are JSON (a list, or {"members": [...]}) or TOML (`[[member]]` tables), each
member with an address, a peer_id and a name.
"""

from __future__ import annotations

import json
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from eth_account.signers.local import LocalAccount
from web3 import Web3

from incentive.ledger import ExchangeTerms, Ledger, PrivacyTerms

logger = logging.getLogger(__name__)

MEMBER_FIELDS = ("address", "peer_id", "name")


class MembersFileError(ValueError):
    """A members file is missing, unreadable, malformed, or lacks a field."""


@dataclass(frozen=True)
class NewMember:
    """A hospital to register: its Ethereum address, its libp2p peer id and a display name."""

    address: str
    peer_id: str
    name: str


@dataclass(frozen=True)
class TaskPlan:
    """A training task to open: members needed per round, model id, round length, pool funding,
    and the optional stake, slash, referee and validation-set digest (see Ledger.create_task)."""

    quorum: int
    model_id: str
    round_duration: int  # seconds from a round's first commit
    fund: int = 0  # wei put into the pool
    stake: int = 0  # wei each member bonds before committing
    slash: int = 0  # wei taken from a bond per offence
    referee: str | None = None  # the sponsor's scoring node, whose vote decides
    validation_digest: str | None = None  # keccak256 of the validation set the sponsor publishes
    privacy: PrivacyTerms | None = None  # the DP budget and parameters every commit is held to
    exchange: ExchangeTerms = ExchangeTerms()  # the updates' codec and who merges with whom


@dataclass(frozen=True)
class Deployment:
    """What was set up; the field order is that of the JSON `medswarm deploy --out` writes."""

    address: str
    task_id: int | None  # None when no task was opened
    chain_id: int
    admin: str
    members: int  # how many were registered
    pool: int  # wei


def read_members(path: Path) -> tuple[NewMember, ...]:
    """The members listed in a JSON or TOML file (see the module docstring)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise MembersFileError(f"members file {path} cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text).get("member", []) if path.suffix == ".toml" else json.loads(text)
    except ValueError as exc:  # both decoders' errors are ValueErrors
        raise MembersFileError(f"members file {path} cannot be parsed: {exc}") from None
    if isinstance(data, dict):
        data = data.get("members", [])
    members = []
    for i, entry in enumerate(data):
        missing = set(MEMBER_FIELDS) - set(entry if isinstance(entry, dict) else ())
        if missing:
            raise MembersFileError(f"{path}: member #{i} lacks {sorted(missing)}")
        members.append(NewMember(*(str(entry[k]) for k in MEMBER_FIELDS)))
    return tuple(members)


def deploy_ledger(
    w3: Web3,
    admin: LocalAccount,
    members: Sequence[NewMember],
    task: TaskPlan | None,
    *,
    sponsor: LocalAccount | None = None,
) -> Deployment:
    """Deploy a ledger administered by `admin`, register `members`, and open `task` if given.

    The pool is funded from `sponsor`'s account, or from the admin's when there is no sponsor.
    """
    ledger = Ledger.deploy(w3, admin)
    for member in members:
        ledger.register_member(member.address, member.peer_id, member.name)
    task_id = None
    if task is not None:
        task_id = ledger.create_task(quorum=task.quorum, model_id=task.model_id, round_duration=task.round_duration,
                                     stake=task.stake, slash=task.slash, referee=task.referee,
                                     validation_digest=task.validation_digest, privacy=task.privacy,
                                     exchange=task.exchange)
        if task.fund:
            (ledger.with_account(sponsor) if sponsor else ledger).fund(task_id, task.fund)
        logger.info("task %d opened on %s with a pool of %d wei", task_id, ledger.address, task.fund)
    return Deployment(ledger.address, task_id, w3.eth.chain_id, admin.address, len(members),
                      task.fund if task is not None else 0)
