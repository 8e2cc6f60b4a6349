"""One reading through every layer, each part real: a captured DSMR telegram from
shared/testdata served over TCP, parsed, checked and signed by a `meter-oracle run` process,
delivered to a `settlement-node run` process, put in a one-reading batch, committed to contracts
deployed by the ape deploy code on anvil, finalized, and re-checked by the audit."""
from __future__ import annotations

import secrets
import sqlite3
import time
from pathlib import Path

from eth_account import Account

from meter_oracle.simulators.stream_server import TcpFrameServer
from rust_core.wire import group_id, meter_label_id
from scripts._audit import audit, export_archive, read_chain, read_export
from scripts._deployment import ApeTransactor, MeterRow, NetworkSpec, deploy, register
from scripts._processes import start_nodes, start_oracle

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "dsmr"
ISKRA = "dsmr:4B384547303034303436333935353037"
PERIOD_S = 3


def test_a_captured_telegram_is_settled_on_chain_and_audited(wall_clock, project, chain, accounts, tmp_path):
    good = (TESTDATA / "v5_iskra.txt").read_bytes()
    corrupt = (TESTDATA / "v5_iskra_corrupted_crc.txt").read_bytes()
    admin, operator = accounts[0], accounts[4]
    dep = deploy(ApeTransactor(admin), NetworkSpec(PERIOD_S, 2, 1, (operator.address,), (admin.address,)))
    meter_key = secrets.token_bytes(32)
    frames = iter([good, corrupt] * 1000)
    server = TcpFrameServer(lambda now: next(frames), interval_s=0.5).start()
    processes = []
    try:
        dep.save(tmp_path / "deployment.json")  # what the node and oracle configs point at
        ((node, node_url),) = start_nodes(tmp_path, chain.provider.uri, tmp_path / "deployment.json",
                                          [operator.private_key], grace_seconds=1.0, takeover_seconds=PERIOD_S)
        processes.append(node)
        # the capture's own clock is of 2017: the skew check is opened for the replay
        processes.append(start_oracle(tmp_path, "oracle", deployment=tmp_path / "deployment.json",
                                      max_skew_s=10 * 365 * 86400, nodes=[node_url],
                                      meters=[{"label": ISKRA, "key": meter_key, "url": server.url,
                                               "interval_s": 1, "max_power_w": 50_000}]))
        period = int(time.time() // PERIOD_S) + 2
        register(ApeTransactor(admin), dep, [MeterRow(ISKRA, Account.from_key(meter_key).address, "prosumer", "thin",
                                                period, 6_800_000, 2_400_000)])
        ledger = project.PeriodLedger.at(dep.ledger)
        deadline = time.time() + 90
        while ledger.getBatch(period, group_id("thin")).status != 2:
            for p in processes:
                p.check()
            assert time.time() < deadline, f"period {period} not final; logs in {tmp_path}"
            time.sleep(0.5)
    finally:
        for p in processes:
            p.stop()
        server.stop()

    batch = ledger.getBatch(period, group_id("thin"))
    assert batch.count == 1  # one meter, its latest reading of the period
    assert (batch.totalImportMwh, batch.totalExportMwh) == (6_825_000 - 6_800_000, 2_444_000 - 2_400_000)

    # the corrupt telegram was refused naming the CRC, and the good readings around it were kept
    oracle_log = (tmp_path / "oracle.log").read_text()
    assert "CRC mismatch" in oracle_log
    with sqlite3.connect(tmp_path / "node-a.db") as db:
        frames_kept = db.execute("SELECT raw_frame, import_wh FROM readings WHERE meter_id = ?",
                                 (meter_label_id(ISKRA),)).fetchall()
    assert len(frames_kept) >= 2
    assert all(bytes(raw) == good and wh == "6825.000" for raw, wh in frames_kept)

    export = tmp_path / "export.jsonl"
    export_archive(f"sqlite:///{tmp_path / 'node-a.db'}", export)
    result = audit(read_chain(chain.provider.web3, dep), read_export(export))
    assert result.ok, result.findings
    assert result.leaves >= 1 and period in result.periods
