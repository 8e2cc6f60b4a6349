"""oracle.toml: settlement nodes, meter keys and devices. Relative paths are relative to the file.

    outbox = "oracle.sqlite"
    chain_id = 31337
    verifying_contract = "0x..."        # the PeriodLedger (EIP-712 domain)
    period_seconds = 900
    max_skew_s = 300
    signer = "rust_core"                # or "eth-account"

    [[nodes]]
    name = "op1"
    url = "http://127.0.0.1:8001"

    [[meters]]
    meter = "dsmr:4B384547303034303436333935353037"   # scheme:identity
    keystore = "keys/p1.json"
    password_file = "keys/p1.pw"        # or password_env = "VAR"
    max_power_w = 17250

    [[devices]]
    name = "p1"
    protocol = "dsmr"                   # dsmr | sml | sunspec
    url = "/dev/ttyUSB0"                # or socket://, rfc2217://, tcp://
    interval_s = 60                     # sign at most one reading a meter per interval
    dsmr_version = "5"                  # optional: force instead of detecting
    unit = 1                            # sunspec: Modbus unit id
    serial = { baudrate = 115200 }      # optional pyserial options (defaults follow the protocol)
    identity = "..."                    # required when the frames carry none; must match otherwise
    decryption_key_file = "keys/p1.key" # encrypted P1: 32 hex digits (or decryption_key = "...")
    authentication_key = "..."          # encrypted P1: optional, default Luxembourg Smarty's public key
    crc = "x25"                         # sml: x25 or kermit
    sunspec_model = 213                 # sunspec: read this model (default: discovered, meter first)

    [mqtt]                              # optional: readings and health to a broker, HA discovery
    host = "127.0.0.1"
    port = 1883
    topic_prefix = "energy-settlement/oracle"
    discovery_prefix = "homeassistant"
    username = "oracle"                 # optional; password_env = "VAR"
    health_interval_s = 30

    [metrics]                           # optional: Prometheus /metrics
    host = "127.0.0.1"
    port = 9465
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from meter_oracle.keystore import MeterKey, read_keystore
from meter_oracle.reading import PROTOCOLS
from meter_oracle.signing import Domain


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class NodeConfig:
    name: str
    url: str


@dataclass(frozen=True)
class DeviceConfig:
    name: str
    protocol: str
    url: str
    interval_s: float = 60.0
    dsmr_version: str | None = None
    unit: int = 1
    serial: dict = field(default_factory=dict)
    # meter-family settings (issue 13)
    identity: str | None = None
    decryption_key: bytes | None = None
    authentication_key: bytes | None = None
    crc: str = "x25"
    sunspec_model: int | None = None

    def decoder_options(self) -> dict:
        """FrameDecoder / StreamDriver keyword arguments of this device."""
        return {"identity": self.identity, "decryption_key": self.decryption_key,
                "authentication_key": self.authentication_key, "crc": self.crc}


@dataclass(frozen=True)
class OracleConfig:
    outbox: Path
    domain: Domain
    period_seconds: int
    max_skew_s: float
    signer: str
    nodes: list[NodeConfig]
    keys: list[MeterKey]
    devices: list[DeviceConfig]
    mqtt: object | None = None  # mqtt.MqttConfig
    metrics: tuple[str, int] | None = None  # (host, port) of the Prometheus endpoint


def load_config(path: str | Path) -> OracleConfig:
    path = Path(path)
    base = path.parent
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    try:
        nodes = [NodeConfig(n["name"], n["url"]) for n in raw.get("nodes", [])]
        if len({n.name for n in nodes}) != len(nodes):
            raise ConfigError("node names must be unique")
        devices = [_device(d, base) for d in raw.get("devices", [])]
        return OracleConfig(
            outbox=base / raw.get("outbox", "oracle.sqlite"),
            domain=Domain.parse(int(raw["chain_id"]), raw["verifying_contract"]),
            period_seconds=int(raw.get("period_seconds", 900)),
            max_skew_s=float(raw.get("max_skew_s", 300)),
            signer=raw.get("signer", "rust_core"),
            nodes=nodes,
            keys=[_key(k, base) for k in raw.get("meters", [])],
            devices=devices,
            mqtt=_mqtt(raw["mqtt"]) if "mqtt" in raw else None,
            metrics=(raw["metrics"].get("host", "127.0.0.1"), int(raw["metrics"]["port"])) if "metrics" in raw else None,
        )
    except KeyError as e:
        raise ConfigError(f"{path}: missing setting {e}") from None
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None


def _device(d: dict, base: Path) -> DeviceConfig:
    if d["protocol"] not in PROTOCOLS:
        raise ConfigError(f"device {d.get('name')}: protocol {d['protocol']!r} is not one of {PROTOCOLS}")
    from meter_oracle.dsmr import SPECS
    from meter_oracle.p1_cipher import parse_key
    from meter_oracle.sml import CRC_VARIANTS

    name = d.get("name", d["url"])
    if d.get("dsmr_version") is not None and d["dsmr_version"] not in SPECS:
        raise ConfigError(f"device {name}: dsmr_version {d['dsmr_version']!r} is not one of {', '.join(SPECS)}")
    if d.get("crc", "x25") not in CRC_VARIANTS:
        raise ConfigError(f"device {name}: crc {d['crc']!r} is not one of {', '.join(CRC_VARIANTS)}")
    key_text = d.get("decryption_key")
    if "decryption_key_file" in d:
        try:
            key_text = (base / d["decryption_key_file"]).read_text()
        except OSError as e:
            raise ConfigError(f"device {name}: cannot read decryption_key_file: {e}") from None
    try:
        keys = {k: parse_key(v, k) if v is not None else None
                for k, v in (("decryption_key", key_text), ("authentication_key", d.get("authentication_key")))}
    except ValueError as e:
        raise ConfigError(f"device {name}: {e}") from None
    return DeviceConfig(
        name=name,
        protocol=d["protocol"],
        url=d["url"],
        interval_s=float(d.get("interval_s", 60)),
        dsmr_version=d.get("dsmr_version"),
        unit=int(d.get("unit", 1)),
        serial=dict(d.get("serial", {})),
        identity=str(d["identity"]) if "identity" in d else None,
        crc=d.get("crc", "x25"),
        sunspec_model=int(d["sunspec_model"]) if "sunspec_model" in d else None,
        **keys,
    )


def _mqtt(m: dict):
    from meter_oracle.mqtt import MqttConfig

    password = None
    if "password_env" in m:
        password = os.environ.get(m["password_env"])
        if password is None:
            raise ConfigError(f"mqtt: environment variable {m['password_env']} is not set")
    known = {"host", "port", "topic_prefix", "discovery_prefix", "oracle_id", "username", "health_interval_s", "qos"}
    unknown = set(m) - known - {"password_env"}
    if unknown:
        raise ConfigError(f"mqtt: unknown settings {', '.join(sorted(unknown))}")
    return MqttConfig(password=password, **{k: v for k, v in m.items() if k in known})


def _key(k: dict, base: Path) -> MeterKey:
    label = k["meter"]
    if label.partition(":")[0] not in PROTOCOLS or not label.partition(":")[2]:
        raise ConfigError(f"meter {label!r} must be scheme:identity with scheme one of {PROTOCOLS}")
    if "password_file" in k:
        password = (base / k["password_file"]).read_text().strip()
    elif "password_env" in k:
        password = os.environ.get(k["password_env"])
        if password is None:
            raise ConfigError(f"meter {label}: environment variable {k['password_env']} is not set")
    else:
        raise ConfigError(f"meter {label}: set password_file or password_env")
    return MeterKey(label, read_keystore(base / k["keystore"], password), int(k.get("max_power_w", 50_000)))
