"""One bytecode for anvil, Clique and the field engines: every compiled contract targets paris,
so none holds an opcode introduced later (PUSH0 from Shanghai; TLOAD, TSTORE, MCOPY, BLOBHASH,
BLOBBASEFEE from Cancun)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

MANIFEST = Path(__file__).resolve().parents[2] / ".build" / "__local__.json"
POST_PARIS = {0x5F: "PUSH0", 0x5C: "TLOAD", 0x5D: "TSTORE", 0x5E: "MCOPY", 0x49: "BLOBHASH", 0x4A: "BLOBBASEFEE"}


def opcodes(code: bytes):
    """The opcodes of `code`, skipping PUSH1..PUSH32 immediates; stops at the metadata's start
    only implicitly (its bytes are data after INVALID and may look like anything, so the CBOR
    tail whose length the last two bytes give is cut off first)."""
    if len(code) >= 2:
        code = code[: len(code) - 2 - int.from_bytes(code[-2:], "big")]
    i = 0
    while i < len(code):
        op = code[i]
        yield i, op
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)


def contract_types() -> dict:
    if not MANIFEST.exists():
        pytest.skip("contracts not compiled (ape compile)")
    return json.loads(MANIFEST.read_text())["contractTypes"]


def test_opcode_walker_finds_push0_and_skips_immediates():
    # PUSH1 0x5f (an immediate, not PUSH0), then a real PUSH0; 0x0000 metadata length
    assert [op for _, op in opcodes(bytes.fromhex("605f5f") + b"\x00\x00")] == [0x60, 0x5F]


def test_compiled_contracts_have_no_post_paris_opcodes():
    types = contract_types()
    assert {"MeterRegistry", "PeriodLedger", "Grid"} <= set(types)
    creation = {n: bytes.fromhex((c.get("deploymentBytecode") or {}).get("bytecode", "0x")[2:]) for n, c in types.items()}
    for name, ct in types.items():
        for part in ("deploymentBytecode", "runtimeBytecode"):
            code = bytes.fromhex((ct.get(part) or {}).get("bytecode", "0x")[2:])
            # a contract that deploys another (PeriodLedger: RevealTree) holds its creation code as
            # data, metadata included: that is walked as its own contract type
            for other, sub in creation.items():
                if other != name and len(sub) > 2 and sub in code:
                    code = code.replace(sub, b"")
            found = [(at, POST_PARIS[op]) for at, op in opcodes(code) if op in POST_PARIS]
            assert not found, f"{name} {part}: {found[:3]} (compile for paris: ape-config.yaml solidity.evm_version)"


def test_runtime_code_fits_eip170():
    """EIP-170: no deployed contract may exceed 24,576 bytes of runtime code."""
    for name, ct in contract_types().items():
        code = bytes.fromhex((ct.get("runtimeBytecode") or {}).get("bytecode", "0x")[2:])
        assert len(code) <= 24_576, f"{name}: {len(code)} bytes of runtime code"
