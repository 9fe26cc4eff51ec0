"""The task's exchange terms on chain: codec, kept share and partner draws fixed at creation."""

from __future__ import annotations

import pytest

from incentive.audit import audit
from incentive.errors import InvalidExchangeTerms
from incentive.ledger import ExchangeTerms

from ledger_fixtures import make_deployment


@pytest.fixture(scope="module")
def dep():
    return make_deployment()


def test_the_terms_are_fixed_at_creation_and_read_back(dep):
    terms = ExchangeTerms("ternary", 0.05, exchange_all_up_to=4, partners=2)
    t = dep.new_task(exchange=terms)
    assert dep.admin.task(t).exchange == terms
    assert dep.admin.task(dep.new_task()).exchange == ExchangeTerms("f32", 0.0, 16, 0)  # the default
    raw = dep.admin.contract.functions.taskTerms(t).call()[-1]
    assert tuple(raw) == (4, 500, 4, 2)  # ternary, 500 basis points
    events = dep.admin.contract.events.ExchangeTermsSet().get_logs(from_block=0)
    assert [(e["args"]["taskId"], e["args"]["codec"], e["args"]["compressionBps"]) for e in events][-2:] == [
        (t, 4, 500), (t + 1, 0, 0)]
    assert audit(dep.w3, dep.admin.address).ok


@pytest.mark.parametrize("terms", [
    ExchangeTerms("sparse16", 0.0),  # a sparse codec keeps some share
    ExchangeTerms("q8", 0.01),  # a dense codec keeps everything
    ExchangeTerms("ternary", 1.0001),  # above 10000 basis points
    ExchangeTerms("f32", 0.0, partners=64),  # more partners than members
])
def test_terms_out_of_range_are_refused(dep, terms):
    before = dep.admin.contract.functions.taskCount().call()
    with pytest.raises(InvalidExchangeTerms):
        dep.admin.create_task(quorum=2, model_id="m", round_duration=60, exchange=terms)
    assert dep.admin.contract.functions.taskCount().call() == before


def test_an_unknown_codec_is_refused_before_the_chain():
    with pytest.raises(ValueError, match="unknown codec"):
        ExchangeTerms("f64").encode()
