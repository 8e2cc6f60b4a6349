"""Fixtures for the contract tests: a registry with 5 settlement operators (quorum 3), a meter
operator, a period ledger, and a `world` helper that registers meters and submits batches."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from settlement_builders import (  # noqa: E402
    ADMIN_DELAY_S,
    CHALLENGE_WINDOW,
    GROUP_A,
    PERIOD_SECONDS,
    RESPONSE_TIME,
    MeterSpec,
    SumTree,
    cosign,
    header_struct,
    make_leaf,
    ref,
)


@pytest.fixture(scope="session")
def admin(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def operators(accounts):
    return [accounts[i] for i in range(1, 6)]


@pytest.fixture(scope="session")
def meter_operator(accounts):
    return accounts[6]


@pytest.fixture(scope="session")
def stranger(accounts):
    return accounts[7]


@pytest.fixture(scope="module")
def registry(project, admin, operators, meter_operator):
    reg = admin.deploy(project.MeterRegistry, admin, ADMIN_DELAY_S, PERIOD_SECONDS)
    reg.grantRole(reg.METER_OPERATOR_ROLE(), meter_operator, sender=admin)
    for op in operators:
        reg.addOperator(op, sender=admin)
    reg.setQuorum(3, sender=admin)
    return reg


@pytest.fixture(scope="module")
def ledger(project, admin, registry):
    return admin.deploy(project.PeriodLedger, registry, PERIOD_SECONDS, CHALLENGE_WINDOW, RESPONSE_TIME)


@pytest.fixture(scope="module")
def domain(chain, ledger):
    return ref.Domain(chain.chain_id, ledger.address)


class World:
    """Registers meters and builds, signs and submits batches against one deployed ledger."""

    def __init__(self, chain, registry, ledger, domain, operators, meter_operator):
        self.chain, self.registry, self.ledger, self.domain = chain, registry, ledger, domain
        self.operators, self.meter_operator = operators, meter_operator
        # a period well in the past, so that several later periods are closed too
        self.period = chain.pending_timestamp // PERIOD_SECONDS - 50

    def register(self, meter: MeterSpec) -> MeterSpec:
        self.registry.registerMeter(*meter.register_args(), sender=self.meter_operator)
        self._registered = True
        return meter

    def meters(self, n: int, group: bytes = GROUP_A, prefix: str = "m", **kw) -> list[MeterSpec]:
        specs = [MeterSpec(f"{prefix}{i}", group, active_from=self.period - 10, **kw) for i in range(n)]
        specs.sort(key=lambda m: m.meter_id)
        return [self.register(m) for m in specs]

    def leaf(self, meter: MeterSpec, period: int, import_mwh: int, export_mwh: int, prev=None, **kw):
        """A signed leaf; `prev` is the earlier leaf it counts from (None: the baseline)."""
        if prev is None:
            pp, pi, pe = meter.active_from - 1, meter.baseline_import, meter.baseline_export
        else:
            pp, pi, pe = prev.reading.period, prev.reading.import_mwh, prev.reading.export_mwh
        return make_leaf(self.domain, meter, period, import_mwh, export_mwh, pp, pi, pe, **kw)

    @property
    def epoch(self) -> int:
        """The operator epoch in force (what a header must name)."""
        return self.registry.operatorEpoch()

    def keys(self, n: int = 3) -> list[bytes]:
        return [bytes.fromhex(op.private_key[2:]) for op in self.operators[:n]]

    def submit(self, tree: SumTree, period: int, group: bytes = GROUP_A, *, count=None, sender=None, keys=None,
               keep_time=False):
        """Submits; after a registration, one second later than it (a meter counts in a batch only
        if registered strictly before its submission, and anvil reuses timestamps), unless keep_time."""
        if getattr(self, "_registered", False) and not keep_time:
            self.chain.pending_timestamp = max(self.chain.pending_timestamp, self.chain.blocks.head.timestamp + 1)
        self._registered = False
        h = tree.header(period, group, count, epoch=self.epoch)
        sigs = cosign(self.domain, h, keys if keys is not None else self.keys())
        return self.ledger.submitBatch(header_struct(h), sigs, sender=sender or self.operators[0])

    def pass_window(self):
        self.chain.pending_timestamp += CHALLENGE_WINDOW

    def finalize(self, period: int, group: bytes = GROUP_A):
        return self.ledger.finalize(period, group, sender=self.operators[0])

    def settle(self, leaves, period: int, group: bytes = GROUP_A) -> SumTree:
        """Submit and finalize an honest batch."""
        tree = SumTree.from_leaves(leaves)
        self.submit(tree, period, group)
        self.pass_window()
        self.finalize(period, group)
        return tree

    def batch(self, period: int, group: bytes = GROUP_A):
        return self.ledger.getBatch(period, group)


@pytest.fixture
def world(chain, registry, ledger, domain, operators, meter_operator):
    return World(chain, registry, ledger, domain, operators, meter_operator)

