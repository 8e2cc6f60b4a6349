"""`register`: a meter point operator's CSV sent in as few all-or-none transactions as the block
gas limit allows, resumed after an interruption without registering anything twice."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from eth_account import Account
from web3 import Web3

from rust_core.wire import meter_label_id
from scripts._deployment import (
    GAS_SHARE,
    ApeTransactor,
    MeterRow,
    NetworkSpec,
    RegistrationError,
    SpecError,
    Web3Transactor,
    contract_at,
    deploy,
    read_meter_csv,
    register,
    write_meter_csv,
)


def rows(n: int, start: int = 0) -> list[MeterRow]:
    return [MeterRow(f"sml:{i:012x}", Account.create().address, "consumption", f"group-{i % 3}", 5 + i % 7,
                     i * 1000, 0, source=f"meters.csv:{i + 2}") for i in range(start, start + n)]


@pytest.fixture
def network(accounts):
    admin = accounts[0]
    dep = deploy(ApeTransactor(admin), NetworkSpec(900, 600, 1, (accounts[1].address,), (admin.address,)))
    return ApeTransactor(admin), dep


def registered(dep, w3: Web3) -> Counter:
    """How often each meter id was registered, by the registry's events."""
    registry = contract_at(w3, "MeterRegistry", dep.registry)
    logs = registry.events.MeterRegistered().get_logs(from_block=dep.first_block)
    return Counter(e.args.meterId for e in logs)


def test_a_csv_goes_in_few_transactions_each_under_the_gas_target(network, chain, tmp_path):
    operator, dep = network
    meters = rows(600)
    write_meter_csv(tmp_path / "meters.csv", meters)
    read_back = read_meter_csv(tmp_path / "meters.csv", 900)
    first = chain.blocks.head.number + 1
    lines: list[str] = []
    done = register(operator, dep, read_back, progress=lines.append)
    assert done == [r.meter for r in meters]
    assert registered(dep, operator.web3) == Counter({meter_label_id(r.meter): 1 for r in meters})
    txs = [tx for n in range(first, chain.blocks.head.number + 1) for tx in chain.blocks[n].transactions]
    limit = chain.blocks.head.gas_limit
    gas = [chain.provider.get_receipt(tx.txn_hash.hex()).gas_used for tx in txs]
    assert all(g <= limit * GAS_SHARE for g in gas)
    # 50 in the first, then as many as the gas target holds: far fewer transactions than meters
    assert 3 <= len(txs) <= 6, gas
    assert chain.blocks.head.base_fee <= chain.blocks[first].base_fee  # no block above the target
    assert max(gas) > limit * GAS_SHARE * 0.8
    assert lines[-1].startswith("registered 600 of 600 meters")
    got = contract_at(operator.web3, "MeterRegistry", dep.registry).functions.getMeter(
        meter_label_id(meters[17].meter)).call()
    assert tuple(got) == meters[17].meter_struct()


def test_an_interrupted_run_resumes_without_registering_anything_twice(network):
    operator, dep = network
    meters = rows(300)

    def interrupt_after_two(line: str) -> None:
        if line.startswith("registered 100 of"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        register(operator, dep, meters, progress=interrupt_after_two, max_batch=50)
    before = len(registered(dep, operator.web3))  # 100 confirmed, and what was in flight by then
    assert 100 <= before < 300
    lines: list[str] = []
    done = register(operator, dep, meters, progress=lines.append, max_batch=50)
    assert done == [r.meter for r in meters[before:]]
    assert lines[0] == f"{before} of 300 meters are registered already; registering the other {300 - before}"
    assert register(operator, dep, meters) == []  # a third run: nothing left
    assert registered(dep, operator.web3) == Counter({meter_label_id(r.meter): 1 for r in meters})


def test_a_transaction_left_in_flight_is_waited_for_not_sent_again(network, chain, accounts):
    """The run died after sending a batch that is not mined yet: the next run waits for it,
    then reads its meters as registered."""
    operator, dep = network
    meters = rows(120)
    w3 = operator.web3
    # a plain web3 connection, as the interrupted run had (ape's own adds a gas price strategy)
    raw = Web3Transactor(Web3(Web3.HTTPProvider(chain.provider.uri)), accounts[0].private_key)
    lines: list[str] = []
    miner = threading.Timer(2.0, lambda: (w3.provider.make_request("evm_mine", []),
                                          w3.provider.make_request("evm_setAutomine", [True])))
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        raw.transact("MeterRegistry", dep.registry, "registerMeters", [meter_label_id(r.meter) for r in meters[:70]],
                     [r.meter_struct() for r in meters[:70]], gas=10_000_000, wait=False)
        miner.start()
        t = time.monotonic()
        done = register(operator, dep, meters, progress=lines.append)
        assert time.monotonic() - t >= 1.5
    finally:
        if miner.is_alive():
            miner.join()
        w3.provider.make_request("evm_setAutomine", [True])
    assert lines[0].startswith("waiting for 1 transaction(s)")
    assert done == [r.meter for r in meters[70:]]
    assert registered(dep, w3) == Counter({meter_label_id(r.meter): 1 for r in meters})


def test_a_meter_registered_with_other_data_is_refused_not_changed(network):
    operator, dep = network
    meters = rows(3)
    register(operator, dep, meters[:2])
    changed = [meters[0], MeterRow(meters[1].meter, Account.create().address, "consumption", "group-1",
                                   meters[1].active_from, meters[1].baseline_import_mwh, 0, source="meters.csv:3"),
               meters[2]]
    with pytest.raises(SpecError, match="meters.csv:3: meter sml:000000000001 is registered already with another key"):
        register(operator, dep, changed)
    assert len(registered(dep, operator.web3)) == 2  # the good third row waits for the CSV to be mended


def test_a_row_the_registry_refuses_is_named_and_its_batch_is_not_sent(network):
    operator, dep = network
    meters = rows(60)
    bad = meters[47]
    meters[47] = MeterRow(bad.meter, bad.key, bad.kind, bad.group, 9, 0, 0, active_until=8, source="meters.csv:49")
    with pytest.raises(RegistrationError, match=r"meters.csv:49: the registry refused .*InvalidMeter\(7, .*activeWindow"):
        register(operator, dep, meters, max_batch=40)
    assert len(registered(dep, operator.web3)) == 40  # the first batch; none of the second


def test_a_stranger_cannot_register(network, accounts):
    _, dep = network
    with pytest.raises(RegistrationError, match="AccessControlUnauthorizedAccount"):
        register(ApeTransactor(accounts[7]), dep, rows(2))
