"""The running oracle publishes each accepted reading and its health to a real mosquitto
(started here on a free loopback port) with Home Assistant discovery, and serves the same health
figures as Prometheus metrics."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from decimal import Decimal

import paho.mqtt.client as mqtt
import pytest
from oracle_support import DOMAIN, REPO, key_for, write_deployment

from meter_oracle.health import reason_kind
from meter_oracle.keystore import write_keystore
from meter_oracle.simulators.profiles import FixedRegisters
from meter_oracle.simulators.stream_server import DsmrMeter, SmlMeter, TcpFrameServer

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def broker(tmp_path):
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        wait_for(listening, 10, "mosquitto to listen")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Subscriber:
    """Every message on the broker, latest per topic, and all of them in order."""

    def __init__(self, port: int) -> None:
        self.latest: dict[str, str] = {}
        self.all: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-subscriber")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.latest[msg.topic] = msg.payload.decode()
            self.all.append((msg.topic, msg.payload.decode()))

    def get(self, topic: str) -> str | None:
        with self._lock:
            return self.latest.get(topic)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_oracle_publishes_readings_health_discovery_and_metrics(tmp_path, broker):
    meter = "MQTT0001"
    write_keystore(tmp_path / "k.json", key_for(f"dsmr:{meter}"), "pw", iterations=1000)
    (tmp_path / "k.pw").write_text("pw\n")
    p1 = TcpFrameServer(DsmrMeter(meter, FixedRegisters("4242", "17")), interval_s=0.3).start()
    stranger = TcpFrameServer(SmlMeter(bytes.fromhex("0a01535452000000beef"), FixedRegisters(1, 0)), interval_s=0.3).start()
    metrics_port = free_port()
    write_deployment(tmp_path)
    config = tmp_path / "oracle.toml"
    config.write_text("\n".join([
        'outbox = "outbox.sqlite"', 'deployment = "deployment.json"',
        "[[nodes]]", 'name = "op1"', f'url = "http://127.0.0.1:{free_port()}"',  # nobody answers: a backlog
        "[[meters]]", f'meter = "dsmr:{meter}"', 'keystore = "k.json"', 'password_file = "k.pw"',
        "[[devices]]", 'name = "p1-hall"', 'protocol = "dsmr"', f'url = "{p1.url}"', "interval_s = 1",
        "[[devices]]", 'name = "sml-cellar"', 'protocol = "sml"', f'url = "{stranger.url}"', "interval_s = 1",
        "[mqtt]", 'host = "127.0.0.1"', f"port = {broker}", "health_interval_s = 0.5",
        "[metrics]", 'host = "127.0.0.1"', f"port = {metrics_port}",
    ]) + "\n")
    sub = Subscriber(broker)
    log = open(tmp_path / "oracle.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "meter_oracle.cli", "run", "--config", str(config)],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    prefix = "energy-settlement/oracle"
    try:
        reading = json.loads(wait_for(lambda: sub.get(f"{prefix}/p1-hall/reading"), 30, "a reading on MQTT"))
        assert (reading["meter"], reading["import_wh"], reading["export_wh"]) == (f"dsmr:{meter}", "4242.000", "17.000")
        assert reading["meter_id"].startswith("0x") and reading["period"] == reading["timestamp"] // 900

        def health_with_backlog():
            text = sub.get(f"{prefix}/health")
            h = json.loads(text) if text else None
            return h if h and h["backlog"].get("op1", 0) >= 1 and h["refusals_total"] >= 1 else None
        health = wait_for(health_with_backlog, 30, "health with a backlog and a refusal")
        assert set(health["last_frame_age_s"]) == {"p1-hall", "sml-cellar"}
        assert all(0 <= age < 10 for age in health["last_frame_age_s"].values())
        assert health["refusals"].get("sml-cellar/unknown_meter", 0) >= 1
        assert sub.get(f"{prefix}/status") == "online"

        disco = json.loads(sub.get("homeassistant/sensor/energy_settlement_oracle/p1-hall_import/config"))
        assert (disco["device_class"], disco["state_class"], disco["unit_of_measurement"]) == ("energy", "total_increasing", "Wh")
        assert disco["state_topic"] == f"{prefix}/p1-hall/reading" and disco["availability_topic"] == f"{prefix}/status"
        assert "homeassistant/sensor/energy_settlement_oracle/backlog_op1/config" in sub.latest
        assert "homeassistant/sensor/energy_settlement_oracle/sml-cellar_last_frame_age/config" in sub.latest

        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        backlog = float(next(line.split()[-1] for line in text.splitlines()
                             if line.startswith('energy_settlement_oracle_backlog_readings{node="op1"}')))
        assert backlog >= 1
        assert 'energy_settlement_oracle_refusals_total{device="sml-cellar",reason="unknown_meter"}' in text
        assert 'energy_settlement_oracle_last_frame_age_seconds{device="p1-hall"}' in text
        assert 'energy_settlement_oracle_readings_signed_total{device="p1-hall"}' in text
        labels = {line.split("{")[1].split("}")[0] for line in text.splitlines()
                  if line.startswith("energy_settlement_oracle_refusals_total{")}
        assert all('reason="' in label for label in labels)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        p1.stop()
        stranger.stop()
    wait_for(lambda: sub.get(f"{prefix}/status") == "offline", 10, "the oracle to say offline")
    sub.close()
    assert proc.returncode == 0, (tmp_path / "oracle.log").read_text()


def test_reason_kinds_are_bounded_and_named():
    assert reason_kind("CRC mismatch (DSMR 5): telegram says 6EEE, computed 6EEF") == "crc"
    assert reason_kind("decryption failed: the GCM tag does not verify (...)") == "decryption"
    assert reason_kind("unknown meter sml:0a01 (0x12): no key configured") == "unknown_meter"
    assert reason_kind("dsmr frame carries no meter identity: set identity for this device") == "identity"
    assert reason_kind("17 bytes outside any telegram") == "stream_noise"
    assert reason_kind("something never seen") == "malformed"


def test_broker_down_does_not_stop_the_readings(tmp_path):
    """The publisher connects in the background: an absent broker delays MQTT, never a reading."""
    from meter_oracle.drivers import FrameDecoder
    from meter_oracle.health import Health
    from meter_oracle.keystore import Keyring, MeterKey
    from meter_oracle.mqtt import MqttConfig, MqttPublisher
    from meter_oracle.outbox import Outbox
    from meter_oracle.pipeline import Pipeline
    from meter_oracle.signing import RustCoreSigner
    from meter_oracle.simulators.dsmr_telegram import build_telegram

    health = Health(tmp_path / "o.sqlite", ["p1"])
    publisher = MqttPublisher(MqttConfig(host="127.0.0.1", port=free_port()), health, ["op1"]).start()
    health.listeners.append(publisher)
    outbox = Outbox(tmp_path / "o.sqlite")
    try:
        pipeline = Pipeline(outbox, Keyring([MeterKey("dsmr:DOWN1", key_for("dsmr:DOWN1"), 20_000)]),
                            RustCoreSigner(DOMAIN), clock=lambda: 1_700_000_000.0, health=health)
        [frame] = FrameDecoder("dsmr").feed(build_telegram("DOWN1", Decimal(10), Decimal(0), 1_700_000_000.0))
        assert pipeline.process("p1", "dsmr", 1, frame) is not None
        assert not publisher.connected.is_set()
        assert health.snapshot().readings == {"p1": 1}
    finally:
        publisher.stop()
        outbox.close()


def test_mqtt_and_metrics_sections_are_checked(tmp_path):
    from oracle_support import write_deployment

    from meter_oracle.config import ConfigError, load_config

    write_deployment(tmp_path)
    good = 'deployment = "deployment.json"\n[mqtt]\nhost = "10.0.0.5"\nhealth_interval_s = 5\n[metrics]\nport = 9470\n'
    (tmp_path / "a.toml").write_text(good)
    config = load_config(tmp_path / "a.toml")
    client = config.mqtt.client_config()
    assert (client.host, client.port, client.health_interval_s, client.topic_prefix) == ("10.0.0.5", 1883, 5.0, "energy-settlement/oracle")
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 9470)
    (tmp_path / "b.toml").write_text(good.replace("health_interval_s = 5", "qos = 3\nbroker = 1"))
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path / "b.toml")
    assert "mqtt.qos: Input should be less than or equal to 2" in str(refused.value)
    assert "mqtt.broker: unknown key" in str(refused.value)
