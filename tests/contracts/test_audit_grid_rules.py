"""The audit follows the grid rules of issue 11 items 5 and 7 from the chain: the loss allowance
of each period (lossBpsAt, not the latest setLossBps), members removed from a period on, and a
member group counted as zero in a period its chain finalized past without a batch."""
from settlement_builders import CHALLENGE_WINDOW
from test_grid import BOUNDARY, CONSUMERS, MIXED, PRODUCERS, street  # noqa: F401 (fixture)

from rust_core.wire import Leaf
from scripts._audit import audit, read_chain
from scripts._deployment import Deployment


class Recorder:
    """Settles groups like test_grid.settle_group and keeps their leaves as an archive export."""

    def __init__(self, world):
        self.world, self.export = world, {}

    def settle(self, group, flows, period, prefix):
        meters = self.world.meters(len(flows), group, prefix=f"{prefix}-{group.hex()[:6]}-{period}")
        leaves = [self.world.leaf(m, period, imp, exp) for m, (imp, exp) in zip(meters, flows)]
        tree = self.world.settle(leaves, period, group)
        self.export[(period, group, bytes(tree.root[0]))] = [
            Leaf(lf.reading.meter_id, lf.reading.period, lf.reading.timestamp, lf.reading.import_mwh,
                 lf.reading.export_mwh, lf.prev_period, lf.prev_import_mwh, lf.prev_export_mwh, lf.signature)
            for lf in leaves]

    def street(self, period, boundary=(0, 0)):
        self.settle(CONSUMERS, [(3000, 0), (4000, 0), (3001, 0)], period, "c")
        self.settle(PRODUCERS, [(0, 5000), (0, 2000)], period, "p")
        self.settle(MIXED, [(1000, 500)], period, "x")
        self.settle(BOUNDARY, [boundary], period, "b")


def audited(chain, registry, ledger, street, export):
    dep = Deployment(chain_id=chain.chain_id, registry=registry.address, ledger=ledger.address,
                     period_seconds=ledger.periodSeconds(), challenge_window_seconds=CHALLENGE_WINDOW, first_block=0,
                     grids={"street": street.address})
    return audit(read_chain(chain.provider.web3, dep), export)


def test_loss_allowance_of_the_period_and_a_removed_member(world, chain, street, admin, operators, ledger,  # noqa: F811
                                                            registry):
    rec = Recorder(world)
    p = world.period
    rec.street(p, (3700, 0))  # surplus 199, within the 5 % of period p
    street.setLossBps(0, sender=admin)  # from a later period on
    gone = street.removeMember(MIXED, sender=admin).events[0].fromPeriod
    street.rollUp(p, sender=operators[0])
    chain.pending_timestamp = (gone + 1) * ledger.periodSeconds() + 1
    rec.settle(CONSUMERS, [(3000, 0)], gone, "c")
    rec.settle(PRODUCERS, [(0, 2000)], gone, "p")
    rec.settle(BOUNDARY, [(1000, 0)], gone, "b")
    street.rollUp(gone, sender=operators[0])  # without MIXED, at 0 bps
    result = audited(chain, registry, ledger, street, rec.export)
    assert result.ok, [str(f) for f in result.findings]
    assert result.periods[p].grids["street"]["losses"] == 199


def test_a_group_the_chain_finalized_past_counts_zero(world, chain, street, operators, ledger,  # noqa: F811
                                                      registry):
    rec = Recorder(world)
    p = world.period
    rec.street(p, (3700, 0))
    for g, flows in ((CONSUMERS, [(3000, 0)]), (PRODUCERS, [(0, 2000)]), (BOUNDARY, [(1000, 0)])):
        rec.settle(g, flows, p + 1, "n")
    rec.settle(MIXED, [(10, 0)], p + 2, "x2")  # MIXED has no batch at p + 1: its chain moved past it
    street.rollUp(p, sender=operators[0])
    street.rollUp(p + 1, sender=operators[0])
    result = audited(chain, registry, ledger, street, rec.export)
    assert result.ok, [str(f) for f in result.findings]
    assert result.periods[p + 1].grids["street"]["withdrawn"] == 3000
