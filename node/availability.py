"""Data availability (issue 11 item 4) from the node's side: it answers a challenge against a
batch whose leaves it holds by revealing them on chain in chunks (any honest co-signer does, so
withholding needs every co-signer), and it challenges a pending batch whose leaves no peer
serves before its window ends, then rejects it once the response time has passed unrevealed.

The ledger checks every revealed leaf against the committed root itself (contracts/README.md,
"Data availability"), so the node reveals only leaves that rebuild that root."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from eth_abi import decode, encode
from eth_utils import keccak

import rust_core
from node.archive import Archive
from node.chain import STATUS_PENDING, Chain, ChainError
from node.checkpoint import ScanCheckpoint
from node.peers import Peers
from rust_core.wire import Leaf, SumNode

log = logging.getLogger(__name__)

# Leaves per reveal transaction: 256 leaves are about 90 KB of calldata, under geth's 128 KB
# transaction pool limit, and about 2 M gas.
REVEAL_CHUNK = 256
# One Leaf as a revealLeaves chunk carries it in calldata: abi.encode(Leaf), 11 words.
LEAF_ABI = ["bytes32", "uint64", "uint64", "uint64", "uint64", "uint64", "uint64", "uint64", "bytes32", "bytes32",
            "uint8"]
LEAF_BYTES = 352


def decode_revealed(raw: bytes) -> list[Leaf]:
    """Leaves from consecutive 352-byte Leaf encodings (a revealed chunk's calldata)."""
    if len(raw) % LEAF_BYTES:
        raise ValueError(f"revealed leaves: {len(raw)} bytes is not a multiple of {LEAF_BYTES}")
    out = []
    for at in range(0, len(raw), LEAF_BYTES):
        *fields, r, s, v = decode(LEAF_ABI, raw[at:at + LEAF_BYTES])
        out.append(Leaf(*fields, r + s + bytes([v])))
    return out


def revealed_leaves(ledger, tx_hash: bytes | str, first_index: int, count: int, chunk_hash: bytes) -> list[Leaf]:
    """The leaves of one LeavesRevealed log, read from its transaction: the log carries only
    (firstIndex, count, chunkHash), the leaves are the `leaves` argument of the revealLeaves call
    (`ledger`: a web3 contract of the PeriodLedger). Checked against the log's chunkHash
    (keccak256 of the consecutive 352-byte encodings). Raises ValueError when the transaction is
    not a direct revealLeaves call to the ledger with that chunk (a reveal through another
    contract would need a call trace)."""
    tx = ledger.w3.eth.get_transaction(tx_hash)
    name = tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()
    if (tx.get("to") or "").lower() != ledger.address.lower():
        raise ValueError(f"reveal tx {name} is not a call to the ledger")
    fn, args = ledger.decode_function_input(tx["input"])
    if fn.fn_name != "revealLeaves" or args["firstIndex"] != first_index or len(args["leaves"]) != count:
        raise ValueError(f"reveal tx {name} is not this revealLeaves chunk")
    raw = b"".join(encode(LEAF_ABI, list(lf.values()) if isinstance(lf, dict) else list(lf)) for lf in args["leaves"])
    if keccak(raw) != bytes(chunk_hash):
        raise ValueError(f"reveal tx {name}: chunk hash mismatch")
    return decode_revealed(raw)


@dataclass
class _Pending:
    """A pending batch as this node follows it."""

    root: bytes
    submitted_at: int
    leaves: list[Leaf] | None = None  # once obtained (and rebuilding the root)
    next_try: float = 0.0             # when to ask the peers again
    respond_by: int = 0               # 0: not challenged
    answered: bool = False            # revealed (by anyone)
    refused: bool = False             # the ledger refused our leaves (a malformed committed tree)


class Availability:
    """Watched from the node's loop (`tick`). `challenge_after`: the fraction of the challenge
    window after which a batch whose leaves cannot be obtained is challenged (early enough that
    the challenge lands inside the window; the ledger then gives the full response time)."""

    def __init__(self, chain: Chain, archive: Archive, peers: Peers, *, name: str = "node",
                 clock: Callable[[], float] = time.time, challenge_after: float = 0.5,
                 chunk: int = REVEAL_CHUNK, checkpoint: ScanCheckpoint | None = None) -> None:
        self.chain, self.archive, self.peers = chain, archive, peers
        self.name, self.clock = name, clock
        self.challenge_after, self.chunk = challenge_after, chunk
        self._batches: dict[tuple[int, bytes], _Pending] = {}  # pending on chain, until final or rejected
        # scan checkpoint (node.checkpoint.ScanCheckpoint): resumes at the oldest batch still pending
        self._checkpoint = checkpoint or ScanCheckpoint(None)
        self._next_block = self._checkpoint.resume("availability", chain.first_block)
        self._submitted_in: dict[tuple[int, bytes], int] = {}  # pending batch -> block of its BatchSubmitted

    def tick(self) -> None:
        self._scan()
        now = self.clock()
        for (period, group), b in list(self._batches.items()):
            if b.leaves is None and now >= b.next_try:
                b.leaves, b.next_try = self._leaves(period, group, b.root), now + 1.0
            if b.respond_by:
                self._answer(period, group, b, now)
            elif b.leaves is None and now >= b.submitted_at + self.challenge_after * self.chain.challenge_window:
                self._challenge(period, group, b)

    # -- the chain's events ------------------------------------------------------------------
    def _scan(self) -> None:
        head = self.chain.block_number()
        if head < self._next_block:
            return
        events = []
        for name in ("BatchSubmitted", "AvailabilityChallenged", "BatchRevealed", "BatchFinalized", "BatchRejected"):
            for e in getattr(self.chain.ledger.events, name)().get_logs(from_block=self._next_block, to_block=head):
                events.append((e.blockNumber, e.logIndex, name, e.args))
        self._next_block = head + 1
        for block, _, name, a in sorted(events, key=lambda x: (x[0], x[1])):
            key = (a["period"], bytes(a["groupId"]))
            if name == "BatchSubmitted":
                self._submitted_in.setdefault(key, block)
                submitted_at = self.chain.w3.eth.get_block(block)["timestamp"]
                self._batches[key] = _Pending(bytes(a["root"]), submitted_at)
            elif name == "AvailabilityChallenged":
                if key not in self._batches:  # submitted before this node started watching
                    onchain = self.chain.get_batch(*key)
                    self._batches[key] = _Pending(onchain.root, onchain.submitted_at)
                self._batches[key].respond_by = a["respondBy"]
            elif name == "BatchRevealed" and key in self._batches:
                self._batches[key].answered = True
            elif name in ("BatchFinalized", "BatchRejected"):
                self._batches.pop(key, None)
                self._submitted_in.pop(key, None)
        self._checkpoint.save("availability", min(
            (b for k, b in self._submitted_in.items() if k in self._batches), default=self._next_block))

    # -- obtaining leaves --------------------------------------------------------------------
    def _leaves(self, period: int, group: bytes, root: bytes) -> list[Leaf] | None:
        """The committed batch's leaves from our archive or a peer, if they rebuild its root."""
        if self.archive.batch(period, group, root) is not None:
            leaves = self.archive.leaves(period, group, root)
        else:
            leaves = self.peers.leaves(period, group, root)
        if not leaves:
            return None
        committed = self.chain.get_batch(period, group)
        try:
            tree = rust_core.MerkleSumTree(leaves, check_order=False)
        except rust_core.CoreError:
            return None
        if len(leaves) != committed.count or SumNode._make(tree.root) != committed.root_node:
            return None
        return [Leaf._make(lf) for lf in leaves]

    # -- challenging -------------------------------------------------------------------------
    def _challenge(self, period: int, group: bytes, b: _Pending) -> None:
        onchain = self.chain.get_batch(period, group)
        if onchain.status != STATUS_PENDING or onchain.root != b.root or onchain.count == 0:
            del self._batches[(period, group)]
            return
        try:
            res = self.chain.prove("challengeAvailability", period, group)
        except ChainError as e:
            log.warning("%s: challenge of period %d group %s failed: %s", self.name, period, group.hex()[:8], e)
            if "ChallengeWindowClosed" in str(e):
                del self._batches[(period, group)]  # too late (AlreadyChallenged: its event comes next)
            return
        log.warning("%s: period %d group %s: no peer serves the leaves of root 0x%s: challenged (tx %s gas %d)",
                    self.name, period, group.hex()[:8], b.root.hex(), res.tx_hash, res.gas_used)

    # -- answering / timing out ----------------------------------------------------------------
    def _answer(self, period: int, group: bytes, b: _Pending, now: float) -> None:
        if b.answered:
            return
        if now < b.respond_by:
            if b.leaves is not None and not b.refused:
                outcome = self._reveal(period, group, b.leaves)
                b.answered, b.refused = outcome is True, outcome is None
        else:
            try:
                res = self.chain.prove("rejectUnrevealed", period, group)
            except ChainError as e:
                log.info("%s: rejectUnrevealed period %d: %s", self.name, period, e)
                return
            log.warning("%s: period %d group %s: leaves of root 0x%s withheld past the response time: "
                        "rejected (tx %s gas %d)", self.name, period, group.hex()[:8], b.root.hex(), res.tx_hash,
                        res.gas_used)
            del self._batches[(period, group)]

    def _reveal(self, period: int, group: bytes, leaves: list[Leaf]) -> bool | None:
        """Posts every leaf in chunks: True when the batch is revealed (by us or another), None
        when the ledger refuses the leaves themselves (order, width: the fraud proofs show
        those), False to retry."""
        gas = 0
        for first in range(0, len(leaves), self.chunk):
            chunk = [lf.struct() for lf in leaves[first:first + self.chunk]]
            try:
                gas += self.chain.prove("revealLeaves", period, group, first, chunk).gas_used
            except ChainError as e:
                log.info("%s: reveal of period %d at leaf %d: %s", self.name, period, first, e)
                if "AlreadyRevealed" in str(e):
                    return True
                return None if "RevealOutOfOrder" in str(e) or "RevealMalformedLeaf" in str(e) else False
        log.info("%s: period %d group %s: challenged batch revealed, %d leaves in %d chunks, gas %d", self.name,
                 period, group.hex()[:8], len(leaves), -(-len(leaves) // self.chunk), gas)
        return True
