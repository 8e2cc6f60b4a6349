"""Grid: roll-up of final batches, conservation against the boundary, imbalance, pro-rata
origin allocation, nesting, replay and roles."""
import ape
import pytest
from settlement_builders import ref

CONSUMERS = ref.group_id("grid-test:consumers")
PRODUCERS = ref.group_id("grid-test:producers")
MIXED = ref.group_id("grid-test:mixed")
BOUNDARY = ref.group_id("grid-test:boundary")
UPSTREAM_BOUNDARY = ref.group_id("grid-test:district-boundary")
DISTRICT_HOMES = ref.group_id("grid-test:district-homes")
STREET = ref.group_id("grid:street")
DISTRICT = ref.group_id("grid:district")


def settle_group(world, group, flows, period, prefix):
    """Final batch for `group` whose meters have (import delta, export delta) = flows."""
    meters = world.meters(len(flows), group, prefix=f"{prefix}-{group.hex()[:6]}-{period}")
    leaves = [world.leaf(m, period, imp, exp) for m, (imp, exp) in zip(meters, flows)]
    world.settle(leaves, period, group)


_deployed: list = []


def deploy_grid(project, admin, registry, ledger, *args):
    """A Grid with the registry's GRID_ROLE (it claims its members in the registry's index)."""
    g = admin.deploy(project.Grid, registry, ledger, *args)
    registry.grantRole(registry.GRID_ROLE(), g, sender=admin)
    _deployed.append(g)
    return g


@pytest.fixture(autouse=True)
def _release_members(admin):
    """After each test its grids give up their members (one parent each), for the next test's grids."""
    yield
    while _deployed:
        g = _deployed.pop()
        for m in g.members():
            if g.removedFrom(m.id) == 0:
                g.removeMember(m.id, sender=admin)


def start_from_members(world, chain, ledger, grid):
    """Members count from the period after the one they were added in: the test's periods start there."""
    world.period = max(grid.addedFrom(m.id) for m in grid.members())
    chain.pending_timestamp = max(chain.pending_timestamp, (world.period + 1) * ledger.periodSeconds() + 1)


@pytest.fixture
def street(project, admin, registry, ledger, world, chain):
    g = deploy_grid(project, admin, registry, ledger, STREET, BOUNDARY, BOUNDARY, 500)  # 5 % losses allowed
    for group in (CONSUMERS, PRODUCERS, MIXED):
        g.addGroup(group, sender=admin)
    start_from_members(world, chain, ledger, g)
    return g


def settle_street(world, period, boundary_flows=((0, 0),)):
    # consumers withdraw 3000 + 4000 + 3001; producers inject 5000 + 2000; mixed 1000 in, 500 out
    settle_group(world, CONSUMERS, [(3000, 0), (4000, 0), (3001, 0)], period, "c")
    settle_group(world, PRODUCERS, [(0, 5000), (0, 2000)], period, "p")
    settle_group(world, MIXED, [(1000, 500)], period, "x")
    settle_group(world, BOUNDARY, list(boundary_flows), period, "b")


def test_rollup_conservation_and_origin(world, street, operators):
    p = world.period
    # injected 7500, withdrawn 11001: the boundary meter imports 3700 from upstream
    settle_street(world, p, [(3700, 0)])
    tx = street.rollUp(p, sender=operators[1])
    r = street.getRollup(p)
    assert (r.injected, r.withdrawn, r.fromUpstream, r.toUpstream) == (7500, 11001, 3700, 0)
    # entering 11200, leaving 11001: surplus 199 <= 5 % of 11200, all losses, no imbalance
    assert (r.losses, r.imbalance, r.localAllocated, r.rolledUp) == (199, 0, 7500, True)
    assert r.injected + r.fromUpstream == r.withdrawn + r.toUpstream + r.losses + r.imbalance
    names = {CONSUMERS: "c", PRODUCERS: "p", MIXED: "x"}
    flows = {g: street.memberFlow(p, g) for g in names}
    assert (flows[CONSUMERS].withdrawn, flows[PRODUCERS].injected, flows[MIXED].injected) == (10001, 7000, 500)
    # every unit of local generation is allocated exactly once
    matrix = {(c, q): street.origin(p, c, q) for c in names for q in names}
    assert sum(matrix.values()) == r.localAllocated == 7500
    for g, f in flows.items():
        assert sum(matrix[(g, q)] for q in names) == f.localReceived <= f.withdrawn
        assert sum(matrix[(c, g)] for c in names) == f.localSupplied <= f.injected
    assert flows[PRODUCERS].localSupplied == 7000 and flows[MIXED].localSupplied == 500
    # pro rata: consumers get 7500 * w / 11001 (floor, remainder in member order)
    assert flows[CONSUMERS].localReceived == 7500 * 10001 // 11001 + 1
    assert flows[MIXED].localReceived == 7500 * 1000 // 11001
    events = {e.event_name for e in tx.events}
    assert {"MemberFlowRecorded", "Allocated", "ImbalanceRecorded", "PeriodRolledUp"} <= events
    allocated = [e for e in tx.events if e.event_name == "Allocated"]
    assert sum(e.mwh for e in allocated) == 7500
    assert street.exchange(p) == (True, 0, 3700)


