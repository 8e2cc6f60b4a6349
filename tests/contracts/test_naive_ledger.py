"""NaiveLedger (the bench's one-transaction-per-reading baseline) does what the bench measures."""
import ape
import pytest
from settlement_builders import make_leaf, ref


@pytest.fixture(scope="module")
def naive(project, admin, registry):
    return admin.deploy(project.NaiveLedger, registry)


def reading_args(naive, chain, meter, period, imp, signer=None):
    lf = make_leaf(ref.Domain(chain.chain_id, naive.address), meter, period, imp, 0, 0, 0, 0, signer=signer)
    r = lf.reading
    return (r.meter_id, r.period, r.timestamp, r.import_mwh, r.export_mwh, lf.signature)


def test_stores_readings_and_totals(world, naive, chain, stranger):
    [m] = world.meters(1, prefix="naive-t")
    p = world.period
    naive.submitReading(*reading_args(naive, chain, m, p, 700), sender=world.operators[0])
    naive.submitReading(*reading_args(naive, chain, m, p + 1, 900), sender=world.operators[0])
    assert naive.totals(p, m.group).importMwh == 700 and naive.totals(p + 1, m.group).importMwh == 200
    with ape.reverts(naive.NotNewer):
        naive.submitReading(*reading_args(naive, chain, m, p + 1, 950), sender=world.operators[0])
    with ape.reverts(naive.RegisterRegression):
        naive.submitReading(*reading_args(naive, chain, m, p + 2, 100), sender=world.operators[0])
    with ape.reverts(naive.BadSignature):
        naive.submitReading(*reading_args(naive, chain, m, p + 2, 1000, b"\x12" * 32), sender=world.operators[0])
    with ape.reverts(naive.AccessControlUnauthorizedAccount, account=stranger.address):
        naive.submitReading(*reading_args(naive, chain, m, p + 2, 1000), sender=stranger)
