"""The neighbourhood demo on the 3-signer Clique network, as the README runs it: a few periods
of households, boundary meters, two nested grids rolled up, three nodes at 2 confirmations, and
the audit (reading the chain 2 blocks deep: the tip of a Clique chain may yet be replaced) with
no finding. Before, the audit read up to the head in several requests and reported roll-ups
"without a final boundary batch" / "before member grid" when the tip changed between them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from scripts._processes import ROOT

pytestmark = pytest.mark.network

# `ape run` from this clone's scripts/: ape drops the already imported scripts package's folder
# from sys.path before importing the script, so when the venv also lists another clone (a git
# worktree sharing the venv of the clone it was made from), that clone's scripts would run.
APE_HERE = f"""import sys
from pathlib import Path
root = Path({str(ROOT)!r})
sys.path = [p for p in sys.path if not (Path(p or ".").resolve() != root and (Path(p or ".") / "scripts" / "_demo.py").exists())]
from ape._cli import cli
sys.argv = ["ape", *sys.argv[1:]]
cli()
"""


def test_the_demo_settles_and_audits_clean_on_the_clique_network(network, tmp_path):
    work = tmp_path / "demo"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", APE_HERE, "run", "demo",
                        "--network", f"ethereum:settlement:{network.urls[0]}", "--periods", "3",
                        "--period-seconds", "12", "--households", "4", "--workdir", str(work)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "periods settled        3 of 3" in out and "audit                  PASS" in out
    findings = json.loads((work / "report" / "findings.json").read_text())
    assert findings["findings"] == [], findings["findings"]
    assert findings["provenance"]["chain_id"] == 4242
    for node in ("node-a", "node-b", "node-c"):
        assert "confirmations = 2" in (work / f"{node}.toml").read_text()
