"""The oracle's signer agrees byte for byte with eth-account and with the shared vectors."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_support import REPO, key_for

from meter_oracle.reading import meter_id
from meter_oracle.signing import Domain, EthAccountSigner, RustCoreSigner, address_of

VECTORS = json.loads((REPO / "tests" / "vectors" / "encoding.json").read_text())
VDOMAIN = Domain.parse(VECTORS["domain"]["chain_id"], VECTORS["domain"]["verifying_contract"])


def test_shared_vectors():
    core = RustCoreSigner(VDOMAIN)
    for v in VECTORS["readings"]:
        mid = meter_id(v["scheme"], v["identity"])
        assert "0x" + mid.hex() == v["meter_id"]
        reading = (mid, v["period"], v["timestamp"], v["import_mwh"], v["export_mwh"])
        key = bytes.fromhex(v["private_key"][2:])
        assert "0x" + core.sign(reading, key).hex() == v["signature"]


u64 = st.integers(0, 2**64 - 1)


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=32, max_size=32), u64, u64, u64, u64)
def test_rust_core_equals_eth_account(mid, period, timestamp, imp, exp):
    reading = (mid, period, timestamp, imp, exp)
    key = key_for("prop")
    core, eth = RustCoreSigner(VDOMAIN), EthAccountSigner(VDOMAIN)
    sig = core.sign(reading, key)
    assert sig == eth.sign(reading, key)
    assert core.sign_many([reading], [key]) == [sig]
    assert eth.recover(reading, sig) == core.recover(reading, sig) == address_of(key)
