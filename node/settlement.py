"""One settlement node: ingest, periodic close with reconciliation of the inputs among the
peers, k-of-n co-signing, rebuild when the peers still built other roots, submission with
rotation and take-over, finalization, the chain watcher that proves peers' frauds and adopts
final batches this node did not build, and the health it reports. Every step reads its state from the archive and the chain,
so a node killed at any point resumes where it stopped: the ledger refuses a second batch for
the same period and group, and the node checks the chain before every transaction."""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import rust_core
from node.archive import BATCH_BUILT, BATCH_FINAL, BATCH_REJECTED, BATCH_SUPERSEDED, Archive, BatchRecord
from node.availability import Availability
from node.batching import BuiltBatch, build_batch
from node.chain import STATUS_FINAL, STATUS_PENDING, STATUS_REJECTED, Chain, ChainError, OperatorSet
from node.checkpoint import ScanCheckpoint
from node.fraud import FraudProof, find_fraud
from node.health import Health, HealthCheck
from node.ingest import Ingestor, PeriodGate
from node.metrics import NodeMetrics
from node.peers import Peers
from node.registry import RegistryView
from rust_core.wire import BatchHeader, SumNode

log = logging.getLogger(__name__)

# How far back the node looks for periods with readings still to close (a day of 15-minute
# periods); older ones have long been settled by the peers and are adopted from the chain.
LOOKBACK_PERIODS = 96
# How often an own batch rejected without a ban (nothing in its data proven false) is submitted
# again before the node gives it up (a batch that keeps being rejected is not an honest one).
MAX_RESUBMISSIONS = 3
# How often an own batch that is not on chain yet is compared with the peers' headers, and the
# readings reconciled again with each peer that built another one (node config once it is a model).
RECONCILE_RETRY_SECONDS = 2.0


