"""What the network tests share besides fixtures (a module of its own: `conftest` is ambiguous
when several test folders run together)."""
from __future__ import annotations

from types import SimpleNamespace

from devnet.clique import CliqueNetwork

BLOCK_PERIOD = 1


def endpoint(net: CliqueNetwork, i: int = 0) -> SimpleNamespace:
    """What the node harness's deploy needs of a chain (as of its Anvil): a web3 and the URL."""
    return SimpleNamespace(w3=net.web3(i, timeout=30), url=net.urls[i])
