"""The demo and the thin path run on the wall clock (the nodes close periods by it, the ledger
checks block time): other test folders move the shared anvil's clock (time warps, snapshot
reverts), so these tests set it back to the wall clock first."""
import time

import pytest


@pytest.fixture(scope="module")
def wall_clock(chain):
    chain.provider.make_request("anvil_setTime", [int(time.time())])
    chain.mine()
    assert abs(chain.blocks.head.timestamp - time.time()) < 5
    return chain
