"""Every DSMR family of dsmr-parser's specifications, read over real byte streams (TCP and pty)
by the driver that reads hardware: public captures and telegrams built from the specifications,
identities other than 0-0:96.1.1, telegrams without identity, encrypted P1 ports."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from oracle_support import REPO, make_pipeline
from oracle_support import read_stream as read_any

from meter_oracle.drivers import FrameDecoder, StreamDriver
from meter_oracle.dsmr import SERIAL, detect_version, parse_telegram
from meter_oracle.errors import FrameRefused, UnknownMeter
from meter_oracle.framing import Dropped
from meter_oracle.reading import MeterFrame
from meter_oracle.simulators.dsmr_telegram import build_telegram
from meter_oracle.simulators.p1_cipher_frame import encrypt_telegram
from meter_oracle.simulators.stream_server import PtyFrameServer, TcpFrameServer

CAPTURES = Path(__file__).parent / "captures"
SERVERS = [TcpFrameServer, PtyFrameServer]
T0 = 1_700_000_000.0
KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")


def read_stream(server_cls, chunks: list[bytes], expect: int, **driver_options) -> list:
    return read_any(server_cls, "dsmr", chunks, expect, **driver_options)


# capture -> (detected spec, identity, import Wh, export Wh)
CAPTURED = {
    "dsmr_v2_2.txt": ("2.2", "00000000000000", "2002", "2002"),
    "dsmr_v3.txt": ("2.2", "4B384547303034303436333935353037", "24691356", "24691356"),
    "dsmr_q3d_esy5q3db1024.txt": ("q3d", "0272031312565", "52185782.5309", "19949322.1493"),
    "dsmr_q3d_esy5q3da1004.txt": ("q3d", "1336001560", "32549506.1662", "0"),
    "dsmr_sagemcom_t210_d.txt": ("sagemcom-t210-d", "", "6545766", "58"),
}


@pytest.mark.parametrize("server_cls", SERVERS)
def test_public_captures_over_a_stream(server_cls):
    names = sorted(CAPTURED)
    results = read_stream(server_cls, [(CAPTURES / n).read_bytes() for n in names], len(names))
    for name, item in zip(names, results):
        spec, identity, imp, exp = CAPTURED[name]
        assert isinstance(item, MeterFrame), f"{name}: {item}"
        assert item.detail.startswith(f"DSMR {spec}")
        assert (item.identity, item.import_wh, item.export_wh) == (identity, Decimal(imp), Decimal(exp)), name


FAMILIES = ["2.2", "4", "5", "belgium", "luxembourg", "eon-hungary", "iskra-ie", "q3d", "sweden", "sagemcom-t210-d"]


@pytest.mark.parametrize("server_cls", SERVERS)
def test_every_family_built_from_its_specification_over_a_stream(server_cls):
    telegrams = [build_telegram(f"ID-{i}", Decimal(1000 + i), Decimal(i), T0, version=v) for i, v in enumerate(FAMILIES)]
    results = read_stream(server_cls, telegrams, len(FAMILIES))
    for i, (family, item) in enumerate(zip(FAMILIES, results)):
        assert isinstance(item, MeterFrame), f"{family}: {item}"
        assert item.detail.startswith(f"DSMR {family}")
        expected_identity = "" if family in ("sweden", "sagemcom-t210-d") else f"ID-{i}"
        assert (item.identity, item.import_wh, item.export_wh) == (expected_identity, Decimal(1000 + i), Decimal(i))


def test_hungary_and_luxembourg_are_told_apart():
    """Both carry 0-0:42.0.0; E.ON Hungary also sends its serial 0-0:96.1.0."""
    lux = build_telegram("53414733303832323030303032313630", Decimal(5), Decimal(1), T0, version="luxembourg")
    hun = build_telegram("53414733303832323030303032313630", Decimal(5), Decimal(1), T0, version="eon-hungary")
    assert (detect_version(lux), detect_version(hun)) == ("luxembourg", "eon-hungary")
    assert parse_telegram(hun).identity == parse_telegram(lux).identity == "53414733303832323030303032313630"


def test_irish_iskra_identity_is_its_serial_not_the_empty_96_1_1():
    raw = build_telegram("09610", Decimal(10181), Decimal(10281), T0, version="iskra-ie")
    assert b"0-0:96.1.1()" in raw
    frame = parse_telegram(raw)
    assert (frame.identity, frame.detail) == ("09610", "DSMR iskra-ie")
    with pytest.raises(FrameRefused, match=r"CRC mismatch \(DSMR iskra-ie\)"):  # its CRC is checked
        parse_telegram(raw.replace(b"(000010.181*kWh)", b"(000010.182*kWh)"))


def test_a_slash_in_a_text_message_does_not_cut_the_telegram():
    raw = build_telegram("E1", Decimal(2000), Decimal(0), T0, version="5", text_message="Info: www.example.lu/p1/tarif 1/2")
    items = FrameDecoder("dsmr").feed(raw + raw)
    assert [type(i) for i in items] == [MeterFrame, MeterFrame], items
    assert items[0].import_wh == Decimal(2000)


def test_a_malformed_energy_line_is_refused_by_name_not_skipped():
    raw = build_telegram("E1", Decimal(2000), Decimal(0), T0, version="2.2").replace(b"1-0:1.8.2(000000.000", b"1-0:1.8.2(0000/0.000")
    with pytest.raises(FrameRefused, match=r"cannot read the line '1-0:1.8.2\(0000/0.000\*kWh\)'"):
        parse_telegram(raw)


def test_error_texts_carry_no_object_reprs():
    raw = build_telegram("E1", Decimal(1), Decimal(0), T0, version="5").replace(b"0-0:1.0.0(", b"0-0:1.0.0(x/")
    with pytest.raises(FrameRefused) as e:
        parse_telegram(raw)
    assert " at 0x" not in e.value.reason and "object" not in e.value.reason, e.value.reason


def test_no_identity_needs_the_configured_one(outbox):
    raw = build_telegram("", Decimal(7000), Decimal(3), T0, version="sweden")
    [bare] = FrameDecoder("dsmr").feed(raw)
    assert bare.identity == "" and "set the device's identity in the configuration" in bare.detail
    pipeline, _ = make_pipeline(outbox, ["dsmr:SE-734"], now=T0)
    with pytest.raises(UnknownMeter, match="carries no meter identity: set identity for this device"):
        pipeline.accept(bare)
    [named] = FrameDecoder("dsmr", identity="SE-734").feed(raw)
    assert pipeline.accept(named).import_mwh == 7_000_000


def test_configured_identity_must_match_the_telegrams():
    raw = build_telegram("E0042", Decimal(1), Decimal(0), T0, version="5")
    [item] = FrameDecoder("dsmr", identity="OTHER").feed(raw)
    assert isinstance(item, Dropped)
    assert item.reason == "meter identity 'E0042' in the frame is not the configured identity 'OTHER'"
    [same] = FrameDecoder("dsmr", identity="E0042").feed(raw)
    assert same.identity == "E0042"


def test_cli_parse_reports_null_meter_id_and_says_why(tmp_path):
    capture = CAPTURES / "dsmr_sagemcom_t210_d.txt"
    run = subprocess.run([sys.executable, "-m", "meter_oracle.cli", "parse", "--protocol", "dsmr", str(capture)],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    line = json.loads(run.stdout)
    assert line["valid"] and line["meter_id"] is None and line["import_mwh"] == 6_545_766_000
    assert "identity in the configuration" in line["detail"]
    forced = subprocess.run([sys.executable, "-m", "meter_oracle.cli", "parse", "--protocol", "dsmr", "--spec", "5",
                             "--identity", "AT-1", str(capture)], cwd=REPO, capture_output=True, text=True, timeout=60)
    line = json.loads(forced.stdout)
    assert line["detail"].startswith("DSMR 5")
    assert line["identity"] == "AT-1" and line["meter_id"].startswith("0x")


def test_serial_settings_follow_the_version():
    assert StreamDriver("/dev/null", "dsmr", dsmr_version="2.2").serial_options == \
        {"baudrate": 9600, "bytesize": 7, "parity": "E", "stopbits": 1}
    assert StreamDriver("/dev/null", "dsmr", dsmr_version="3").serial_options == SERIAL["3"]
    assert StreamDriver("/dev/null", "dsmr").serial_options["baudrate"] == 115200
    assert StreamDriver("/dev/null", "dsmr", serial_options={"baudrate": 57600}).serial_options["baudrate"] == 57600


def test_dsmr_2_2_over_a_pty_at_9600_7e1():
    raw = (CAPTURES / "dsmr_v2_2.txt").read_bytes()
    [item] = read_stream(PtyFrameServer, [raw], 1, dsmr_version="2.2")
    assert item.identity == "00000000000000"


# -- encrypted P1 ---------------------------------------------------------------------------

def gcm_frame(telegram: bytes, key: bytes, auth_key: bytes, counter: int = 7, title: bytes = b"SAG\x01\x02\x03\x04\x05") -> bytes:
    """Built here with cryptography's AES-GCM directly (not the simulator's encoder): DLMS
    general-glo-cipher, security control 0x30, tag cut to 12 bytes."""
    iv = title + counter.to_bytes(4, "big")
    sealed = AESGCM(key).encrypt(iv, telegram, b"\x30" + auth_key)[:-4]
    body = b"\x30" + counter.to_bytes(4, "big") + sealed
    return b"\xdb\x08" + title + b"\x82" + len(body).to_bytes(2, "big") + body


SMARTY_AK = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


@pytest.mark.parametrize("server_cls", SERVERS)
def test_encrypted_smarty_and_sagemcom_over_a_stream(server_cls):
    smarty = build_telegram("53414733303832323030303032313630", Decimal(123456), Decimal(789), T0, version="luxembourg")
    sagemcom = (CAPTURES / "dsmr_sagemcom_t210_d.txt").read_bytes()
    stream = [gcm_frame(smarty, KEY, SMARTY_AK, 1), b"\x00noise", gcm_frame(sagemcom, KEY, SMARTY_AK, 2),
              encrypt_telegram(smarty, KEY, invocation_counter=3)]
    items = read_stream(server_cls, stream, 4, decryption_key=KEY)
    frames = [i for i in items if isinstance(i, MeterFrame)]
    assert [f.identity for f in frames] == ["53414733303832323030303032313630", "", "53414733303832323030303032313630"]
    assert (frames[1].import_wh, frames[1].export_wh) == (Decimal(6545766), Decimal(58))
    assert all("decrypted" in f.detail for f in frames)
    [noise] = [i for i in items if isinstance(i, Dropped)]
    assert noise.reason == "6 bytes outside any encrypted P1 frame"


def test_encrypted_with_its_own_authentication_key():
    ak = bytes(range(16, 32))
    raw = gcm_frame((CAPTURES / "dsmr_sagemcom_t210_d.txt").read_bytes(), KEY, ak)
    [frame] = FrameDecoder("dsmr", decryption_key=KEY, authentication_key=ak, identity="AT-9").feed(raw)
    assert (frame.identity, frame.import_wh) == ("AT-9", Decimal(6545766))


def test_wrong_key_and_tampered_frame_are_refused_saying_so():
    raw = gcm_frame(build_telegram("LU1", Decimal(5), Decimal(0), T0, version="luxembourg"), KEY, SMARTY_AK)
    [wrong] = FrameDecoder("dsmr", decryption_key=bytes(16)).feed(raw)
    tampered = bytearray(raw)
    tampered[40] ^= 0x01
    [bad] = FrameDecoder("dsmr", decryption_key=KEY).feed(bytes(tampered))
    for item in (wrong, bad):
        assert isinstance(item, Dropped)
        assert item.reason.startswith("decryption failed: the GCM tag does not verify (wrong decryption or "
                                      "authentication key, or a tampered frame")
    [good] = FrameDecoder("dsmr", decryption_key=KEY).feed(raw)  # the same frame with the right key
    assert good.identity == "LU1"


def test_config_takes_the_key_from_a_file_and_refuses_a_bad_one(tmp_path):
    from oracle_support import write_deployment

    from meter_oracle.config import ConfigError, load_config

    (tmp_path / "p1.key").write_text(KEY.hex() + "\n")
    write_deployment(tmp_path)
    head = 'deployment = "deployment.json"\n'
    device = '[[devices]]\nname = "smarty"\nprotocol = "dsmr"\nurl = "/dev/ttyUSB0"\n'
    (tmp_path / "a.toml").write_text(head + device + 'decryption_key_file = "p1.key"\nidentity = "LU1"\ndsmr_version = "luxembourg"\n')
    [d] = load_config(tmp_path / "a.toml").devices
    assert (d.decryption_key, d.identity, d.dsmr_version) == (KEY, "LU1", "luxembourg")
    for bad, message in (('decryption_key = "00ff"', "devices[0].decryption_key: the key has 2 bytes, AES-128 needs 16"),
                         ('decryption_key = "zz"', "devices[0].decryption_key: the key is not hexadecimal"),
                         ('dsmr_version = "9"', "devices[0].dsmr_version: '9' is not one of 2.2, 3, 4, 5"),
                         ('protocol = "sml"\ncrc = "crc32"', "devices[0].crc: Input should be 'x25' or 'kermit'")):
        own_protocol = "" if "protocol" in bad else 'protocol = "dsmr"\n'
        (tmp_path / "b.toml").write_text(head + device.replace('protocol = "dsmr"\n', own_protocol) + bad + "\n")
        with pytest.raises(ConfigError) as refused:
            load_config(tmp_path / "b.toml")
        assert message in str(refused.value), str(refused.value)
