"""A transaction the ledger refuses raises ChainError naming the custom error from the shipped ABIs."""
from __future__ import annotations

import pytest
from node_harness import deploy_settlement

from node.chain import Chain, ChainError


def test_a_revert_is_named_by_its_custom_error(anvil):
    dep = deploy_settlement(anvil, period_seconds=60, window=30, n_operators=1, quorum=1, n_meters=1)
    chain = Chain(dep.rpc_url, dep.registry, dep.ledger, dep.operator_keys[0])
    with pytest.raises(ChainError, match=r"^reverted: [A-Z]\w+\("):
        chain.finalize(10**6, dep.meters[0].group_id)  # no such batch