def test_imbalance_is_recorded_never_dropped(world, street, operators):
    p = world.period
    settle_street(world, p, [(5000, 0)])  # 1301 too much from upstream: 625 losses allowed
    street.rollUp(p, sender=operators[0])
    r = street.getRollup(p)
    assert r.losses == 12500 * 500 // 10_000 == 625
    assert r.imbalance == 12500 - 11001 - 625
    settle_street(world, p + 1, [(100, 0)])  # a deficit: the members withdrew more than entered
    tx = street.rollUp(p + 1, sender=operators[0])
    r = street.getRollup(p + 1)
    assert (r.losses, r.imbalance) == (0, 7600 - 11001)
    ev = [e for e in tx.events if e.event_name == "ImbalanceRecorded"][0]
    assert ev.responsibleGroup == BOUNDARY and ev.imbalance == 7600 - 11001


def test_rollup_waits_for_final_batches_and_replay_reverts(world, street, operators):
    p = world.period
    settle_group(world, CONSUMERS, [(10, 0)], p, "c")
    with ape.reverts(street.MemberNotFinal, period=p, memberId=PRODUCERS):
        street.rollUp(p, sender=operators[0])
    settle_group(world, PRODUCERS, [(0, 10)], p, "p")
    settle_group(world, MIXED, [(0, 0)], p, "x")
    with ape.reverts(street.MemberNotFinal, period=p, memberId=BOUNDARY):
        street.rollUp(p, sender=operators[0])
    settle_group(world, BOUNDARY, [(0, 0)], p, "b")
    street.rollUp(p, sender=operators[0])
    before = street.getRollup(p)
    with ape.reverts(street.AlreadyRolledUp, period=p):
        street.rollUp(p, sender=operators[0])
    assert street.getRollup(p) == before


def test_nested_grid_sees_only_the_aggregate(project, admin, registry, ledger, world, street, operators, chain):
    district = deploy_grid(project, admin, registry, ledger, DISTRICT, UPSTREAM_BOUNDARY, UPSTREAM_BOUNDARY, 0)
    district.addGroup(DISTRICT_HOMES, sender=admin)
    district.addGrid(street, sender=admin)
    start_from_members(world, chain, ledger, district)
    p = world.period
    settle_street(world, p, [(3501, 0)])  # street draws 3501 from the district
    settle_group(world, DISTRICT_HOMES, [(1000, 4501)], p, "h")  # homes export 4501, import 1000
    settle_group(world, UPSTREAM_BOUNDARY, [(0, 0)], p, "u")
    with ape.reverts(district.MemberNotFinal, period=p, memberId=STREET):
        district.rollUp(p, sender=operators[0])
    street.rollUp(p, sender=operators[0])
    district.rollUp(p, sender=operators[0])
    r = district.getRollup(p)
    assert (r.injected, r.withdrawn, r.imbalance, r.localAllocated) == (4501, 4501, 0, 4501)
    assert district.memberFlow(p, STREET).withdrawn == 3501 and district.memberFlow(p, STREET).injected == 0
    # the street's own members are invisible to the district
    assert district.memberFlow(p, CONSUMERS).withdrawn == 0
    assert district.origin(p, STREET, DISTRICT_HOMES) == 3501
    assert district.origin(p, DISTRICT_HOMES, DISTRICT_HOMES) == 1000


def test_membership_rules(project, admin, registry, ledger, street):
    with ape.reverts(street.InvalidMember, why="duplicate"):
        street.addGroup(CONSUMERS, sender=admin)
    with ape.reverts(street.InvalidMember, why="group"):
        street.addGroup(BOUNDARY, sender=admin)
    with ape.reverts(street.InvalidMember, why="grid"):
        street.addGrid(street, sender=admin)
    island = deploy_grid(project, admin, registry, ledger, ref.group_id("grid:island"), b"\0" * 32, MIXED, 0)
    with ape.reverts(street.InvalidMember, why="grid without boundary"):
        street.addGrid(island, sender=admin)
    with ape.reverts(island.NoMembers):
        island.rollUp(1, sender=registry.operators()[0])
    with ape.reverts(street.InvalidConfig, what="lossBps"):
        street.setLossBps(10_001, sender=admin)
    tx = street.setLossBps(100, sender=admin)
    assert street.lossBps() == 100 and tx.events[0].lossBps == 100
    for i in range(street.MAX_MEMBERS() - 3):
        street.addGroup(ref.group_id(f"filler{i}"), sender=admin)
    with ape.reverts(street.TooManyMembers):
        street.addGroup(ref.group_id("one-too-many"), sender=admin)


