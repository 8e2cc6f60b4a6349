"""A reorganisation that removes a transaction the node sent: signer 0 is cut off from the other
two, seals one block of its own holding the node's transaction, and the majority's heavier
chain replaces it when the link heals. The chain client (confirmations 3) does not take the
minority's receipt: it waits until the transaction is buried on the surviving chain, where it
is included exactly once."""
from __future__ import annotations

import threading
import time

import pytest
from eth_account import Account

from node.chain import Chain, ChainOptions
from scripts._deployment import Web3Transactor, contract_at
from scripts._processes import dev_key

pytestmark = pytest.mark.network


def wait(cond, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (v := cond()):
            return v
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s")


def test_a_reorganised_transaction_is_confirmed_once_on_the_surviving_chain(network):
    w0 = network.web3(0)
    admin = Web3Transactor(w0, dev_key(0))
    registry = admin.deploy("MeterRegistry", admin.address, 0, 900)
    newcomer = Account.create().address
    wait(lambda: all(network.web3(i).eth.get_code(registry) for i in range(3)), 20, "registry on every signer")
    # signer 0 stops sealing, so the blocks up to the cut are the others' and it may seal the
    # next one alone; cut off, it takes the node's transaction into its pool and then seals it
    w0.provider.make_request("miner_stop", [])
    wait(lambda: w0.eth.block_number, 5, "a head")
    head = w0.eth.block_number
    wait(lambda: w0.eth.block_number >= head + 2, 20, "two blocks sealed by the others")
    network.partition([0], [1, 2])
    wait(lambda: w0.net.peer_count == 0, 10, "signer 0 cut off")
    nonce = w0.eth.get_transaction_count(admin.address)
    chain = Chain(network.urls[0], registry, registry, dev_key(0), ChainOptions(confirmations=3, receipt_timeout_s=120))
    result: dict = {}

    def send() -> None:
        try:
            result["r"] = chain._send(chain.registry.functions.addOperator(newcomer))
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            result["error"] = e

    def in_flight_receipt():
        inflight = chain._inflight
        return chain._receipt(inflight[0]) if inflight else None

    sender = threading.Thread(target=send)
    sender.start()
    try:
        wait(lambda: chain._inflight, 10, "the transaction sent")
        w0.provider.make_request("miner_start", [])
        # the minority seals the transaction into a block of its own ...
        minority_receipt = wait(in_flight_receipt, 20, "the minority's block")
        fork_block = minority_receipt["blockNumber"]
        fork_hash = minority_receipt["blockHash"]
        w1 = network.web3(1)
        assert w1.eth.get_transaction_count(admin.address) == nonce  # the majority never saw it
        # ... and cannot bury it (one signer of three seals at most one block in a row)
        wait(lambda: w1.eth.block_number >= fork_block + 3, 30, "the majority 3 blocks past the fork")
        assert w0.eth.block_number == fork_block and "r" not in result
        network.heal()
        sender.join(150)
        assert "r" in result, f"the send did not come back: {result}"
    finally:
        w0.provider.make_request("miner_start", [])
        network.heal()
        sender.join(30)
    tx_hash = bytes.fromhex(result["r"].tx_hash[2:])
    receipts = [network.web3(i).eth.get_transaction_receipt(tx_hash) for i in range(3)]
    assert len({r["blockHash"] for r in receipts}) == 1
    assert receipts[0]["blockHash"] != fork_hash  # the minority's block is gone, the tx is in a majority block
    assert receipts[0]["blockHash"] == w0.eth.get_block(receipts[0]["blockNumber"])["hash"]
    for i in range(3):  # the one nonce used once; the operator added once
        w = network.web3(i)
        assert w.eth.get_transaction_count(admin.address) == nonce + 1
        assert contract_at(w, "MeterRegistry", registry).functions.operators().call() == [newcomer]
