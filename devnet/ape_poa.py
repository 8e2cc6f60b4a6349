"""ape 0.8.51/0.8.52 miss proof-of-authority chains such as Clique: `has_poa_history` reads a
block through web3's formatters, which refuse the 97-byte extraData with a ValueError the
property does not expect, so the PoA middleware never goes in and every block read fails. This
replaces the property with one that reads the raw block. Imported by scripts/__init__.py, so
every `ape run` script (deploy, register, audit, challenge) works on the Clique network."""
from __future__ import annotations

from functools import cached_property

from ape_ethereum.provider import EthereumNodeProvider
from web3.middleware.validation import MAX_EXTRADATA_LENGTH


def _has_poa_history(self) -> bool:
    for block in ("earliest", "latest"):
        try:
            raw = self.web3.provider.make_request("eth_getBlockByNumber", [block, False]).get("result") or {}
        except Exception:  # noqa: BLE001 - a light or odd node: try the other block, as ape does
            continue
        if len(bytes.fromhex(raw.get("extraData", "0x")[2:])) > MAX_EXTRADATA_LENGTH:
            return True
    return False


def install() -> None:
    if getattr(EthereumNodeProvider.has_poa_history, "func", None) is not _has_poa_history:
        prop = cached_property(_has_poa_history)
        prop.__set_name__(EthereumNodeProvider, "has_poa_history")
        EthereumNodeProvider.has_poa_history = prop
