"""`meter-oracle run`: one thread per device (read -> check -> sign -> outbox) and one per
settlement node (outbox -> delivery), until SIGINT/SIGTERM."""
from __future__ import annotations

import logging
import signal
import threading

from meter_oracle import metrics
from meter_oracle.config import DeviceConfig, OracleConfig
from meter_oracle.delivery import NodeClocks, NodeDelivery
from meter_oracle.drivers import StreamDriver
from meter_oracle.health import Health
from meter_oracle.keystore import Keyring
from meter_oracle.mqtt import MqttPublisher
from meter_oracle.outbox import Outbox
from meter_oracle.pipeline import Pipeline
from meter_oracle.signing import EthAccountSigner, RustCoreSigner
from meter_oracle.sunspec import SunSpecDriver

log = logging.getLogger("meter_oracle")
SIGNERS = {"rust_core": RustCoreSigner, "eth-account": EthAccountSigner}


def make_signer(config: OracleConfig):
    if config.signer not in SIGNERS:
        raise ValueError(f"signer {config.signer!r} is not one of {', '.join(SIGNERS)}")
    return SIGNERS[config.signer](config.domain)


def run_device(config: OracleConfig, device: DeviceConfig, stop: threading.Event, health: Health | None = None,
               clocks: NodeClocks | None = None) -> None:
    outbox = Outbox(config.outbox)
    pipeline = Pipeline(outbox, Keyring(config.keys), make_signer(config),
                        period_seconds=config.period_seconds, max_skew_s=config.max_skew_s, health=health,
                        node_clocks=clocks)
    if device.protocol == "sunspec":
        driver = SunSpecDriver(device.url, unit=device.unit, serial_options=device.serial, model=device.sunspec_model)
        results = driver.results(stop, device.interval_s)
        interval = 0.0  # the poll interval already spaces the readings
    else:
        results = StreamDriver(device.url, device.protocol, dsmr_version=device.dsmr_version,
                               serial_options=device.serial, **device.decoder_options()).results(stop)
        interval = device.interval_s
    try:
        for n, item in enumerate(results, 1):
            pipeline.process(device.name, device.protocol, n, item, interval)
    finally:
        outbox.close()


def run_node(config: OracleConfig, name: str, url: str, stop: threading.Event, clocks: NodeClocks | None = None) -> None:
    outbox = Outbox(config.outbox)
    delivery = NodeDelivery(name, url, outbox, clocks=clocks)
    try:
        delivery.run(stop)
    finally:
        delivery.close()
        outbox.close()


def _guarded(target, stop: threading.Event, failures: list[str]):
    """A worker that dies takes the oracle down (exit status 1) rather than silently stopping
    one meter or one node; the supervisor restarts it and the outbox resumes where it was."""
    def run(*args) -> None:
        try:
            target(*args)
        except Exception:
            log.exception("%s failed; stopping the oracle", threading.current_thread().name)
            failures.append(threading.current_thread().name)
            stop.set()
    return run


def run(config: OracleConfig) -> int:
    outbox = Outbox(config.outbox)
    outbox.set_nodes([n.name for n in config.nodes])
    outbox.close()
    make_signer(config)  # fail now, not in a thread, if the signer is unavailable
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    failures: list[str] = []
    health = Health(config.outbox, [d.name for d in config.devices])
    publisher, metrics_server = None, None
    if config.mqtt is not None:
        publisher = MqttPublisher(config.mqtt.client_config(), health, [n.name for n in config.nodes]).start()
        health.listeners.append(publisher)
    if config.metrics is not None:
        metrics_server = metrics.serve(health, config.metrics.host, config.metrics.port)
    clocks = NodeClocks()
    threads = [threading.Thread(target=_guarded(run_device, stop, failures), args=(config, d, stop, health, clocks),
                                name=f"device {d.name}") for d in config.devices]
    if publisher is not None:
        threads.append(threading.Thread(target=_guarded(publisher.run, stop, failures), args=(stop,), name="mqtt health"))
    threads += [threading.Thread(target=_guarded(run_node, stop, failures), args=(config, n.name, n.url, stop, clocks),
                                 name=f"node {n.name}") for n in config.nodes]
    for t in threads:
        t.start()
    log.info("oracle running: %d devices, %d nodes, outbox %s", len(config.devices), len(config.nodes), config.outbox)
    stop.wait()
    for t in threads:
        t.join()
    if publisher is not None:
        publisher.stop()
    if metrics_server is not None:
        metrics_server.shutdown()
    return 1 if failures else 0
