"""HTTP between nodes: fetch a peer's signature over a batch header, and a peer's leaves of a
committed batch (for fraud checks and for adopting a final batch this node did not build)."""
from __future__ import annotations

import logging

import httpx
import rust_core

log = logging.getLogger(__name__)


def header_json(h: tuple) -> dict:
    return {"period": h[0], "group_id": "0x" + h[1].hex(), "root": "0x" + h[2].hex(),
            "total_import_mwh": h[3], "total_export_mwh": h[4], "count": h[5]}


def header_from_json(d: dict) -> tuple:
    return (int(d["period"]), bytes.fromhex(d["group_id"][2:]), bytes.fromhex(d["root"][2:]),
            int(d["total_import_mwh"]), int(d["total_export_mwh"]), int(d["count"]))


def leaf_json(leaf: tuple) -> list:
    return ["0x" + leaf[0].hex(), *leaf[1:8], "0x" + leaf[8].hex()]


def leaf_from_json(x: list) -> tuple:
    return (bytes.fromhex(x[0][2:]), *(int(v) for v in x[1:8]), bytes.fromhex(x[8][2:]))


class Peers:
    def __init__(self, urls: tuple[str, ...], timeout_s: float = 3.0) -> None:
        self.urls = urls
        self._client = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def signatures(self, header: tuple, digest: bytes, operators: set[bytes]) -> dict[bytes, bytes]:
        """{signer: signature} from every reachable peer that built the same header."""
        out = {}
        for url in self.urls:
            try:
                r = self._client.get(f"{url}/v1/batches/{header[0]}/0x{header[1].hex()}/signature")
                if r.status_code != 200:
                    continue
                body = r.json()
                sig = bytes.fromhex(body["signature"][2:])
                if header_from_json(body["header"]) != header:
                    log.warning("peer %s signed another header for period %d: root %s", url, header[0],
                                body["header"]["root"])
                    continue
                signer = rust_core.recover_signer(digest, sig)
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
                log.info("peer %s: no signature (%s)", url, e)
                continue
            if signer in operators:
                out[signer] = sig
        return out

    def leaves(self, period: int, group_id: bytes, root: bytes) -> list[tuple] | None:
        """The leaves of the batch with that root from the first peer that has them."""
        for url in self.urls:
            try:
                r = self._client.get(f"{url}/v1/batches/{period}/0x{group_id.hex()}/leaves", params={"root": "0x" + root.hex()})
                if r.status_code == 200:
                    return [leaf_from_json(x) for x in r.json()["leaves"]]
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
                log.info("peer %s: no leaves for period %d (%s)", url, period, e)
        return None
