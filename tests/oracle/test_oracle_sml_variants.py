"""SML frames the field sends besides a household's: generators that only export, frames with
odd entries beside intact energy registers, Kermit CRCs, misaligned end markers; over a real
byte stream like the captures, with stable refusal texts."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest
from oracle_support import read_stream

from meter_oracle.drivers import FrameDecoder
from meter_oracle.framing import Dropped
from meter_oracle.reading import MeterFrame
from meter_oracle.simulators.sml_frame import build_frame, entry, lst, octets, unsigned, wrap_transport
from meter_oracle.simulators.stream_server import PtyFrameServer, TcpFrameServer

SID = bytes.fromhex("0a01475a4e0000000042")


@pytest.mark.parametrize("server_cls", [TcpFrameServer, PtyFrameServer])
def test_generator_that_only_exports_is_a_reading(server_cls):
    frames = [build_frame(SID, None, Decimal("98765.4")), build_frame(SID, Decimal(5), Decimal(7))]
    gen, both = read_stream(server_cls, "sml", frames, 2)
    assert isinstance(gen, MeterFrame), gen
    assert (gen.identity, gen.import_wh, gen.export_wh) == (SID.hex(), Decimal(0), Decimal("98765.4"))
    assert (both.import_wh, both.export_wh) == (Decimal(5), Decimal(7))


def test_a_frame_without_any_energy_register_is_refused():
    [item] = FrameDecoder("sml").feed(build_frame(SID, None, None))
    assert item.reason == "SML frame has no energy register 1.8.x (import) nor 2.8.x (export)"


ODD = {
    "a vendor register holding a list": entry("8181c78203ff", None, None, lst(unsigned(1, 1), octets(b"x"))),
    "a tariff in W beside the total": entry("0100010801ff", 27, 0, unsigned(5, 4)),
    "a power register holding text": entry("0100100700ff", 27, 0, octets(b"n/a")),
    "a register with an odd OBIS length": entry("01000108", 30, 0, unsigned(1, 4)),
}


@pytest.mark.parametrize("odd", sorted(ODD))
def test_an_odd_unrelated_entry_does_not_refuse_intact_energy_registers(odd):
    [item] = FrameDecoder("sml").feed(build_frame(SID, Decimal("1234.5"), Decimal("6.7"), extra=(ODD[odd],)))
    assert isinstance(item, MeterFrame), item
    assert (item.import_wh, item.export_wh) == (Decimal("1234.5"), Decimal("6.7"))


def test_an_odd_energy_register_the_reading_needs_is_refused():
    raw = build_frame(SID, None, Decimal(1), extra=(entry("0100010801ff", 27, 0, unsigned(5, 4)),))
    [item] = FrameDecoder("sml").feed(raw)
    assert item.reason == "register 1.8.1 has SML unit code 27, expected 30 (Wh)"


def test_kermit_crc_is_a_device_setting():
    raw = build_frame(SID, Decimal(42), Decimal(0), crc="kermit")
    [frame] = FrameDecoder("sml", crc="kermit").feed(raw)
    assert isinstance(frame, MeterFrame) and frame.import_wh == Decimal(42)
    [refused] = FrameDecoder("sml").feed(raw)  # the same frame read as X.25
    assert isinstance(refused, Dropped) and refused.reason.startswith("CrcError: frame CRC")
    with pytest.raises(ValueError, match="SML CRC variant 'crc32' is not one of x25, kermit"):
        FrameDecoder("sml", crc="crc32")


def test_a_misaligned_end_marker_is_named_as_such():
    body = build_frame(SID, Decimal(1), Decimal(0))
    payload_len = len(body) - 16 - body[-3]  # the frame's payload without padding
    payload = body[8 : 8 + payload_len]
    assert payload_len % 4, "the test needs a payload that does not fill its last 4 bytes"
    raw = wrap_transport(payload, pad=False)
    good = build_frame(SID, Decimal(2), Decimal(0))
    items = FrameDecoder("sml").feed(raw + good)
    assert isinstance(items[0], Dropped), items
    assert re.fullmatch(r"InvalidEndMarker: misaligned end sequence 1b1b1b1b 1a at offset \d+ "
                        r"\(an SML end marker sits on a 4-byte boundary\)", items[0].reason), items[0].reason
    assert isinstance(items[-1], MeterFrame) and items[-1].import_wh == Decimal(2)
    alone = FrameDecoder("sml").feed(raw)  # also when no frame follows
    assert [i.reason.split(":")[0] for i in alone] == ["InvalidEndMarker"]


def test_refusal_texts_are_stable():
    """The same damage gives the same text twice: no reprs, no memory addresses."""
    damaged = bytearray(build_frame(SID, Decimal(1), Decimal(0)))
    damaged[30] = 0x7F  # a list type-length where a field was expected
    import smllib.crc
    damaged[-2:] = smllib.crc.x25.get_crc(bytes(damaged[:-2])).to_bytes(2, "big")
    reasons = [FrameDecoder("sml").feed(bytes(damaged))[0].reason for _ in range(2)]
    assert reasons[0] == reasons[1]
    assert " at 0x" not in reasons[0] and "<" not in reasons[0], reasons[0]
