"""A 3-signer Clique network (geth v1.13.15, devnet/) for the session, one signer per operator,
1-second blocks. Tests that stop signers get them all back before the next test."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))  # node_harness
sys.path.insert(0, str(Path(__file__).resolve().parent))  # clique_support

from clique_support import BLOCK_PERIOD  # noqa: E402

from devnet.clique import CliqueNetwork  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "network: needs the geth Clique network (devnet/, builds geth once)")


@pytest.fixture(scope="session")
def clique(tmp_path_factory):
    net = CliqueNetwork.create(tmp_path_factory.mktemp("clique"), 3, period=BLOCK_PERIOD)
    net.start_all()
    yield net
    net.stop_all()


@pytest.fixture
def network(clique):
    """The session's network with every signer running and peered again."""
    for i in range(len(clique.signers)):
        clique.start(i)  # a no-op when it runs
    clique.heal()
    clique.wait_for_blocks(beyond=clique.head(0) or 0)
    return clique

