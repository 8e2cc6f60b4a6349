"""HTTP between nodes: fetch a peer's signed readings of a period (reconciliation before a batch
is built; skipped for a peer whose readings digest equals this node's), a peer's signature over
a batch header, and a peer's leaves of a committed batch (for fraud checks and for adopting a
final batch this node did not build). The bodies are rust_core.wire's ReadingsDigest,
ReadingsPage, SignatureAnswer and LeavesAnswer."""
from __future__ import annotations

import logging

import httpx
import pydantic

import rust_core
from rust_core.wire import BatchHeader, Leaf, LeavesAnswer, ReadingsDigest, ReadingsPage, SignatureAnswer, SignedReading

log = logging.getLogger(__name__)

READINGS_PAGE_MAX = 2000          # readings per page of GET /v1/readings/{period}/{group}
READINGS_PAGES_MAX = 200          # pages fetched from one peer for one period (400,000 readings)


def batch_path(period: int, group_id: bytes) -> str:
    return f"/v1/batches/{period}/0x{group_id.hex()}"


def fetch_leaves(client: httpx.Client, url: str, period: int, group_id: bytes, root: bytes) -> list[Leaf] | None:
    """The leaves a node serves for the batch with that root; None if it has none (404).
    Raises httpx.HTTPError or pydantic.ValidationError for an unreachable node or a bad body."""
    r = client.get(url + batch_path(period, group_id) + "/leaves", params={"root": "0x" + root.hex()})
    if r.status_code != 200:
        return None
    return [leaf.value() for leaf in LeavesAnswer.model_validate_json(r.content).leaves]


def readings_path(period: int, group_id: bytes) -> str:
    return f"/v1/readings/{period}/0x{group_id.hex()}"


def fetch_readings_digest(client: httpx.Client, url: str, period: int, group_id: bytes) -> bytes:
    """The digest of the readings a node archived for the period and group (ReadingsDigest).
    Raises httpx.HTTPError or pydantic.ValidationError for an unreachable node or a bad body."""
    r = client.get(url + readings_path(period, group_id) + "/digest")
    r.raise_for_status()
    return ReadingsDigest.model_validate_json(r.content).digest


def fetch_readings(client: httpx.Client, url: str, period: int, group_id: bytes) -> list[SignedReading]:
    """Every signed reading a node archived for the period and group, page by page. Raises
    httpx.HTTPError or pydantic.ValidationError for an unreachable node or a bad body."""
    out: list[SignedReading] = []
    after: str | None = None
    for _ in range(READINGS_PAGES_MAX):
        params = {"limit": READINGS_PAGE_MAX} | ({"after": after} if after else {})
        r = client.get(url + readings_path(period, group_id), params=params)
        r.raise_for_status()
        page = ReadingsPage.model_validate_json(r.content)
        if len(page.readings) > READINGS_PAGE_MAX:
            raise httpx.DecodingError(f"peer {url} sent a page of {len(page.readings)} readings "
                                      f"(at most {READINGS_PAGE_MAX} asked)")
        out.extend(page.readings)
        after = page.next_after
        if after is None:
            break
    return out


class Peers:
    def __init__(self, urls: tuple[str, ...], timeout_s: float = 3.0) -> None:
        self.urls = urls
        self._client = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def readings(self, period: int, group_id: bytes, urls: tuple[str, ...] | None = None,
                 own_digest: bytes | None = None) -> dict[str, list[SignedReading] | None]:
        """{peer url: its signed readings of the period, or None if it could not be read}. A peer
        whose readings digest equals `own_digest` (this node's) holds none this node lacks: [] for
        it, without fetching its pages."""
        out: dict[str, list[SignedReading] | None] = {}
        for url in self.urls if urls is None else urls:
            if own_digest is not None:
                try:
                    if fetch_readings_digest(self._client, url, period, group_id) == own_digest:
                        out[url] = []
                        continue
                except (httpx.HTTPError, pydantic.ValidationError) as e:  # then the pages tell
                    log.info("peer %s: no readings digest for period %d (%s)", url, period, e)
            try:
                out[url] = fetch_readings(self._client, url, period, group_id)
            except (httpx.HTTPError, pydantic.ValidationError) as e:
                log.info("peer %s: no readings for period %d (%s)", url, period, e)
                out[url] = None
        return out

    def signatures(self, header: BatchHeader, digest: bytes, operators: set[bytes]
                   ) -> tuple[dict[bytes, bytes], dict[str, bytes]]:
        """({signer: signature} from every reachable peer that built the same header, {url: root}
        of the peers that built another header)."""
        out = {}
        differ: dict[str, bytes] = {}
        for url in self.urls:
            try:
                r = self._client.get(url + batch_path(header.period, header.group_id) + "/signature",
                                     params={"epoch": header.epoch})
                if r.status_code != 200:
                    continue
                answer = SignatureAnswer.model_validate_json(r.content)
                if answer.header.value().content() == header.content() and answer.header.epoch != header.epoch:
                    continue  # a peer that does not sign under the epoch asked for: nothing that counts
                if answer.header.value() != header:
                    log.info("peer %s built another header for period %d: root 0x%s", url, header.period,
                             answer.header.root.hex())
                    differ[url] = answer.header.root
                    continue
                signer = rust_core.recover_signer(digest, answer.signature)
            except (httpx.HTTPError, pydantic.ValidationError, rust_core.CoreError) as e:
                log.info("peer %s: no signature (%s)", url, e)
                continue
            if signer in operators:
                out[signer] = answer.signature
        return out, differ

    def leaves(self, period: int, group_id: bytes, root: bytes) -> list[Leaf] | None:
        """The leaves of the batch with that root from the first peer that has them."""
        for url in self.urls:
            try:
                leaves = fetch_leaves(self._client, url, period, group_id, root)
            except (httpx.HTTPError, pydantic.ValidationError) as e:
                log.info("peer %s: no leaves for period %d (%s)", url, period, e)
                continue
            if leaves is not None:
                return leaves
        return None