def test_unauthorized_callers(street, stranger, operators, registry, world):
    admin_role = b"\0" * 32
    op_role = registry.SETTLEMENT_OPERATOR_ROLE()
    for fn, args in [(street.addGroup, (ref.group_id("g"),)), (street.addGrid, (street,)),
                     (street.setLossBps, (1,))]:
        for caller in (stranger, operators[0]):  # an operator is no admin
            with ape.reverts(street.AccessControlUnauthorizedAccount, account=caller.address, neededRole=admin_role):
                fn(*args, sender=caller)
    with ape.reverts(street.AccessControlUnauthorizedAccount, account=stranger.address, neededRole=op_role):
        street.rollUp(world.period, sender=stranger)


def test_membership_cycles_refused(project, admin, registry, ledger, street):
    """Issue 11 item 7: a grid cannot contain itself, directly or through member grids."""
    district = deploy_grid(project, admin, registry, ledger, DISTRICT, UPSTREAM_BOUNDARY, UPSTREAM_BOUNDARY, 0)
    region = deploy_grid(project, admin, registry, ledger, ref.group_id("grid:region"),
                          ref.group_id("grid-test:region-boundary"), MIXED, 0)
    district.addGrid(street, sender=admin)
    region.addGrid(district, sender=admin)
    with ape.reverts(street.InvalidMember, why="cycle"):
        street.addGrid(district, sender=admin)
    with ape.reverts(street.InvalidMember, why="cycle"):
        street.addGrid(region, sender=admin)
    assert [m.id for m in street.members()] == [CONSUMERS, PRODUCERS, MIXED]


def test_loss_allowance_change_applies_from_the_next_period(world, chain, street, admin, operators, ledger):
    """Issue 11 item 7: setLossBps cannot change the losses of a closed period not rolled up yet."""
    p = world.period
    settle_street(world, p, [(3700, 0)])  # surplus 199, within 5 %
    tx = street.setLossBps(0, sender=admin)
    now = chain.pending_timestamp // ledger.periodSeconds()
    assert tx.events[0].fromPeriod >= now
    assert street.lossBpsAt(p) == 500 and street.lossBpsAt(tx.events[0].fromPeriod) == 0
    street.rollUp(p, sender=operators[0])
    r = street.getRollup(p)
    assert (r.losses, r.imbalance) == (199, 0)


def test_member_removal_applies_from_the_next_period(world, chain, street, admin, operators, ledger, stranger):
    """Issue 11 item 5: a member can be removed, from the period after the current one on."""
    p = world.period
    settle_street(world, p, [(3700, 0)])
    with ape.reverts(street.AccessControlUnauthorizedAccount):
        street.removeMember(MIXED, sender=stranger)
    tx = street.removeMember(MIXED, sender=admin)
    gone = tx.events[0].fromPeriod
    assert gone == chain.pending_timestamp // ledger.periodSeconds() + 1 and street.removedFrom(MIXED) == gone
    with ape.reverts(street.InvalidMember, why="not a member"):
        street.removeMember(MIXED, sender=admin)
    street.rollUp(p, sender=operators[0])  # a closed period keeps the member
    assert street.memberFlow(p, MIXED).injected == 500
    # the first period without it: rolls up with no batch of MIXED
    chain.pending_timestamp = (gone + 1) * ledger.periodSeconds() + 1
    settle_group(world, CONSUMERS, [(3000, 0)], gone, "c")
    settle_group(world, PRODUCERS, [(0, 2000)], gone, "p")
    settle_group(world, BOUNDARY, [(1000, 0)], gone, "b")
    tx = street.rollUp(gone, sender=operators[0])
    assert MIXED not in [e.memberId for e in tx.events if e.event_name == "MemberFlowRecorded"]
    r = street.getRollup(gone)
    assert (r.injected, r.withdrawn, r.fromUpstream) == (2000, 3000, 1000)


