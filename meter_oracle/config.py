"""oracle.toml: settlement nodes, meter keys and devices (examples/oracle.toml is a commented one).

Unknown keys and wrong types are refused with the file, the key path and the reason
(rust_core.settings). Relative paths are relative to the config file. Every key can be
overridden from the environment: `METER_ORACLE_` + the key in capitals, `__` between nested
keys, lists as JSON (`METER_ORACLE_MAX_SKEW_S=120`,
`METER_ORACLE_NODES='[{"name": "op1", "url": "http://10.0.0.2:8700"}]'`).

The EIP-712 domain (chain id, PeriodLedger) and the period length come from the deployment
file `ape run deploy` wrote, never copied by hand: an oracle with a wrong domain signs readings
that every node refuses.

A device protocol's own setting is one more optional field on `DeviceConfig`.
"""
from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator
from pydantic_settings import SettingsConfigDict

from meter_oracle.keystore import MeterKey
from meter_oracle.reading import PROTOCOLS
from meter_oracle.signing import Domain
from rust_core.deployment import DeploymentFile
from rust_core.keystore import EncryptedKey
from rust_core.settings import ConfigError, ConfigPath, TomlSettings, load_settings

__all__ = ["ConfigError", "DeviceConfig", "MeterConfig", "NodeConfig", "OracleConfig", "load_config"]

Protocol = Literal[PROTOCOLS]  # type: ignore[valid-type]
MeterLabel = Annotated[str, StringConstraints(pattern=rf"^({'|'.join(PROTOCOLS)}):.+$")]
Url = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


def _aes_key(text) -> bytes:
    from meter_oracle.p1_cipher import parse_key

    return text if isinstance(text, bytes) else parse_key(str(text), "the key")


def _dsmr_spec(name: str) -> str:
    from meter_oracle.dsmr import SPECS

    if name not in SPECS:
        raise ValueError(f"{name!r} is not one of {', '.join(SPECS)}")
    return name


