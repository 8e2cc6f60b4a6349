"""Every benchmark runs exactly as the README says (`.venv/bin/python bench/NAME.py`, from the
clone's root, nothing else on PYTHONPATH) in its quick mode, and ends with its one JSON object,
so that no benchmark can rot unnoticed. A new bench/NAME.py is picked up by the glob."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
BENCHES = sorted(p.name for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))
TIMEOUT_S = 300  # a quick run takes seconds; this only stops a hung one


def test_every_benchmark_is_found():
    assert {"core.py", "node.py"} <= set(BENCHES)


@pytest.mark.parametrize("name", BENCHES)
def test_benchmark_quick_run_ends_with_one_json_object(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the script must find the packages itself
    proc = subprocess.Popen([str(VENV_PYTHON), f"bench/{name}", "--quick"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: the bench stops what it started (geth signers, nodes) and we get
        # what it printed, which says the stage it hung in
        proc.terminate()
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        pytest.fail(f"bench/{name} --quick still running after {TIMEOUT_S} s; output:\n{stdout}\n{stderr[-6000:]}")
    run = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert run.returncode == 0, f"bench/{name} --quick exited {run.returncode}:\n{run.stdout}\n{run.stderr}"
    lines = run.stdout.strip().splitlines()
    assert lines, f"bench/{name} --quick printed nothing"
    try:
        figures = json.loads(lines[-1])
    except ValueError:
        pytest.fail(f"bench/{name} --quick: the last stdout line is not JSON: {lines[-1]!r}")
    assert isinstance(figures, dict) and figures, f"bench/{name}: the last line is not one JSON object"
    assert figures.get("quick") is True, f"bench/{name}: the JSON object must say \"quick\": true in quick mode"
