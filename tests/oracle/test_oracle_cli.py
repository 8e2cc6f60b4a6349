"""The meter-oracle command line: parse captures, read one reading from a live device."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal

from oracle_support import REPO, TESTDATA, load_expected, write_deployment

from meter_oracle.simulators.profiles import FixedRegisters
from meter_oracle.simulators.stream_server import SmlMeter, TcpFrameServer, replay


def oracle(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meter_oracle.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_parse_prints_one_json_object_per_frame():
    for protocol, pattern in (("dsmr", "*.txt"), ("sml", "*.bin")):
        expected = load_expected(protocol)
        files = sorted((TESTDATA / protocol).glob(pattern))
        run = oracle("parse", "--protocol", protocol, *map(str, files))
        assert run.returncode == 1  # some captures are refused on purpose
        lines = [json.loads(line) for line in run.stdout.splitlines()]
        assert [line["file"] for line in lines] == list(map(str, files))
        for line in lines:
            exp = expected[line["file"].rsplit("/", 1)[1]]
            assert line["valid"] == exp["valid"]
            if exp["valid"]:
                assert line["import_mwh"] == int(Decimal(exp["import_wh"]) * 1000)
                assert line["export_mwh"] == int(Decimal(exp["export_wh"]) * 1000)
                assert line["meter_id"].startswith("0x") and len(line["meter_id"]) == 66
            else:
                assert ("CRC" in line["error"]) if protocol == "dsmr" else line["error"].startswith(exp["error"])


def test_parse_with_a_forced_version():
    good = str(TESTDATA / "dsmr" / "v5_iskra.txt")
    assert json.loads(oracle("parse", "--protocol", "dsmr", "--dsmr-version", "5", good).stdout)["valid"]
    forced = json.loads(oracle("parse", "--protocol", "dsmr", "--dsmr-version", "belgium", good).stdout)
    assert forced["detail"] == "DSMR belgium"


def test_read_prints_one_reading_from_a_device():
    meter = SmlMeter(bytes.fromhex("0a01434c490000000001"), FixedRegisters("4242.4", "1.5"))
    with TcpFrameServer(meter, interval_s=0.2) as server:
        run = oracle("read", server.url, "--protocol", "sml", "--timeout", "20")
    assert run.returncode == 0, run.stderr
    reading = json.loads(run.stdout.splitlines()[-1])
    assert (reading["identity"], reading["import_wh"], reading["export_mwh"]) == ("0a01434c490000000001", "4242.4", 1500)


def test_run_refuses_a_bad_config_clearly(tmp_path):
    config = tmp_path / "oracle.toml"
    config.write_text('deployment = "deployment.json"\nverifying_contract = "0x12"\n')
    run = oracle("run", "--config", str(config))
    assert run.returncode == 2
    assert f"{config}: deployment: deployment file {tmp_path}/deployment.json: No such file" in run.stderr
    assert f"{config}: verifying_contract: unknown key" in run.stderr
    assert "Traceback" not in run.stderr


def test_run_logs_which_meter_which_frame_and_why(tmp_path):
    """The running oracle logs each refusal with the device, the frame number, the meter and
    the reason: here a meter without a key, then the corrupted capture."""
    unknown = (TESTDATA / "dsmr" / "v5_iskra.txt").read_bytes()
    corrupt = (TESTDATA / "dsmr" / "v5_iskra_corrupted_crc.txt").read_bytes()
    log_path = tmp_path / "oracle.log"
    # the empty first chunk gives the oracle time to connect: pyserial flushes what came before
    with TcpFrameServer(replay([b"", unknown, corrupt]), interval_s=0.5) as server, open(log_path, "w") as log_file:
        config = tmp_path / "oracle.toml"
        write_deployment(tmp_path)
        config.write_text(
            'deployment = "deployment.json"\n'
            f'[[devices]]\nname = "p1-hall"\nprotocol = "dsmr"\nurl = "{server.url}"\n'
        )
        proc = subprocess.Popen([sys.executable, "-m", "meter_oracle.cli", "run", "--config", str(config)],
                                cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 30
            while "frame 2 refused" not in log_path.read_text() and time.time() < deadline:
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    log = log_path.read_text()
    assert "p1-hall frame 1 refused (meter dsmr:4B384547303034303436333935353037): unknown meter" in log
    assert "p1-hall frame 2 refused (meter unknown): CRC mismatch (DSMR 5): telegram says 6EEE" in log
    assert proc.returncode == 0
