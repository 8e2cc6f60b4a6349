"""node.toml: one settlement node (`settlement-node run --config node.toml`; examples/node.toml is
a commented one; `settlement-node check-config` validates one).

Unknown keys and wrong types are refused with the file, the key path and the reason
(rust_core.settings); relative paths are relative to the config file. Every key can be
overridden from the environment: `SETTLEMENT_NODE_` + the key in capitals, `__` between nested
keys, lists as JSON (`SETTLEMENT_NODE_LISTEN=0.0.0.0:8700`,
`SETTLEMENT_NODE_OPERATOR__PASSWORD_ENV=OP_PW`, `SETTLEMENT_NODE_PEERS='["http://b:8700"]'`).

The registry, ledger and grid addresses come from the deployment file `ape run deploy` wrote;
the operator key from an encrypted keystore (`settlement-node keys new`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator
from pydantic_settings import SettingsConfigDict

from node.chain import ChainOptions
from node.signer import LocalKeySigner
from rust_core.deployment import DeploymentError, DeploymentFile
from rust_core.keystore import EncryptedKey
from rust_core.settings import ConfigError, TomlSettings, load_settings, relative_to_config

__all__ = ["ConfigError", "NodeConfig", "load_config"]


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:8700, 0.0.0.0:8700, [::]:8700)")
    return value


def _peer(url: str) -> str:
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1].strip("/")) == 0:
        raise ValueError(f"{url!r} is not an http(s):// URL of a peer node")
    return url.rstrip("/")


def _archive(url: str) -> str:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return "sqlite:///" + str(relative_to_config(Path(path)).resolve()) if not path.startswith("/") else url
    if url.startswith(("postgresql://", "postgres://")):
        return url
    raise ValueError(f"{url!r}: expected sqlite:///path or postgresql://user:password@host:port/db")


Listen = Annotated[str, AfterValidator(_listen)]
PeerUrl = Annotated[str, AfterValidator(_peer)]
ArchiveUrl = Annotated[str, AfterValidator(_archive)]


class NodeConfig(TomlSettings):
    model_config = SettingsConfigDict(env_prefix="SETTLEMENT_NODE_")

    name: str = ""  # in the logs; defaults to the config file's name
    rpc_url: str = Field(min_length=1)  # the chain's JSON-RPC endpoint
    deployment: DeploymentFile  # the deployment file's path: registry, ledger, grids
    operator: EncryptedKey  # [operator] keystore + password_file or password_env
    archive: ArchiveUrl  # sqlite:///node.db (relative to this file) or postgresql://...
    listen: Listen = "127.0.0.1:8700"  # host:port of the HTTP API
    peers: list[PeerUrl] = Field(default_factory=list)  # the other operators' nodes
    grids: list[str] | None = None  # Grid names to roll up, from the deployment; absent: all of them
    grace_seconds: float = Field(2.0, ge=0)  # wait after the period boundary before closing it
    takeover_seconds: float = Field(3.0, gt=0)  # each further rank in the submitter rotation waits this longer
    clock_skew_seconds: float = Field(30.0, ge=0)  # how far in the future a reading's timestamp may lie
    poll_seconds: float = Field(0.5, gt=0)
    # agreement and health (issue 17)
    reconcile_retry_seconds: float = Field(2.0, gt=0)  # compare own header with the peers' this often until on chain
    max_clock_offset_seconds: float | None = Field(None, gt=0)  # /healthz degraded beyond; default max(grace, 1 s)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)  # largest delivery body read (413 beyond)
    max_delivery_readings: int = Field(2000, gt=0)  # most readings in one delivery (413 beyond)
    chain: ChainOptions = Field(default_factory=ChainOptions)  # [chain] confirmations, tx_type, fees

    @model_validator(mode="after")
    def _grids_exist(self) -> NodeConfig:
        try:
            self.deployment.grid_addresses(self.grids)
        except DeploymentError as e:
            raise ValueError(f"grids: {e}") from None
        return self

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def grid_addresses(self) -> tuple[str, ...]:
        """The Grid contracts to roll up once periods are final, innermost first."""
        return self.deployment.grid_addresses(self.grids)

    def signer(self) -> LocalKeySigner:
        return LocalKeySigner(self.operator.private_key)


def load_config(path: str | Path) -> NodeConfig:
    """Reads and validates node.toml; raises ConfigError naming the file, key and reason."""
    cfg = load_settings(NodeConfig, path)
    cfg.name = cfg.name or Path(path).stem
    return cfg
