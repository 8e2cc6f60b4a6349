"""The contract ABIs the node and the scripts use, shipped with the package (node/abi/*.json), so
that an installed node runs without the repository's build folder.

They are written from ape's compiled output; after changing a contract, run

    ape compile --force && python -m node.abis

tests/node/test_node_abis.py fails while a committed ABI differs from the compiled one.
"""
from __future__ import annotations

import json
import sys
from functools import cache
from importlib import resources
from pathlib import Path

SHIPPED = ("MeterRegistry", "PeriodLedger", "Grid")
ABI_DIR = Path(__file__).resolve().parent / "abi"
BUILD_MANIFEST = Path(__file__).resolve().parent.parent / ".build" / "__local__.json"
REGENERATE = "ape compile --force && python -m node.abis"


@cache
def abi(name: str) -> list[dict]:
    """The shipped ABI of MeterRegistry, PeriodLedger or Grid."""
    if name not in SHIPPED:
        raise KeyError(f"no shipped ABI for {name!r} (shipped: {', '.join(SHIPPED)})")
    return json.loads(resources.files("node").joinpath("abi", f"{name}.json").read_text())


@cache
def contract_type(name: str) -> dict:
    """ABI and bytecode of a compiled contract from ape's build manifest (a source checkout
    after `ape compile`: what deploys contracts without ape needs; the node itself uses abi())."""
    try:
        manifest = json.loads(BUILD_MANIFEST.read_text())
    except OSError as e:
        raise RuntimeError(f"{BUILD_MANIFEST} missing: run `ape compile` first ({e.strerror})") from None
    try:
        return manifest["contractTypes"][name]
    except KeyError:
        raise RuntimeError(f"contract {name} not in {BUILD_MANIFEST}: run `ape compile`") from None


def render(name: str) -> str:
    """The file text of a shipped ABI, as written from the compiled contract."""
    return json.dumps(contract_type(name)["abi"], indent=1, sort_keys=True) + "\n"


def write() -> list[Path]:
    ABI_DIR.mkdir(exist_ok=True)
    written = []
    for name in SHIPPED:
        path = ABI_DIR / f"{name}.json"
        path.write_text(render(name))
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write():
        print(p.relative_to(Path.cwd()) if p.is_relative_to(Path.cwd()) else p)
    sys.exit(0)