class SettlementNode:
    def __init__(self, chain: Chain, archive: Archive, peers: Peers, *, grace_seconds: float = 2.0,
                 takeover_seconds: float = 3.0, clock_skew_seconds: float = 30.0, poll_seconds: float = 0.5,
                 name: str = "node", grids: tuple[str, ...] = (), reconcile_retry_seconds: float = RECONCILE_RETRY_SECONDS,
                 max_clock_offset_seconds: float | None = None, chain_id: int | None = None,
                 clock: Callable[[], float] = time.time, checkpoint: ScanCheckpoint | None = None) -> None:
        self.chain = chain
        self.archive = archive
        self.peers = peers
        self.name = name
        self.takeover = takeover_seconds
        self.poll = poll_seconds
        self.clock = clock
        self.metrics = NodeMetrics()
        # event scans resume from the node's checkpoint (node.checkpoint.ScanCheckpoint) after a restart
        self.checkpoint = checkpoint or ScanCheckpoint(archive, chain.deployment_key)
        self.registry = RegistryView(chain, self.checkpoint)
        self.gate = PeriodGate(chain.period_seconds, grace_seconds, clock)
        self.domain = chain.domain_separator
        self.ingestor = Ingestor(archive, self.registry, self.domain, self.gate, self.metrics, clock_skew_seconds)
        self._signer = chain.signer
        self._pending: dict[bytes, set[int]] = defaultdict(set)     # chain: group -> pending periods
        self._to_check: dict[tuple[int, bytes], bytes] = {}          # peer batches to check for fraud
        self._to_adopt: dict[tuple[int, bytes], bytes] = {}          # final batches to fetch
        self._next_block = self.checkpoint.resume("ledger", chain.first_block)
        self._opened_in: dict[tuple[int, bytes], int] = {}  # period still open on chain -> block of its event
        self._not_built: set[tuple[int, bytes]] = set()             # closed without an own batch
        self.grids = grids                                            # cascade, innermost first
        self._to_roll: dict[int, float] = {}                         # period -> when it became final
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reconcile_retry = reconcile_retry_seconds
        self._waiting: dict[tuple[int, bytes], float] = {}        # own batch not on chain: since when
        self._compared: dict[tuple[int, bytes], float] = {}       # last comparison with the peers' headers
        self._reconciled: dict[tuple[int, bytes, str], bytes] = {}  # peer root last reconciled against
        self._resubmitted: dict[tuple[int, bytes], int] = {}      # own batch rejected without a ban: times sent again
        self._proven: set[tuple[int, bytes, bytes]] = set()        # proven false, until submitted again
        self.health_check = HealthCheck(chain, archive, self.metrics, clock, chain_id=chain_id,
                                        max_clock_offset_s=max_clock_offset_seconds or max(grace_seconds, 1.0),
                                        stale_after_s=max(30.0, 20 * poll_seconds))
        self.health_check.probe(self.domain)
        for rec in archive.batches_with_status(BATCH_BUILT) + archive.batches_with_status(BATCH_FINAL):
            if rec.own:
                self.gate.close(rec.period, rec.group_id)
        self.registry.refresh()
        self.availability = Availability(chain, archive, peers, name=name, clock=clock, checkpoint=self.checkpoint)

    # -- the loop --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-settlement", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        last_error = ""
        while not self._stop.is_set():
            try:
                self.tick()
                last_error = ""
            except Exception as e:  # the node keeps running; the next tick retries from archive and chain
                error = f"{type(e).__name__}: {e}"
                if error != last_error:  # the traceback once, then one line per tick
                    log.exception("%s: settlement step failed", self.name)
                else:
                    log.warning("%s: settlement step failed again: %s", self.name, error)
                last_error = error
            self._stop.wait(self.poll)

    def health(self) -> Health:
        return self.health_check.report(self._waiting)

    def tick(self) -> None:
        if not self.health_check.probe(self.domain):
            return  # chain unreachable or the deployment gone: the health says why, ingest answers 503
        self.registry.refresh()
        self.watch()
        self.availability.tick()
        self.close_due_periods()
        for rec in self.archive.batches_with_status(BATCH_BUILT):
            if rec.own:
                self.drive(rec)
        self.roll_up_grids()

    # -- closing a period ------------------------------------------------------------------
    def close_due_periods(self) -> None:
        now = self.clock()
        oldest = int(now // self.gate.period_seconds) - LOOKBACK_PERIODS
        for period, group in self.archive.open_periods(after_period=oldest):
            if now < self.gate.closes_at(period) or (period, group) in self._not_built:
                continue
            if self.archive.own_batch(period, group) or self._blocked(period, group):
                continue
            with self.gate.lock:
                self.gate.close(period, group)
            self.reconcile(period, group)
            if self.close_period(period, group) is None:
                self._not_built.add((period, group))
        self.ingestor.forget_stats_before(oldest)

    def reconcile(self, period: int, group: bytes, urls: tuple[str, ...] | None = None) -> int:
        """Fetches the period's signed readings from the peers (all, or those in `urls`) and
        archives those this node lacks, verified like a delivery: a partial delivery heals, and
        every honest node sees each equivocation. Returns how many readings were new."""
        new = 0
        _, own_digest = self.archive.readings_digest(period, group)
        for url, readings in self.peers.readings(period, group, urls, own_digest).items():
            if readings:
                n = self.ingestor.reconcile(readings, period, group)
                if n:
                    log.info("%s: period %d group %s: %d reading(s) from peer %s", self.name, period,
                             group.hex()[:8], n, url)
                new += n
        return new
    def _blocked(self, period: int, group: bytes) -> bool:
        """An earlier batch of the group is unresolved (pending on chain, our own not final yet,
        or a final one not adopted): the registers this period counts from are not known yet."""
        if any(p < period for p in self._pending[group]):
            return True
        if any(p < period for (p, g) in self._to_adopt if g == group):
            return True
        return any(r.group_id == group and r.period < period and r.own
                   for r in self.archive.batches_with_status(BATCH_BUILT))

    def close_period(self, period: int, group: bytes) -> BatchRecord | None:
        if self.chain.last_final_period(group) >= period:
            log.warning("%s: period %d group %s already final on chain; not building", self.name, period, group.hex()[:8])
            return None
        started = time.perf_counter()
        built = build_batch(self.archive, self.registry, period, group)
        if built is None:
            return None
        rec = self._own_record(built)
        self.archive.save_batch(rec, built.leaves)
        self.metrics.batches_built.inc()
        stats = self.ingestor.period_stats.pop(period, {})
        log.info("%s: period %d group %s closed: signed readings accepted %s, duplicates %s, refused %s; batch "
                 "root 0x%s, %d leaves, import %d mWh, export %d mWh, built in %.3f s", self.name, period,
                 group.hex()[:8], stats.get("accepted", 0), stats.get("duplicate", 0),
                 {k[8:]: v for k, v in stats.items() if k.startswith("refused:")} or 0,
                 rec.root.hex(), rec.count, rec.total_import, rec.total_export, time.perf_counter() - started)
        return rec

    @staticmethod
    def _own_record(built: BuiltBatch) -> BatchRecord:
        root, total_import, total_export = built.root
        return BatchRecord(built.period, built.group_id, root, total_import, total_export, len(built.leaves),
                           own=True, status=BATCH_BUILT, tx_hash=None, gas_used=None)

    def sign(self, header: BatchHeader) -> bytes:
        """This node's signature of a header (of its own batch) under the header's epoch. Signed
        when asked, not stored: the operator epoch may change between building and submitting."""
        return self._signer.sign_digest(rust_core.batch_digest(self.domain, header))

    def signed_header(self, period: int, group: bytes, epoch: int) -> tuple[BatchHeader, bytes] | None:
        """The own batch's header under `epoch` and this node's signature of it; None without an
        own batch."""
        rec = self.archive.own_batch(period, group)
        if rec is None:
            return None
        header = rec.header(epoch)
        return header, self.sign(header)

    # -- driving an own batch to final -------------------------------------------------------
    def _rank(self, period: int, operators: list[bytes]) -> int:
        """Submitter rotation: rank 0 submits, rank r takes over after r * takeover_seconds."""
        if self.chain.address not in operators:
            return len(operators)
        i = operators.index(self.chain.address)
        return (i - period) % len(operators)

    def drive(self, rec: BatchRecord) -> None:
        key = (rec.period, rec.group_id)
        onchain = self.chain.get_batch(rec.period, rec.group_id)
        now = self.clock()
        ops = self.chain.operator_set()
        delay = self._rank(rec.period, ops.operators) * self.takeover
        if onchain.status in (STATUS_PENDING, STATUS_FINAL):
            self._waiting.pop(key, None)
        if onchain.status == STATUS_FINAL:
            if onchain.root == rec.root:
                self._mark_final(rec.period, rec.group_id, rec.root)
            else:
                self._to_adopt[key] = onchain.root
            return
        if onchain.status == STATUS_PENDING:
            # another root on chain reached quorum: ours waits for it to be final (adopted, ours
            # superseded) or rejected; later periods wait for the registers it settles
            if onchain.root == rec.root and now >= onchain.submitted_at + self.chain.challenge_window + delay:
                try:
                    res = self.chain.finalize(rec.period, rec.group_id)
                except ChainError as e:
                    log.info("%s: finalize period %d: %s", self.name, rec.period, e)
                    return
                self.metrics.gas_used.labels(tx="finalize").inc(res.gas_used)
                log.info("%s: period %d group %s finalized: tx %s gas %d", self.name, rec.period,
                         rec.group_id.hex()[:8], res.tx_hash, res.gas_used)
                self._mark_final(rec.period, rec.group_id, rec.root)
            return
        if onchain.status == STATUS_REJECTED and onchain.root == rec.root:
            tries = self._resubmitted.get(key, 0)
            if self.chain.header_banned(rec.header(ops.epoch)) or tries >= MAX_RESUBMISSIONS:
                log.error("%s: our own batch for period %d was rejected on chain%s", self.name, rec.period,
                          f" {tries + 1} times" if tries else "")
                self.archive.set_batch_status(rec.period, rec.group_id, rec.root, BATCH_REJECTED)
                self._forget(rec.period, rec.group_id)
                return
            # rejected without a ban: unrevealed (no co-signer answered a challenge in time), or judged
            # against another chain than ours (submitted by others on their own parent): the ledger
            # takes the same header again, so it is signed and submitted like a new one
            if key not in self._waiting:
                self._resubmitted[key] = tries + 1
                log.warning("%s: period %d group %s: own batch 0x%s was rejected without a ban; submitting it "
                            "again", self.name, rec.period, rec.group_id.hex()[:8], rec.root.hex())
        if self.chain.last_final_period(rec.group_id) >= rec.period:
            self._yield(rec, "a later period is already final")
            return
        if now < self.gate.closes_at(rec.period):
            return
        self._waiting.setdefault(key, now)
        submit_due = now >= self.gate.closes_at(rec.period) + delay
        compare_due = now >= self._compared.get(key, 0.0) + self.reconcile_retry
        if not (submit_due or compare_due):
            return
        header = rec.header(ops.epoch)
        sigs, differ = self.peers.signatures(header, rust_core.batch_digest(self.domain, header), set(ops.operators))
        if compare_due:
            self._compared[key] = now
            # reconcile again only with a peer whose root changed since (a peer repeating one
            # other root costs one comparison, not a fetch of the period's readings every time)
            fresh = tuple(url for url, root in differ.items() if self._reconciled.get((*key, url)) != root)
            for url in fresh:
                self._reconciled[(*key, url)] = differ[url]
            if fresh and self.rebuild(rec, fresh) is not None:
                return  # the peers see the new header on their next comparison
        if submit_due:
            self.submit(rec, header, sigs, ops)

    def rebuild(self, rec: BatchRecord, urls: tuple[str, ...]) -> BatchRecord | None:
        """Reconciles the period's readings again with the peers that built another header and,
        when that changes this node's batch, replaces it (the old one retired, the new signed)."""
        self.reconcile(rec.period, rec.group_id, urls)
        built = build_batch(self.archive, self.registry, rec.period, rec.group_id)
        new = self._own_record(built) if built is not None else None
        if new is None or new.header(0) == rec.header(0):
            return None
        self.archive.rebuild_own_batch(rec.root, new, built.leaves)
        self.metrics.batches_rebuilt.inc()
        log.warning("%s: period %d group %s rebuilt from the reconciled readings: root 0x%s (%d leaves) "
                    "replaces 0x%s (%d leaves)", self.name, rec.period, rec.group_id.hex()[:8], new.root.hex(),
                    new.count, rec.root.hex(), rec.count)
        return new

    def _forget(self, period: int, group: bytes) -> None:
        """Drops what the loop tracked for a period that is settled."""
        self._waiting.pop((period, group), None)
        self._compared.pop((period, group), None)
        self._resubmitted.pop((period, group), None)
        for k in [k for k in self._reconciled if k[:2] == (period, group)]:
            del self._reconciled[k]

    def _yield(self, rec: BatchRecord, why: str) -> None:
        self.archive.set_batch_status(rec.period, rec.group_id, rec.root, BATCH_SUPERSEDED)
        self._forget(rec.period, rec.group_id)
        self.metrics.batches_yielded.inc()
        log.warning("%s: period %d group %s: own batch 0x%s yielded: %s", self.name, rec.period,
                    rec.group_id.hex()[:8], rec.root.hex(), why)

    def submit(self, rec: BatchRecord, header: BatchHeader, sigs: dict[bytes, bytes], ops: OperatorSet) -> None:
        """Submits `header` (the batch under the epoch of `ops`) once the quorum of that epoch signed it."""
        if self.chain.address not in ops.operators:
            log.info("%s: period %d: not an operator of epoch %d; the operators submit", self.name, rec.period,
                     ops.epoch)
            return
        sigs = dict(sigs)
        sigs[self.chain.address] = self.sign(header)
        if len(sigs) < ops.quorum:
            log.info("%s: period %d: %d of %d signatures so far (epoch %d)", self.name, rec.period, len(sigs),
                     ops.quorum, ops.epoch)
            return
        ordered = [sigs[a] for a in sorted(sigs)]
        try:
            res = self.chain.submit_batch(header, ordered)
        except ChainError as e:
            log.info("%s: submit period %d: %s", self.name, rec.period, e)
            return
        self.archive.set_batch_status(rec.period, rec.group_id, rec.root, BATCH_BUILT, res.tx_hash, res.gas_used)
        self.metrics.batches_submitted.inc()
        self.metrics.gas_used.labels(tx="submitBatch").inc(res.gas_used)
        self.metrics.close_to_commit.observe(max(0.0, self.clock() - self.gate.closes_at(rec.period)))
        log.info("%s: period %d group %s submitted: root 0x%s, epoch %d, %d signatures (%s), tx %s gas %d",
                 self.name, rec.period, rec.group_id.hex()[:8], rec.root.hex(), ops.epoch, len(ordered),
                 ",".join("0x" + a.hex()[:8] for a in sorted(sigs)), res.tx_hash, res.gas_used)

    def _mark_final(self, period: int, group: bytes, root: bytes) -> None:
        rec = self.archive.batch(period, group, root)
        if rec is None or rec.status == BATCH_FINAL:
            return
        own = self.archive.own_batch(period, group)
        if own is not None and own.root != root and own.status == BATCH_BUILT:
            self._yield(own, f"root 0x{root.hex()} reached quorum and is final")
        self._forget(period, group)
        self.archive.set_batch_status(period, group, root, BATCH_FINAL)
        if rec.own:
            self.metrics.batches_finalized.inc()
        self.metrics.last_final_period.set(period)
        if self.grids:
            self._to_roll.setdefault(period, self.clock())
        log.info("%s: period %d group %s final: root 0x%s", self.name, period, group.hex()[:8], root.hex())

    # -- the grid cascade -------------------------------------------------------------------
    def roll_up_grids(self) -> None:
        """Rolls each final period up the configured grids, innermost first, in the submitter
        rotation. A grid whose other members are not final yet is retried for a few periods."""
        if not self._to_roll:
            return
        operators = self.chain.operator_set().operators
        now = self.clock()
        for period, final_at in sorted(self._to_roll.items()):
            if now < final_at + self._rank(period, operators) * self.takeover:
                continue
            done = True
            for grid in self.grids:
                if self.chain.grid_rolled_up(grid, period):
                    continue
                try:
                    res = self.chain.roll_up(grid, period)
                except ChainError as e:
                    log.info("%s: rollUp of period %d on grid %s: %s", self.name, period, grid, e)
                    done = False
                    break
                self.metrics.gas_used.labels(tx="rollUp").inc(res.gas_used)
                log.info("%s: period %d rolled up on grid %s: tx %s gas %d", self.name, period, grid,
                         res.tx_hash, res.gas_used)
            if done or now > final_at + 10 * self.chain.period_seconds:
                del self._to_roll[period]

    # -- watching the chain ----------------------------------------------------------------
    def watch(self) -> None:
        head = self.chain.block_number()
        if head >= self._next_block:
            for name, args, block in self.chain.ledger_events(self._next_block, head):
                self._on_event(name, args)
                if name == "BatchSubmitted":
                    self._opened_in.setdefault((args["period"], bytes(args["groupId"])), block)
            self._next_block = head + 1
        self._save_checkpoint()
        for key, root in list(self._to_check.items()):
            if self._check_peer_batch(*key, root):
                del self._to_check[key]
        for key, root in list(self._to_adopt.items()):
            if self._adopt(*key, root):
                del self._to_adopt[key]

    def _save_checkpoint(self) -> None:
        """Resume at the oldest event whose business is open (a batch pending, to check or to
        adopt), else after what was read (at most head - confirmations)."""
        open_ = {k for g, ps in self._pending.items() for k in ((p, g) for p in ps)} | set(self._to_check) | set(self._to_adopt)
        for k in [k for k in self._opened_in if k not in open_]:
            del self._opened_in[k]
        self.checkpoint.save("ledger", min((self._opened_in[k] for k in open_ if k in self._opened_in),
                                           default=self._next_block))

    def _on_event(self, name: str, a: dict) -> None:
        period, group, root = a["period"], bytes(a["groupId"]), bytes(a["root"])
        if name == "BatchSubmitted":
            self._pending[group].add(period)
            # a root proven before and submitted again (a rejection against its context bans
            # nothing: FraudProofs) is a new submission, checked and proven again
            self._proven.discard((period, group, root))
            own = self.archive.own_batch(period, group)
            if own is None or own.root != root:
                self._to_check[(period, group)] = root
        elif name == "BatchFinalized":
            self._pending[group].discard(period)
            self._to_check.pop((period, group), None)
            if self.archive.batch(period, group, root):
                self._mark_final(period, group, root)
            else:
                self._to_adopt[(period, group)] = root
        elif name == "BatchRejected":
            self._pending[group].discard(period)
            self._to_check.pop((period, group), None)
            rec = self.archive.batch(period, group, root)
            resubmittable = rec is not None and rec.own and not self.chain.header_banned(rec.header(0))
            if rec and rec.status != BATCH_REJECTED and not resubmittable:
                self.archive.set_batch_status(period, group, root, BATCH_REJECTED)
            log.info("%s: period %d group %s: batch 0x%s rejected (reason %d) by 0x%s", self.name, period,
                     group.hex()[:8], root.hex(), a["reason"], a["prover"][2:].lower())

    def _check_peer_batch(self, period: int, group: bytes, root: bytes) -> bool:
        """True when done with that batch (proven, or found nothing provable)."""
        onchain = self.chain.get_batch(period, group)
        if onchain.status != STATUS_PENDING or onchain.root != root:
            return True
        if (period, group, root) in self._proven:
            return True  # proven; the chain (read at our confirmation depth) has not caught up yet
        own = self.archive.own_batch(period, group)
        if own is None and not self.gate.is_closed(period, group):
            return False  # we may still build ours
        leaves = self.peers.leaves(period, group, root)
        if leaves is None:
            log.warning("%s: period %d: no peer serves the leaves of committed root 0x%s", self.name, period, root.hex())
            return False
        verdict = find_fraud(leaves, onchain, period, group, self.registry, self.archive, self.domain,
                             self.chain.period_seconds)
        if not isinstance(verdict, FraudProof):
            if own is not None:
                log.warning("%s: period %d: committed root 0x%s differs from ours 0x%s, but %s", self.name,
                            period, root.hex(), own.root.hex(), verdict)
            return True
        self._prove(period, group, root, verdict)
        return True

    def _prove(self, period: int, group: bytes, root: bytes, proof: FraudProof) -> None:
        try:
            res = self.chain.prove(proof.function, *proof.args)
        except ChainError as e:
            log.warning("%s: %s against period %d failed: %s", self.name, proof.function, period, e)
            return
        self._proven.add((period, group, root))
        self.archive.record_fraud_proof(period, group, root, proof.function, res.tx_hash)
        self.metrics.fraud_proofs.labels(kind=proof.function).inc()
        self.metrics.gas_used.labels(tx=proof.function).inc(res.gas_used)
        log.warning("%s: period %d group %s: %s (%s) rejected root 0x%s: tx %s gas %d", self.name, period,
                    group.hex()[:8], proof.function, proof.what, root.hex(), res.tx_hash, res.gas_used)

    def _adopt(self, period: int, group: bytes, root: bytes) -> bool:
        if self.archive.batch(period, group, root):
            self._mark_final(period, group, root)
            return True
        onchain = self.chain.get_batch(period, group)
        if onchain.status != STATUS_FINAL or onchain.root != root:
            return True
        leaves = self.peers.leaves(period, group, root)
        if leaves is None:
            return False
        tree = rust_core.MerkleSumTree(leaves)
        if SumNode._make(tree.root) != onchain.root_node:
            log.error("%s: peer leaves for final period %d do not rebuild its root", self.name, period)
            return False
        rec = BatchRecord(period, group, root, onchain.total_import, onchain.total_export, onchain.count,
                          own=False, status=BATCH_BUILT, tx_hash=None, gas_used=None)
        self.archive.save_batch(rec, leaves)
        self._mark_final(period, group, root)
        return True
