"""rust_core.wire: the wire models round-trip, every field refusal carries its field family's
code, the NamedTuples are the native API's tuples, and the shared concepts are defined once."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

import rust_core
from rust_core import reference as ref
from rust_core.wire import (
    FIELD_CODES,
    BatchHeader,
    BatchHeaderModel,
    Delivery,
    DeliveryAnswer,
    Domain,
    Leaf,
    LeafModel,
    LeavesAnswer,
    Problem,
    Reading,
    RefusalCode,
    Refused,
    Register,
    SignatureAnswer,
    SignedReading,
    SumNode,
    meter_label_id,
    nodes,
    parse_hex32,
    parse_reading,
    wh_to_mwh,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "encoding.json").read_text())
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
DOMAIN = Domain(VECTORS["domain"]["chain_id"], VECTORS["domain"]["verifying_contract"])
SEP = rust_core.domain_separator(DOMAIN.chain_id, DOMAIN.verifying_contract)


def entry(**changes) -> dict:
    reading = Reading(ref.meter_id("dsmr", "E0001"), 1_888_888, 1_888_888 * 900 + 17, 6_825_512, 2_444_000)
    sig = rust_core.sign_digest(rust_core.reading_digest(SEP, reading), KEY)
    good = {"meter_id": "0x" + reading.meter_id.hex(), "period": reading.period, "timestamp": reading.timestamp,
            "import_mwh": reading.import_mwh, "export_mwh": reading.export_mwh, "signature": "0x" + sig.hex(),
            "import_wh": "6825.5129", "export_wh": "2444", "raw_frame": "L0lTSzU=", "protocol": "dsmr"}
    return {**good, **changes}


def test_a_signed_reading_round_trips_and_its_reading_verifies_natively():
    e = entry()
    r = parse_reading(e)
    assert r.to_wire() == e and SignedReading.model_validate_json(r.model_dump_json()) == r
    assert type(r.meter_id) is bytes and r.raw_frame == b"/ISK5" and r.import_wh == Decimal("6825.5129")
    assert isinstance(r.reading, tuple)  # passes to rust_core unchanged
    assert rust_core.verify_readings(SEP, [r.reading], [r.signature], [rust_core.address_of(KEY)]) == []
    assert Delivery.model_validate({"readings": [e]}).model_dump(mode="json") == {"readings": [e]}


HEX64 = "0x" + "ab" * 32


@pytest.mark.parametrize("field, value, code, message", [
    ("meter_id", "0x1234", "malformed_meter_id", "expected 0x followed by 64 hex digits"),  # no zero padding
    ("meter_id", "ab" * 32, "malformed_meter_id", "expected 0x followed by 64 hex digits"),
    ("meter_id", "0x" + "zz" * 32, "malformed_meter_id", "Non-hexadecimal"),
    ("meter_id", 12, "malformed_meter_id", "expected 0x followed by 64 hex digits"),
    ("period", "5", "malformed_time", "valid integer"),
    ("period", True, "malformed_time", "valid integer"),
    ("period", 5.0, "malformed_time", "valid integer"),
    ("timestamp", -1, "malformed_time", "greater than or equal to 0"),
    ("timestamp", 2**64, "malformed_time", "less than or equal to 18446744073709551615"),
    ("import_mwh", None, "malformed_register", "valid integer"),
    ("export_mwh", 2**64, "malformed_register", "less than or equal"),
    ("import_wh", 6825.5129, "malformed_register", "expected an exact decimal string"),
    ("import_wh", "lots", "malformed_register", "is not a decimal number"),
    ("import_wh", "-1", "malformed_register", "not a finite non-negative number"),
    ("import_wh", "Infinity", "malformed_register", "not a finite non-negative number"),
    ("import_wh", "6825.511", "malformed_register", "6825.511 Wh does not round down to 6825512 mWh"),
    ("export_wh", "2444.001", "malformed_register", "does not round down to 2444000 mWh"),
    ("signature", "0x" + "11" * 64, "malformed_signature", "expected 0x followed by 130 hex digits"),
    ("signature", HEX64, "malformed_signature", "expected 0x followed by 130 hex digits"),
    ("raw_frame", "not base64!", "malformed_raw_frame", "not valid base64"),
    ("raw_frame", 7, "malformed_raw_frame", "expected base64 text"),
    # bounded: judged on the text before any decoding or Decimal arithmetic (issue 17)
    ("import_wh", "1e999990", "malformed_register", "exponent beyond +-24"),
    ("export_wh", "2.444E-999999", "malformed_register", "exponent beyond +-24"),
    ("import_wh", "6" * 41, "malformed_register", "decimal text of 41 characters exceeds 40"),
    ("raw_frame", "QUFB" * 6000, "malformed_raw_frame", "frame of 24000 base64 characters exceeds 16384 bytes"),
    ("protocol", "iec", "malformed_protocol", "'dsmr', 'sml', 'sunspec' or 'd0'"),
])
def test_every_field_refusal_names_the_field_with_its_code(field, value, code, message):
    with pytest.raises(Refused) as e:
        parse_reading(entry(**{field: value}))
    assert e.value.code == RefusalCode(code) == FIELD_CODES[field]
    assert e.value.message.startswith(f"{field}: ") and message in e.value.message


@pytest.mark.parametrize("field", list(FIELD_CODES))
def test_a_missing_field_is_refused_with_its_code(field):
    e = entry()
    del e[field]
    with pytest.raises(Refused) as err:
        parse_reading(e)
    assert (err.value.code, err.value.message) == (FIELD_CODES[field], f"{field}: missing")


@pytest.mark.parametrize("not_an_object", [[1, 2], "reading", 5, None])
def test_an_entry_that_is_not_an_object_is_malformed(not_an_object):
    with pytest.raises(Refused) as e:
        parse_reading(not_an_object)
    assert e.value.code == RefusalCode.MALFORMED_ENTRY


def test_leaves_headers_and_answers_round_trip_as_named_json():
    v = VECTORS["readings"][0]
    leaf = Leaf(bytes.fromhex(v["meter_id"][2:]), v["period"], v["timestamp"], v["import_mwh"], v["export_mwh"],
                v["leaf"]["prev_period"], v["leaf"]["prev_import_mwh"], v["leaf"]["prev_export_mwh"],
                bytes.fromhex(v["signature"][2:]))
    as_json = LeafModel.of(leaf).model_dump(mode="json")
    assert list(as_json) == list(Leaf._fields) and as_json["meter_id"] == v["meter_id"]
    assert LeafModel.model_validate(as_json).value() == leaf
    assert rust_core.leaf_hash(leaf) == bytes.fromhex(v["leaf"]["hash"][2:])  # the NamedTuple is the native tuple
    node = SumNode._make(rust_core.leaf_node(leaf))
    assert (node.import_mwh, node.export_mwh) == (v["leaf"]["delta_import_mwh"], v["leaf"]["delta_export_mwh"])
    *fields, r, s, v = leaf.struct()
    assert tuple(fields) == (*leaf.reading, *leaf.prev) and r + s + bytes([v]) == leaf.signature
    assert Leaf.settle(leaf.reading, leaf.prev, leaf.signature) == leaf and isinstance(leaf.prev, Register)

    tree = rust_core.MerkleSumTree([leaf])
    header = BatchHeader.of_root(leaf.period, ref.group_id("g"), tree.root, tree.count, 7)
    assert rust_core.batch_digest(SEP, header)  # accepted natively as it is
    hm = BatchHeaderModel.of(header)
    assert BatchHeaderModel.model_validate_json(hm.model_dump_json()).value() == header
    sig = rust_core.sign_digest(rust_core.batch_digest(SEP, header), KEY)
    answer = SignatureAnswer(header=hm, signer="0x" + rust_core.address_of(KEY).hex(), signature=sig)
    again = SignatureAnswer.model_validate_json(answer.model_dump_json())
    assert again == answer and again.signer == ref.Account.from_key(KEY).address  # checksummed
    leaves = LeavesAnswer(root=header.root, final=True, leaves=[LeafModel.of(leaf)])
    assert LeavesAnswer.model_validate_json(leaves.model_dump_json()).leaves[0].value() == leaf
    assert nodes(tree.proof(0)) == []


@pytest.mark.parametrize("model, good, field, bad", [
    (BatchHeaderModel, {"period": 1, "group_id": HEX64, "root": HEX64, "total_import_mwh": 0,
                        "total_export_mwh": 0, "count": 1, "epoch": 1}, "count", 2**32),
    (BatchHeaderModel, {"period": 1, "group_id": HEX64, "root": HEX64, "total_import_mwh": 0,
                        "total_export_mwh": 0, "count": 1, "epoch": 1}, "root", "0x01"),
    (BatchHeaderModel, {"period": 1, "group_id": HEX64, "root": HEX64, "total_import_mwh": 0,
                        "total_export_mwh": 0, "count": 1, "epoch": 1}, "epoch", -1),
    (DeliveryAnswer, {"accepted": [0], "duplicates": [], "rejected": []}, "accepted", [-1]),
    (DeliveryAnswer, {"rejected": [{"index": 0, "code": "bad_signature", "message": "m"}]}, "rejected",
     [{"index": 0, "code": "another", "message": "m"}]),
])
def test_answers_outside_the_schema_are_refused(model, good, field, bad):
    model.model_validate(good)
    with pytest.raises(ValueError, match=field):
        model.model_validate({**good, field: bad})


def test_shared_concepts_defined_once():
    assert meter_label_id("sml:0a01") == ref.meter_id("sml", "0a01") == rust_core.keccak256(b"sml:0a01")
    with pytest.raises(ValueError, match="scheme dsmr, sml, sunspec or d0"):
        meter_label_id("iec:1")
    assert wh_to_mwh("6825.5129") == wh_to_mwh(Decimal("6825.5129")) == 6_825_512
    for bad, why in (("-1", "cannot be negative"), ("x", "not a decimal number"), (str(2**64), "exceeds uint64")):
        with pytest.raises(ValueError, match=why):
            wh_to_mwh(bad, "baseline")
    assert DOMAIN == Domain(DOMAIN.chain_id, bytes.fromhex(VECTORS["domain"]["verifying_contract"][2:]))
    assert "0x" + DOMAIN.separator().hex() == VECTORS["domain"]["separator"] == "0x" + SEP.hex()
    with pytest.raises(ValueError, match="20-byte address"):
        Domain(1, "0x12")
    assert parse_hex32(HEX64) == parse_hex32(HEX64[2:]) == b"\xab" * 32 and parse_hex32("0x12") is None
    import meter_oracle.reading
    import meter_oracle.signing
    import scripts._deployment
    assert meter_oracle.reading.meter_id is ref.meter_id and meter_oracle.reading.PROTOCOLS is ref.PROTOCOLS
    assert meter_oracle.signing.Domain is Domain is ref.Domain
    assert scripts._deployment.group_id is ref.group_id and scripts._deployment.wh_to_mwh is wh_to_mwh


def test_an_exponent_within_bounds_is_exact():
    r = parse_reading(entry(import_wh="6.8255129E+3"))
    assert r.import_wh == Decimal("6825.5129") and r.import_mwh == 6_825_512


def test_node_not_ready_is_retryable_and_a_problem_may_carry_it():
    assert RefusalCode.NODE_NOT_READY.retryable and RefusalCode.FUTURE_TIMESTAMP.retryable
    assert not any(c.retryable for c in RefusalCode if c not in (RefusalCode.NODE_NOT_READY,
                                                                   RefusalCode.FUTURE_TIMESTAMP))
    p = Problem.model_validate({"detail": "node not ready: chain reset", "code": "node_not_ready"})
    assert p.code is RefusalCode.NODE_NOT_READY and Problem(detail="x").code is None
