"""Node configuration, read from a TOML file (`settlement-node run --config node.toml`).

```toml
rpc_url = "http://127.0.0.1:8545"
registry = "0x..."            # MeterRegistry
ledger = "0x..."              # PeriodLedger
operator_key_file = "keys/operator.hex"   # 32-byte hex private key of this operator
archive = "sqlite:///var/node-a.db"       # or "postgresql://user:pw@host:port/db"
listen = "127.0.0.1:8700"
peers = ["http://127.0.0.1:8701", "http://127.0.0.1:8702"]
grace_seconds = 2.0           # wait after the period boundary before closing it
takeover_seconds = 3.0        # each further rank in the submitter rotation waits this longer
clock_skew_seconds = 30       # how far in the future a reading's timestamp may lie
poll_seconds = 0.5
grids = ["0x..."]             # Grid contracts to roll up once periods are final, innermost first
```
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class NodeConfig:
    rpc_url: str
    registry: str
    ledger: str
    operator_key: bytes
    archive: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 8700
    peers: tuple[str, ...] = field(default_factory=tuple)
    grace_seconds: float = 2.0
    takeover_seconds: float = 3.0
    clock_skew_seconds: float = 30.0
    poll_seconds: float = 0.5
    name: str = "node"
    grids: tuple[str, ...] = field(default_factory=tuple)


def load_config(path: str | Path) -> NodeConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read config {path}: {e}") from None
    base = path.parent

    def need(key: str):
        if key not in raw:
            raise ConfigError(f"config {path}: missing key {key!r}")
        return raw[key]

    key_file = base / need("operator_key_file")
    try:
        key_hex = key_file.read_text().strip().removeprefix("0x")
        key = bytes.fromhex(key_hex)
    except (OSError, ValueError) as e:
        raise ConfigError(f"config {path}: operator key file {key_file}: {e}") from None
    if len(key) != 32:
        raise ConfigError(f"config {path}: operator key in {key_file} is {len(key)} bytes, expected 32")
    archive = str(need("archive"))
    if archive.startswith("sqlite:///") and not archive.startswith("sqlite:////"):
        archive = "sqlite:///" + str((base / archive.removeprefix("sqlite:///")).resolve())
    host, _, port = str(raw.get("listen", "127.0.0.1:8700")).rpartition(":")
    return NodeConfig(
        rpc_url=str(need("rpc_url")),
        registry=str(need("registry")),
        ledger=str(need("ledger")),
        operator_key=key,
        archive=archive,
        listen_host=host or "127.0.0.1",
        listen_port=int(port),
        peers=tuple(str(p).rstrip("/") for p in raw.get("peers", [])),
        grace_seconds=float(raw.get("grace_seconds", 2.0)),
        takeover_seconds=float(raw.get("takeover_seconds", 3.0)),
        clock_skew_seconds=float(raw.get("clock_skew_seconds", 30.0)),
        poll_seconds=float(raw.get("poll_seconds", 0.5)),
        name=str(raw.get("name", path.stem)),
        grids=tuple(str(g) for g in raw.get("grids", [])),
    )