def test_a_period_the_chain_skipped_rolls_up_as_zero(world, street, operators):
    """Issue 11 item 5: a member group with no batch in a period its chain finalized past
    (nothing to settle, or a batch rejected and not replaced) does not block the grid."""
    p = world.period
    settle_street(world, p, [(3700, 0)])
    for g, flows in ((CONSUMERS, [(3000, 0)]), (PRODUCERS, [(0, 2000)]), (BOUNDARY, [(1000, 0)])):
        settle_group(world, g, flows, p + 1, "n")
    with ape.reverts(street.MemberNotFinal, period=p + 1, memberId=MIXED):  # MIXED has no batch at p + 1 yet
        street.rollUp(p + 1, sender=operators[0])
    settle_group(world, MIXED, [(10, 0)], p + 2, "x2")  # its chain moves on to p + 2
    street.rollUp(p + 1, sender=operators[0])
    assert street.memberFlow(p + 1, MIXED).injected == 0 and street.getRollup(p + 1).withdrawn == 3000


def test_membership_applies_from_the_next_period_only(project, admin, registry, ledger, world, chain, operators,
                                                      stranger):
    """An admin adding a group now cannot change a closed period not rolled up yet: the group
    counts from the period after the current one (as removeMember and setLossBps)."""
    late = ref.group_id("grid-test:late")
    g = deploy_grid(project, admin, registry, ledger, ref.group_id("grid:retro"), BOUNDARY, BOUNDARY, 0)
    g.addGroup(CONSUMERS, sender=admin)
    start_from_members(world, chain, ledger, g)
    closed = world.period
    settle_group(world, CONSUMERS, [(3000, 0)], closed, "r")
    settle_group(world, BOUNDARY, [(3000, 0)], closed, "rb")
    settle_group(world, late, [(0, 999)], closed, "rl")
    with ape.reverts(g.AccessControlUnauthorizedAccount):
        g.addGroup(late, sender=stranger)
    tx = g.addGroup(late, sender=admin)  # the retroactive attempt: `closed` is closed, not rolled up
    now = chain.pending_timestamp // ledger.periodSeconds()
    assert tx.events[0].fromPeriod == g.addedFrom(late) > now > closed
    tx = g.rollUp(closed, sender=operators[0])
    assert late not in [e.memberId for e in tx.events if e.event_name == "MemberFlowRecorded"]
    r = g.getRollup(closed)
    assert (r.injected, r.withdrawn, r.fromUpstream, r.imbalance) == (0, 3000, 3000, 0)  # not the late 999


def test_a_group_under_two_parents_is_refused(project, admin, registry, ledger, stranger):
    """A group (or grid) belongs to one grid: a second parent would count it twice in a cascade."""
    shared = ref.group_id("grid-test:shared")
    a = deploy_grid(project, admin, registry, ledger, ref.group_id("grid:a"), BOUNDARY, BOUNDARY, 0)
    b = deploy_grid(project, admin, registry, ledger, ref.group_id("grid:b"), UPSTREAM_BOUNDARY, UPSTREAM_BOUNDARY, 0)
    top = deploy_grid(project, admin, registry, ledger, ref.group_id("grid:top"),
                      ref.group_id("grid-test:top-boundary"), MIXED, 0)
    a.addGroup(shared, sender=admin)
    assert registry.parentGrid(shared) == a.address
    with ape.reverts(b.MemberOfAnotherGrid, memberId=shared, parent=a.address):
        b.addGroup(shared, sender=admin)
    top.addGrid(a, sender=admin)
    with ape.reverts(b.MemberOfAnotherGrid, memberId=a.gridId(), parent=top.address):
        b.addGrid(a, sender=admin)  # a grid under two parents
    # the index is the grids' own: nobody else claims or releases a member there
    for caller in (stranger, admin):
        with ape.reverts(registry.AccessControlUnauthorizedAccount):
            registry.claimParent(ref.group_id("grid-test:squat"), sender=caller)
    with ape.reverts(registry.MemberOfAnotherGrid):
        registry.releaseParent(shared, sender=stranger)
    ungoverned = admin.deploy(project.Grid, registry, ledger, ref.group_id("grid:rogue"), BOUNDARY, BOUNDARY, 0)
    with ape.reverts(ungoverned.AccessControlUnauthorizedAccount, neededRole=registry.GRID_ROLE()):
        ungoverned.addGroup(ref.group_id("grid-test:rogue"), sender=admin)  # a grid without GRID_ROLE
    a.removeMember(shared, sender=admin)  # released: from a's next period on, b may count it
    tx = b.addGroup(shared, sender=admin)
    assert registry.parentGrid(shared) == b.address and tx.events[0].fromPeriod >= a.removedFrom(shared)
