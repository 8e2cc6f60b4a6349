"""The ABIs shipped in node/abi/ are what `ape compile` produced from the contracts: a contract
change without regenerating them fails here and says how to regenerate."""
from __future__ import annotations

import pytest

from node import abis


@pytest.mark.parametrize("name", abis.SHIPPED)
def test_shipped_abi_equals_the_compiled_one(name):
    assert abis.BUILD_MANIFEST.exists(), f"{abis.BUILD_MANIFEST} missing: run `ape compile --force` first"
    shipped = (abis.ABI_DIR / f"{name}.json").read_text()
    assert shipped == abis.render(name), f"node/abi/{name}.json is stale: run `{abis.REGENERATE}` and commit it"


def test_the_node_reads_abis_from_the_package_not_the_build_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(abis, "BUILD_MANIFEST", tmp_path / "absent.json")
    abis.contract_type.cache_clear()
    try:
        assert any(item.get("name") == "submitBatch" for item in abis.abi("PeriodLedger"))
        with pytest.raises(RuntimeError, match="run `ape compile` first"):
            abis.contract_type("PeriodLedger")
    finally:
        abis.contract_type.cache_clear()


def test_an_unshipped_contract_is_named():
    with pytest.raises(KeyError, match="no shipped ABI for 'NaiveLedger'"):
        abis.abi("NaiveLedger")
