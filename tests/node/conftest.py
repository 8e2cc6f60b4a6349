from __future__ import annotations

import pytest
from node_harness import Anvil


@pytest.fixture
def anvil():
    chain = Anvil()
    yield chain
    chain.stop()
