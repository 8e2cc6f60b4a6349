"""Prometheus metrics of the oracle (namespace energy_settlement_oracle_), the same figures as
the MQTT health topic, computed from health.Health at each scrape."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from meter_oracle.health import Health

NAMESPACE = "energy_settlement_oracle"


class OracleCollector:
    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self):
        snap = self.health.snapshot()
        backlog = GaugeMetricFamily(f"{NAMESPACE}_backlog_readings",
                                    "Signed readings not yet acknowledged, per settlement node", labels=["node"])
        for node, n in sorted(snap.backlog.items()):
            backlog.add_metric([node], n)
        refusals = CounterMetricFamily(f"{NAMESPACE}_refusals",
                                       "Frames and readings refused (kept in the outbox), per device and reason kind",
                                       labels=["device", "reason"])
        for (device, kind), n in sorted(snap.refusals.items()):
            refusals.add_metric([device, kind], n)
        age = GaugeMetricFamily(f"{NAMESPACE}_last_frame_age_seconds",
                                "Seconds since the device's last decoded frame (since start if none yet)",
                                labels=["device"])
        for device, seconds in sorted(snap.last_frame_age_s.items()):
            age.add_metric([device], seconds)
        readings = CounterMetricFamily(f"{NAMESPACE}_readings_signed", "Readings signed since start, per device",
                                       labels=["device"])
        for device, n in sorted(snap.readings.items()):
            readings.add_metric([device], n)
        yield from (backlog, refusals, age, readings)


def registry_for(health: Health) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(OracleCollector(health))
    return registry


def serve(health: Health, host: str = "127.0.0.1", port: int = 9465):
    """An HTTP /metrics endpoint in a daemon thread; returns the server (shutdown() stops it)."""
    server, _thread = start_http_server(port, addr=host, registry=registry_for(health))
    return server
