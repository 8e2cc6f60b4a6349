"""The Clique network itself, ape's settlement network on it, and the chain client's refusals:
3 signers seal London blocks in turn, `ape run deploy --network ethereum:settlement:...`
deploys the settlement contracts (compiled for paris) unchanged, and a node pointed at another
chain refuses to start."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from clique_support import BLOCK_PERIOD
from eth_account import Account

from devnet.clique import CHAIN_ID
from node.chain import Chain, ChainError, ChainOptions
from scripts._deployment import contract_at
from scripts._processes import ROOT, dev_key

pytestmark = pytest.mark.network


def test_three_signers_seal_london_blocks_in_turn(network):
    w3 = network.web3(0)
    assert w3.eth.chain_id == CHAIN_ID
    signers = w3.provider.make_request("clique_getSigners", ["latest"])["result"]
    assert sorted(a.lower() for a in signers) == sorted(s.address.lower() for s in network.signers)
    start = w3.eth.block_number
    time.sleep(4 * BLOCK_PERIOD + 0.5)
    head = w3.eth.get_block("latest")
    assert head.number >= start + 3
    assert "withdrawalsRoot" not in head and "baseFeePerGas" in head  # London, nothing after
    # every signer sees the same chain
    assert len({network.web3(i).eth.get_block(head.number)["hash"] for i in range(3)}) == 1


def test_ape_run_deploy_on_the_clique_network(network, tmp_path):
    ops = [Account.from_key(dev_key(i)).address for i in (1, 2, 3)]
    spec = tmp_path / "spec.toml"
    spec.write_text(f"period_seconds = 60\nchallenge_window_seconds = 10\nquorum = 2\noperators = {json.dumps(ops)}\n"
                    f'meter_operators = ["{Account.from_key(dev_key(0)).address}"]\n')
    out = tmp_path / "deployment.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ape"), "run", "deploy", "--spec", str(spec),
                        "--out", str(out), "--network", f"ethereum:settlement:{network.urls[1]}"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    dep = json.loads(out.read_text())
    assert dep["chain_id"] == CHAIN_ID
    w3 = network.web3(2)  # another operator's validator sees the deployment
    registry = contract_at(w3, "MeterRegistry", dep["registry"])
    assert registry.functions.quorum().call() == 2
    assert sorted(registry.functions.operators().call()) == sorted(ops)
    assert contract_at(w3, "PeriodLedger", dep["ledger"]).functions.periodSeconds().call() == 60


def test_a_node_refuses_another_chain(network):
    zero = "0x" + "00" * 20
    with pytest.raises(ChainError, match=f"serves chain id {CHAIN_ID}, but the deployment is on chain id 31337"):
        Chain(network.urls[0], zero, zero, dev_key(1), chain_id=31337)
    Chain(network.urls[0], zero, zero, dev_key(1), chain_id=CHAIN_ID)  # the right one


def test_chain_options_refuse_nonsense():
    with pytest.raises(ValueError, match="confirmations"):
        ChainOptions(confirmations=-1)
    with pytest.raises(ValueError, match="tx_type"):
        ChainOptions(tx_type=1)
    with pytest.raises(ValueError, match="extra"):
        ChainOptions(confirmation=2)
