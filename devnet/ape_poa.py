"""ape 0.8.51/0.8.52 miss proof-of-authority chains such as Clique: `has_poa_history` reads a
block through web3's formatters, which refuse the 97-byte extraData with a ValueError the
property does not expect, so the PoA middleware never goes in and every block read fails. This
replaces the property with one that reads the raw block. Their node provider also builds its
web3 without web3's AttributeDict middleware, so logs read through it (the audit's) are plain
dicts without `.args`: it is added after connecting. Imported by scripts/__init__.py, so every
`ape run` script (deploy, register, audit, challenge, demo) works on the Clique network."""
from __future__ import annotations

from functools import cached_property

from ape_ethereum.provider import EthereumNodeProvider
from web3.middleware import AttributeDictMiddleware
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


_ape_complete_connect = EthereumNodeProvider._complete_connect


def _complete_connect(self) -> None:
    _ape_complete_connect(self)
    if AttributeDictMiddleware not in self.web3.middleware_onion:
        self.web3.middleware_onion.add(AttributeDictMiddleware)


def install() -> None:
    if getattr(EthereumNodeProvider.has_poa_history, "func", None) is not _has_poa_history:
        prop = cached_property(_has_poa_history)
        prop.__set_name__(EthereumNodeProvider, "has_poa_history")
        EthereumNodeProvider.has_poa_history = prop  # type: ignore[method-assign]
        EthereumNodeProvider._complete_connect = _complete_connect  # type: ignore[method-assign]
