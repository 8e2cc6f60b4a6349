"""A metering point's life and the operator set, as their operators change them on chain: a
meter decommissioned, its key rotated, exchanged for a new meter (the meter operator's role);
operators joining and leaving as one new operator epoch (the admin's). Each change is checked
against the chain before it is sent, so a refusal names the registry's error and nothing is sent."""
from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.exceptions import ContractLogicError

from node.chain import OperatorSet, describe_revert
from rust_core.wire import meter_label_id
from scripts._deployment import Deployment, SpecError, Transactor, contract_at


class ChangeRefused(RuntimeError):
    """The registry refused the change (its error named); nothing was sent."""


def meter_ref(text: str) -> bytes:
    """A meter given as `scheme:identity` (as in the CSV) or as its 0x id."""
    if text.startswith("0x") and len(text) == 66:
        return bytes.fromhex(text[2:])
    try:
        return meter_label_id(text)
    except ValueError as e:
        raise SpecError(str(e)) from None


def address(text: str, what: str) -> str:
    try:
        return Web3.to_checksum_address(text)
    except ValueError:
        raise SpecError(f"{what} {text!r} is not an address") from None


def _send(sender: Transactor, dep: Deployment, function: str, *args: Any) -> None:
    registry = contract_at(sender.web3, "MeterRegistry", dep.registry)
    try:
        getattr(registry.functions, function)(*args).estimate_gas({"from": sender.address})
    except ContractLogicError as e:
        raise ChangeRefused(f"the registry refused {function}: {describe_revert(sender.web3, e, registry.abi)}"
                            ) from None
    sender.transact("MeterRegistry", dep.registry, function, *args)


def decommission(sender: Transactor, dep: Deployment, meter: bytes, last_period: int) -> None:
    """The meter settles up to and including `last_period` (not before the current period)."""
    _send(sender, dep, "decommission", meter, last_period)


def rotate_key(sender: Transactor, dep: Deployment, meter: bytes, key: str, from_period: int) -> None:
    """Readings of `from_period` on (after the current period) are signed by `key`."""
    _send(sender, dep, "rotateKey", meter, address(key, "key"), from_period)


def exchange(sender: Transactor, dep: Deployment, old: bytes, new: bytes, key: str, period: int,
             baseline_import_mwh: int = 0, baseline_export_mwh: int = 0) -> None:
    """The point moves from `old` (its final reading in `period`) to `new` (from `period`, counting
    from its baseline registers, zero for a new meter)."""
    _send(sender, dep, "exchangeMeter", old, new, address(key, "key"), period, baseline_import_mwh,
          baseline_export_mwh)


def change_operators(admin: Transactor, dep: Deployment, joining: list[str], leaving: list[str],
                     quorum: int) -> OperatorSet:
    """Operators join and leave and the quorum is set, as one new operator epoch."""
    _send(admin, dep, "changeOperators", [address(a, "joining operator") for a in joining],
          [address(a, "leaving operator") for a in leaving], quorum)
    return operator_epoch(admin.web3, dep)


def operator_epoch(w3: Web3, dep: Deployment) -> OperatorSet:
    epoch, members, k = contract_at(w3, "MeterRegistry", dep.registry).functions.operatorSet().call()
    return OperatorSet(epoch, sorted(bytes.fromhex(a[2:]) for a in members), k)
