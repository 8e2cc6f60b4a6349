"""Fuzzing each parser (DSMR of every family with a CRC, encrypted P1, SML, D0 streams, SunSpec
registers) with truncated, bit-flipped and garbage streams: no crash, every refusal names its
reason, no damaged value is ever accepted, and the stream resynchronises so that every undamaged
frame after the damage is read."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meter_oracle.drivers import FrameDecoder
from meter_oracle.errors import FrameRefused
from meter_oracle.framing import Dropped
from meter_oracle.reading import MeterFrame
from meter_oracle.simulators.d0_meter import build_readout
from meter_oracle.simulators.dsmr_telegram import build_telegram
from meter_oracle.simulators.p1_cipher_frame import encrypt_telegram
from meter_oracle.simulators.sml_frame import build_frame
from meter_oracle.sunspec import decode
from meter_oracle.sunspec_models import ENERGY, layout

T0 = 1_700_000_000.0


# the families with a CRC (a CRC-less 2.2/3/Q3D telegram cannot tell a flipped digit; D0 has its BCC)
CRC_FAMILIES = ("5", "4", "belgium", "luxembourg", "eon-hungary", "iskra-ie", "sweden", "sagemcom-t210-d")
KEY = bytes(range(16))


def dsmr_frame(i: int) -> tuple[bytes, tuple]:
    imp, exp = Decimal(1000 + 7 * i), Decimal(3 * i)
    family = CRC_FAMILIES[i % len(CRC_FAMILIES)]
    identity = "" if family in ("sweden", "sagemcom-t210-d") else "FUZZ01"
    return build_telegram("FUZZ01", imp, exp, T0 + i, version=family), (identity, imp, exp)


def cipher_frame(i: int) -> tuple[bytes, tuple]:
    imp, exp = Decimal(2000 + 5 * i), Decimal(i)
    telegram = build_telegram("LUX01", imp, exp, T0 + i, version="luxembourg")
    return encrypt_telegram(telegram, KEY, invocation_counter=i + 1), ("LUX01", imp, exp)


def d0_frame(i: int) -> tuple[bytes, tuple]:
    imp, exp = Decimal(3000 + 13 * i), Decimal(2 * i)
    ident, block = build_readout("D0FUZZ", imp, exp, tariffs=bool(i % 2))
    return ident + block, ("D0FUZZ", imp, exp)


def sml_frame(i: int) -> tuple[bytes, tuple]:
    imp, exp = Decimal(5000 + 11 * i), Decimal(2 * i)
    return build_frame(bytes.fromhex("0a01465a5a0000000001"), imp, exp), ("0a01465a5a0000000001", imp, exp)


damage = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 0.99)),
    st.tuples(st.just("flip"), st.floats(0.0, 0.999), st.integers(0, 7)),
    st.tuples(st.just("garbage"), st.binary(min_size=1, max_size=64)),
)


def damaged(frame: bytes, how: tuple) -> bytes:
    if how[0] == "truncate":
        return frame[: int(len(frame) * how[1])]
    if how[0] == "flip":
        pos = int(len(frame) * how[1])
        return frame[:pos] + bytes([frame[pos] ^ (1 << how[2])]) + frame[pos + 1 :]
    return how[1] + frame  # noise in front of an intact frame


def run(make, plan: list, chunk: int):
    """plan: per frame, None (intact) or a damage; returns (results, intact values, all values)."""
    stream, intact, known = b"", [], set()
    for i, how in enumerate(plan):
        frame, values = make(i)
        known.add(values)
        if how is None or how[0] == "garbage":
            intact.append(values)
        stream += frame if how is None else damaged(frame, how)
    tail, tail_values = make(len(plan))  # always one good frame at the end: resync must reach it
    stream += tail
    intact.append(tail_values)
    known.add(tail_values)
    decoder = DECODERS[make]()
    results = []
    for i in range(0, len(stream), chunk):
        results += decoder.feed(stream[i : i + chunk])
    return results, intact, known


def check(results, intact, known):
    got = []
    for item in results:
        if isinstance(item, Dropped):
            assert item.reason and isinstance(item.reason, str)
            assert " at 0x" not in item.reason, f"refusal text with a memory address: {item.reason}"
        else:
            assert isinstance(item, MeterFrame)
            values = (item.identity, item.import_wh, item.export_wh)
            assert values in known, f"damaged values accepted: {values}"
            got.append(values)
    # every intact frame is read, in order (a damaged one may still pass if the damage missed
    # what the CRC covers, e.g. a flipped bit in the line end after the CRC)
    it = iter(got)
    assert all(any(v == g for g in it) for v in intact), f"lost an intact frame: {intact} vs {got}"


plans = st.lists(st.one_of(st.none(), damage), min_size=1, max_size=5)
@pytest.mark.parametrize("make", ["dsmr_frame", "sml_frame", "cipher_frame", "d0_frame"])
@settings(max_examples=40, deadline=None)
@given(plan=plans, chunk=st.integers(1, 300))
def test_stream_fuzz(make, plan, chunk):
    check(*run(globals()[make], plan, chunk))


DECODERS = {
    dsmr_frame: lambda: FrameDecoder("dsmr"),
    sml_frame: lambda: FrameDecoder("sml"),
    cipher_frame: lambda: FrameDecoder("dsmr", decryption_key=KEY),
    d0_frame: lambda: FrameDecoder("d0"),
}


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["dsmr", "sml", "d0", "cipher"]))
def test_pure_garbage_never_crashes_nor_yields_a_reading(data, protocol):
    decoder = FrameDecoder("dsmr", decryption_key=KEY) if protocol == "cipher" else FrameDecoder(protocol)
    results = decoder.feed(data)
    assert all(isinstance(r, Dropped) and r.reason for r in results)


registers = st.lists(st.integers(0, 0xFFFF), max_size=160)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([1, 101, 103, 201, 203, 0xFFFF]), registers, registers)
def test_sunspec_register_decoding_fuzz(model, common, regs):
    """Arbitrary register contents of any length: a reading with non-negative energy, or a clear refusal."""
    try:
        frame = decode(model, common, regs)
    except FrameRefused as e:
        assert e.reason
    else:
        assert frame.import_wh >= 0 and frame.export_wh >= 0 and ":" in frame.identity


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(sorted(ENERGY)), st.data())
def test_sunspec_full_length_models_fuzz(model, data):
    """Registers of the model's full length (pysunspec2's layout), arbitrary contents, a valid
    common model: a reading whose registers decode exactly as the layout says, or a refusal."""
    lay = layout(model)
    regs = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=lay.length + 2, max_size=lay.length + 2))
    common = [0] * 68
    common[2], common[50] = 0x4142, 0x3031  # "AB", "01"
    try:
        frame = decode(model, common, regs)
    except FrameRefused as e:
        assert e.reason and " at 0x" not in e.reason
    else:
        assert frame.import_wh >= 0 and frame.export_wh >= 0 and frame.identity == "AB:01"
        assert frame.import_mwh >= 0
