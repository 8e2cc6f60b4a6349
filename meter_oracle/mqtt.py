"""MQTT for the smart-home world (paho-mqtt): every accepted reading and the oracle's health
(health.Health) on a broker, with Home Assistant MQTT discovery, the way dsmr-reader publishes.

Topics (prefix = topic_prefix, default "energy-settlement/oracle"):
    {prefix}/status                  "online" / "offline" (retained; the will says offline)
    {prefix}/{device}/reading        each accepted reading, JSON (retained: the latest)
    {prefix}/health                  backlog per node, refusals by reason, frame ages (retained)
    {discovery_prefix}/sensor/{oracle}/{object}/config   Home Assistant discovery (retained)
"""
from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from meter_oracle.health import Health

log = logging.getLogger("meter_oracle.mqtt")


@dataclass(frozen=True)
class MqttConfig:
    host: str
    port: int = 1883
    topic_prefix: str = "energy-settlement/oracle"
    discovery_prefix: str = "homeassistant"
    oracle_id: str = "energy_settlement_oracle"
    username: str | None = None
    password: str | None = None
    health_interval_s: float = 30.0
    qos: int = 1


def _object_id(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "_", text)


class MqttPublisher:
    """Listener of Health (reading) plus a health loop (run); connects on start()."""

    def __init__(self, config: MqttConfig, health: Health, nodes: list[str]) -> None:
        self.config, self.health, self.nodes = config, health, nodes
        self.status_topic = f"{config.topic_prefix}/status"
        self.health_topic = f"{config.topic_prefix}/health"
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=config.oracle_id)
        if config.username:
            self._client.username_pw_set(config.username, config.password)
        self._client.will_set(self.status_topic, "offline", qos=config.qos, retain=True)
        self._client.on_connect = self._on_connect
        self.connected = threading.Event()

    def reading_topic(self, device: str) -> str:
        return f"{self.config.topic_prefix}/{_object_id(device)}/reading"

    def start(self) -> MqttPublisher:
        self._client.connect_async(self.config.host, self.config.port, keepalive=30)
        self._client.loop_start()  # paho reconnects by itself after a broker restart
        return self

    def stop(self) -> None:
        if self.connected.is_set():
            self._client.publish(self.status_topic, "offline", qos=self.config.qos, retain=True).wait_for_publish(5)
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s", self.config.host, self.config.port, reason_code)
            return
        for topic, payload in self.discovery():  # (again) after every connect: the broker may have lost them
            client.publish(topic, json.dumps(payload), qos=self.config.qos, retain=True)
        client.publish(self.status_topic, "online", qos=self.config.qos, retain=True)
        self.connected.set()

    def reading(self, device: str, frame, signed) -> None:
        payload = {
            "device": device,
            "meter": frame.meter_label,
            "meter_id": "0x" + signed.meter_id.hex(),
            "protocol": frame.protocol,
            "timestamp": signed.timestamp,
            "period": signed.period,
            "import_wh": str(frame.import_wh),
            "export_wh": str(frame.export_wh),
            "power_w": None if frame.power_w is None else str(frame.power_w),
        }
        self._client.publish(self.reading_topic(device), json.dumps(payload), qos=self.config.qos, retain=True)

    def publish_health(self) -> None:
        self._client.publish(self.health_topic, json.dumps(self.health.snapshot().to_json()),
                             qos=self.config.qos, retain=True)

    def run(self, stop: threading.Event) -> None:
        """Health every health_interval_s until stop."""
        while not stop.is_set():
            if self.connected.is_set():
                self.publish_health()
            stop.wait(self.config.health_interval_s)

    def discovery(self) -> list[tuple[str, dict]]:
        """Home Assistant MQTT discovery: per device import/export energy and last-frame age, per
        node the backlog, and the oracle's refusal total."""
        c = self.config
        device_info = {"identifiers": [c.oracle_id], "name": "Energy settlement oracle",
                       "manufacturer": "energy settlement network", "model": "meter-oracle"}
        common = {"availability_topic": self.status_topic, "device": device_info}
        out = []

        def sensor(object_id: str, **fields) -> None:
            uid = f"{c.oracle_id}_{_object_id(object_id)}"
            out.append((f"{c.discovery_prefix}/sensor/{c.oracle_id}/{_object_id(object_id)}/config",
                        {"unique_id": uid, "object_id": uid, **common, **fields}))

        for device in self.health.devices:
            for direction in ("import", "export"):
                sensor(f"{device}_{direction}", name=f"{device} {direction}", state_topic=self.reading_topic(device),
                       value_template=f"{{{{ value_json.{direction}_wh }}}}", unit_of_measurement="Wh",
                       device_class="energy", state_class="total_increasing")
            sensor(f"{device}_last_frame_age", name=f"{device} last frame age", state_topic=self.health_topic,
                   value_template=f"{{{{ value_json.last_frame_age_s['{device}'] }}}}", unit_of_measurement="s",
                   device_class="duration", state_class="measurement", entity_category="diagnostic")
        for node in self.nodes:
            sensor(f"backlog_{node}", name=f"backlog {node}", state_topic=self.health_topic,
                   value_template=f"{{{{ value_json.backlog['{node}'] }}}}", unit_of_measurement="readings",
                   state_class="measurement", entity_category="diagnostic")
        sensor("refusals", name="refusals", state_topic=self.health_topic,
               value_template="{{ value_json.refusals_total }}", state_class="total_increasing",
               entity_category="diagnostic")
        return out
