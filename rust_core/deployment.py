"""The deployment file: what `ape run deploy` wrote, and the one place that every other tool (node,
oracle, scripts, audit) takes the chain id, the contract addresses and the period length from.

```json
{"chain_id": 31337, "registry": "0x...", "ledger": "0x...", "period_seconds": 900,
 "challenge_window_seconds": 3600, "first_block": 1,
 "grids": {"street-1": "0x...", "district": "0x..."}, "groups": {"community-a": "0x<group id>"}}
```
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from eth_utils import to_checksum_address
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_settings import NoDecode

from rust_core.settings import describe, relative_to_config

# Strict: eth-pydantic-types' Address left-pads short hex ("0x12"), which in a file typed by hand
# is always a mistake.
Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$"), AfterValidator(to_checksum_address)]
Bytes32Hex = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$")]


class DeploymentError(ValueError):
    """A deployment file that cannot be read (names the file and what is wrong)."""


class Deployment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain_id: int = Field(gt=0)
    registry: Address  # MeterRegistry
    ledger: Address  # PeriodLedger, the EIP-712 verifying contract of readings
    period_seconds: int = Field(gt=0)
    challenge_window_seconds: int = Field(ge=0)
    first_block: int = Field(ge=0)  # where the audit starts reading logs
    grids: dict[str, Address] = Field(default_factory=dict)  # name -> Grid, inner grids first
    groups: dict[str, Bytes32Hex] = Field(default_factory=dict)  # name -> 0x group id

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=1) + "\n")

    @classmethod
    def load(cls, path: Path | str) -> Deployment:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise DeploymentError(f"deployment file {path}: {e.strerror or e}") from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as e:
            raise DeploymentError(describe(e, f"deployment file {path}")) from None

    def grid_addresses(self, names: list[str] | None) -> tuple[str, ...]:
        """The named grids' addresses in the deployment's order (inner grids first); None: all."""
        if names is None:
            return tuple(self.grids.values())
        unknown = [n for n in names if n not in self.grids]
        if unknown:
            known = ", ".join(self.grids) or "none"
            raise DeploymentError(f"grid(s) {', '.join(unknown)} not in the deployment (it has: {known})")
        return tuple(a for n, a in self.grids.items() if n in names)


def _load_file(value):
    if isinstance(value, Deployment):
        return value
    if not isinstance(value, str | Path):
        raise ValueError(f"expected the path of a deployment file, got {value!r}")
    try:
        return Deployment.load(relative_to_config(Path(value)))
    except DeploymentError as e:
        raise ValueError(str(e)) from None


# A config key that names a deployment file (relative to the config file) and holds its contents.
DeploymentFile = Annotated[Deployment, NoDecode, BeforeValidator(_load_file)]  # NoDecode: a path in env, not JSON