AesKey = Annotated[bytes, BeforeValidator(_aes_key)]  # 32 hex digits in the file
DsmrSpec = Annotated[str, AfterValidator(_dsmr_spec)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeConfig(Strict):
    """A settlement node the oracle delivers every signed reading to."""

    name: str = Field(min_length=1)
    url: Url  # http://host:port of the node's API


class DeviceConfig(Strict):
    """One meter interface: a serial port or a socket the oracle reads frames from."""

    name: str = ""  # in the logs; defaults to the url
    protocol: Protocol
    url: Url  # /dev/ttyUSB0, socket://host:port, rfc2217://host:port, tcp://host:port (sunspec)
    interval_s: float = Field(60.0, gt=0)  # sign at most one reading a meter per interval
    dsmr_version: DsmrSpec | None = None  # dsmr: force a telegram specification instead of detecting it
    unit: int = Field(1, ge=0, le=255)  # sunspec: Modbus unit id
    serial: dict[str, int | float | str | bool] = Field(default_factory=dict)  # pyserial options (defaults follow the protocol)
    # meter families (issue 13)
    identity: str | None = Field(None, min_length=1)  # required when the frames carry none; must match otherwise
    decryption_key: AesKey | None = None  # encrypted P1: the meter's key, 32 hex digits
    decryption_key_file: ConfigPath | None = None  # ... or a file holding them
    authentication_key: AesKey | None = None  # encrypted P1: default Luxembourg Smarty's public key
    crc: Literal["x25", "kermit"] = "x25"  # sml: the frame CRC variant
    sunspec_model: int | None = Field(None, ge=1, le=65534)  # sunspec: read this model (default: discovered, meter first)

    @model_validator(mode="after")
    def _default_name(self) -> DeviceConfig:
        self.name = self.name or self.url
        if self.decryption_key_file is not None:
            if self.decryption_key is not None:
                raise ValueError("set decryption_key or decryption_key_file, not both")
            try:
                self.decryption_key = _aes_key(self.decryption_key_file.read_text())
            except OSError as e:
                raise ValueError(f"decryption_key_file {self.decryption_key_file}: {e.strerror or e}") from None
        return self

    def decoder_options(self) -> dict:
        """FrameDecoder / StreamDriver keyword arguments of this device."""
        return {"identity": self.identity, "decryption_key": self.decryption_key,
                "authentication_key": self.authentication_key, "crc": self.crc}


class MqttSection(Strict):
    """[mqtt]: readings and health to a broker, with Home Assistant discovery (meter_oracle.mqtt)."""

    host: Url
    port: int = Field(1883, ge=1, le=65535)
    topic_prefix: str = "energy-settlement/oracle"
    discovery_prefix: str = "homeassistant"
    oracle_id: str = "energy_settlement_oracle"
    username: str | None = None
    password_env: str | None = None  # the broker password from the environment
    health_interval_s: float = Field(30.0, gt=0)
    qos: int = Field(1, ge=0, le=2)

    def client_config(self):
        from meter_oracle.mqtt import MqttConfig

        password = None
        if self.password_env is not None:
            password = os.environ.get(self.password_env)
            if password is None:
                raise ValueError(f"mqtt: environment variable {self.password_env} is not set")
        return MqttConfig(**self.model_dump(exclude={"password_env"}), password=password)


class MetricsSection(Strict):
    """[metrics]: the Prometheus endpoint (meter_oracle.metrics)."""

    host: str = "127.0.0.1"
    port: int = Field(9465, ge=1, le=65535)


class KeyRotation(EncryptedKey):
    """[meters.rotation]: the meter's next key, as the meter point operator rotated it on chain
    (MeterRegistry.rotateKey), and the first period it signs."""

    from_period: int = Field(ge=1)


class MeterConfig(EncryptedKey):
    """A meter's signing key: an encrypted keystore (`meter-oracle keys new`) and its password."""

    meter: MeterLabel  # scheme:identity, e.g. "dsmr:4B384547303034303436333935353037"
    max_power_w: int = Field(50_000, gt=0)  # readings implying more power are refused
    rotation: KeyRotation | None = None  # signs the readings of rotation.from_period on

    @property
    def key(self) -> MeterKey:
        rotation = (self.rotation.from_period, self.rotation.private_key) if self.rotation else None
        return MeterKey(self.meter, self.private_key, self.max_power_w, rotation)


class OracleConfig(TomlSettings):
    model_config = SettingsConfigDict(env_prefix="METER_ORACLE_")

    deployment: DeploymentFile  # the deployment file's path: chain id, PeriodLedger, period length
    outbox: ConfigPath = ConfigPath("oracle.sqlite")  # signed readings not yet delivered to every node
    max_skew_s: float = Field(300.0, ge=0)  # refuse frames whose meter clock is further off
    signer: Literal["rust_core", "eth-account"] = "rust_core"
    nodes: list[NodeConfig] = Field(default_factory=list)
    meters: list[MeterConfig] = Field(default_factory=list)
    devices: list[DeviceConfig] = Field(default_factory=list)
    mqtt: MqttSection | None = None  # readings and health to an MQTT broker
    metrics: MetricsSection | None = None  # the Prometheus endpoint

    @model_validator(mode="after")
    def _check(self) -> OracleConfig:
        for what, names in (("node", [n.name for n in self.nodes]), ("device", [d.name for d in self.devices]),
                            ("meter", [m.meter for m in self.meters])):
            doubles = sorted({n for n in names if names.count(n) > 1})
            if doubles:
                raise ValueError(f"{what} {', '.join(doubles)} listed twice")
        return self

    @property
    def domain(self) -> Domain:
        return Domain.parse(self.deployment.chain_id, self.deployment.ledger)

    @property
    def period_seconds(self) -> int:
        return self.deployment.period_seconds

    @property
    def keys(self) -> list[MeterKey]:
        return [m.key for m in self.meters]


def load_config(path) -> OracleConfig:
    """Reads and validates oracle.toml; raises ConfigError naming the file, key and reason."""
    return load_settings(OracleConfig, path)
