"""What /healthz reports, and whether the node may take readings: the chain reachable and the
deployment present (code at the ledger, the chain id and domain separator as configured), the
node's clock against the chain's, the periods whose own batch waits for a quorum, and how often
this node's root was the one that became final (its co-signing rate).

The settlement loop probes the chain once per tick; the endpoint only reads the last probe, so
a health check never waits on the chain and stays fast while the node is busy."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from web3 import Web3

import rust_core
from node.archive import Archive
from node.chain import Chain
from node.metrics import NodeMetrics

log = logging.getLogger(__name__)

COSIGNING_WINDOW_PERIODS = 96      # the co-signing rate is over the final batches of this many periods


@dataclass
class Health:
    """The body of /healthz: 200 when `ok`, 503 with the reasons when degraded."""

    ok: bool
    reasons: list[str]
    ready: bool                           # takes readings (chain reachable, deployment present)
    chain: dict = field(default_factory=dict)
    clock_offset_s: float | None = None   # node clock minus the chain's time (pending block)
    periods_waiting_quorum: list[dict] = field(default_factory=list)
    cosigning: dict = field(default_factory=dict)
    last_probe_age_s: float | None = None


class HealthCheck:
    def __init__(self, chain: Chain, archive: Archive, metrics: NodeMetrics, clock: Callable[[], float], *,
                 chain_id: int | None, max_clock_offset_s: float, stale_after_s: float) -> None:
        self.chain = chain
        self.archive = archive
        self.metrics = metrics
        self.clock = clock
        self.chain_id = chain_id
        self.max_offset = max_clock_offset_s
        self.stale_after = stale_after_s
        self._lock = threading.Lock()
        self._not_ready: str | None = "not probed yet"
        self._chain: dict = {}
        self._offset: float | None = None
        self._probed_at: float | None = None

    @property
    def not_ready(self) -> str | None:
        """Why the node takes no readings now, or None."""
        return self._not_ready

    def probe(self, domain: bytes) -> bool:
        """Asks the chain; True when it is reachable and the deployment is the configured one."""
        w3 = self.chain.w3
        info: dict = {"reachable": False}
        offset = None
        why: str | None = None
        try:
            chain_id = w3.eth.chain_id
            info.update(reachable=True, chain_id=chain_id)
            ledger = self.chain.ledger.address
            info["ledger_code"] = bool(w3.eth.get_code(ledger))
            info["registry_code"] = bool(w3.eth.get_code(self.chain.registry.address))
            pending = w3.eth.get_block("pending")["timestamp"]
            offset = self.clock() - pending
            if self.chain_id is None:
                self.chain_id = chain_id
            if chain_id != self.chain_id:
                why = f"chain id {chain_id}, configured {self.chain_id}"
            elif not info["ledger_code"] or not info["registry_code"]:
                why = f"no contract code at the ledger {ledger} or the registry (chain reset?)"
            elif rust_core.domain_separator(chain_id, bytes.fromhex(ledger[2:])) != domain:
                why = "the ledger's domain separator changed (another deployment?)"
        except Exception as e:  # any transport or node error: unreachable
            why = f"chain unreachable: {type(e).__name__}: {str(e)[:200]}"
        with self._lock:
            if why != self._not_ready:
                if why:
                    log.error("not ready: %s", why)
                else:
                    log.info("ready: chain %s, ledger %s", info.get("chain_id"), Web3.to_checksum_address(
                        self.chain.ledger.address))
            self._not_ready, self._chain, self._offset, self._probed_at = why, info, offset, self.clock()
        if offset is not None:
            self.metrics.clock_offset.set(offset)
        return why is None

    def report(self, waiting: dict[tuple[int, bytes], float]) -> Health:
        now = self.clock()
        with self._lock:
            not_ready, chain, offset, probed_at = self._not_ready, dict(self._chain), self._offset, self._probed_at
        reasons = [not_ready] if not_ready else []
        age = None if probed_at is None else now - probed_at
        if age is not None and age > self.stale_after:
            reasons.append(f"settlement loop stalled: last chain probe {age:.0f} s ago")
        if offset is not None and abs(offset) > self.max_offset:
            reasons.append(f"clock offset {offset:+.1f} s against the chain exceeds {self.max_offset:g} s")
        period_s = self.chain.period_seconds
        stuck = [{"period": p, "group": "0x" + g.hex(), "waiting_s": round(now - since, 1)}
                 for (p, g), since in sorted(dict(waiting).items())]
        late = [w for w in stuck if w["waiting_s"] > period_s]
        if late:
            reasons.append(f"{len(late)} period(s) waiting for a quorum longer than a period, oldest "
                           f"{late[0]['period']}")
        self.metrics.periods_waiting_quorum.set(len(stuck))
        since = int(now // period_s) - COSIGNING_WINDOW_PERIODS
        final = self.archive.final_batches_since(since)
        own = sum(1 for b in final if b.own)
        rate = own / len(final) if final else None
        if rate is not None:
            self.metrics.cosigning_rate.set(rate)
        self.metrics.healthy.set(0 if reasons else 1)
        return Health(ok=not reasons, reasons=reasons, ready=not_ready is None, chain=chain,
                      clock_offset_s=None if offset is None else round(offset, 3), periods_waiting_quorum=stuck,
                      cosigning={"final_periods": len(final), "own_root": own, "rate": rate},
                      last_probe_age_s=None if age is None else round(age, 3))
