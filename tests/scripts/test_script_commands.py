"""The README's ape scripts as an operator runs them: `ape run NAME ...` as a command, its exit
status and its help text (a real deploy runs in test_thin_path and the demo test)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts._deployment import NetworkSpec, SpecError

REPO = Path(__file__).resolve().parents[2]
APE = Path(sys.executable).parent / "ape"
SCRIPTS = {
    "deploy": "Deploy a settlement network and write its deployment file.",
    "register": "Register a meter point operator's meters from a CSV file.",
    "challenge": "Prove false batches while their challenge window is open.",
    "demo": "Run the neighbourhood demo on a local chain.",
    "meter": "Decommission, rotate the key of or exchange a meter.",
    "operators": "Change the settlement operators and quorum as one new epoch.",
}


def ape_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(APE), "run", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_ape_run_lists_every_script_with_what_it_does():
    listing = ape_run("--help")
    assert listing.returncode == 0, listing.stderr
    for name, summary in SCRIPTS.items():
        assert any(line.split() == [name, *summary.split()] for line in listing.stdout.splitlines()), (name, listing.stdout)
    assert "audit" in listing.stdout and "Exception while parsing script" not in listing.stderr


@pytest.mark.parametrize("name", [*SCRIPTS, "audit"])
def test_each_script_explains_itself_and_its_options(name):
    result = ape_run(name, "--help")
    assert result.returncode == 0, result.stderr
    assert f"Usage: ape run {name} [OPTIONS]" in result.stdout
    if name in SCRIPTS:
        assert SCRIPTS[name] in result.stdout
        options = result.stdout.split("Options:")[1]
        for line in options.splitlines():  # every option of the script's own has a help text
            words = line.split()
            if words and words[0].startswith("--") and len(words) <= 2 and "--network" not in words[0]:
                pytest.fail(f"ape run {name}: option {words[0]} has no help text")


@pytest.mark.parametrize("command", ["decommission", "rotate-key", "exchange"])
def test_each_meter_change_explains_its_options(command):
    result = ape_run("meter", command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"Usage: ape run meter {command} [OPTIONS]" in result.stdout
    assert "--deployment PATH" in result.stdout and "--account TEXT" in result.stdout and "[required]" in result.stdout


def test_a_missing_option_is_a_usage_error():
    result = ape_run("deploy", "--out", "x.json")
    assert result.returncode == 2 and "Missing option '--spec'" in result.stderr


def test_a_missing_deployment_file_is_named(tmp_path):
    (tmp_path / "meters.csv").write_text("meter,key,kind,group,active_from,baseline_import_wh,baseline_export_wh\n")
    result = ape_run("register", "--deployment", str(tmp_path / "none.json"), "--csv", str(tmp_path / "meters.csv"))
    assert result.returncode == 2 and "none.json' does not exist" in result.stderr


def test_an_unknown_script():
    result = ape_run("deploi")
    assert result.returncode == 2 and "No such command 'deploi'" in result.stderr


def test_the_example_network_spec_loads():
    spec = NetworkSpec.from_toml(REPO / "examples" / "network.toml")
    assert (spec.period_seconds, spec.quorum, len(spec.operators)) == (900, 2, 3)
    assert [g.name for g in spec.grids] == ["street-1", "district"] and spec.grids[1].grids == ("street-1",)


def test_a_network_spec_key_with_a_typo_is_named(tmp_path):
    text = (REPO / "examples" / "network.toml").read_text()
    (tmp_path / "typo.toml").write_text(text.replace("challenge_window_seconds", "challenge_windows_seconds", 1))
    with pytest.raises(SpecError, match=r"typo.toml: unknown key\(s\) challenge_windows_seconds \(known: .*"):
        NetworkSpec.from_toml(tmp_path / "typo.toml")
    (tmp_path / "grid.toml").write_text(text.replace("loss_bps", "loss_bp", 1))
    with pytest.raises(SpecError, match=r"unknown key\(s\) grids\[\d\]\.loss_bp "):
        NetworkSpec.from_toml(tmp_path / "grid.toml")


def test_the_admin_transfer_delay_defaults_to_two_days_and_can_be_set(tmp_path):
    assert NetworkSpec.from_toml(REPO / "examples" / "network.toml").admin_transfer_delay_seconds == 2 * 86400
    text = (REPO / "examples" / "network.toml").read_text()
    (tmp_path / "delay.toml").write_text(text.replace("admin_transfer_delay_seconds = 172800",
                                                      "admin_transfer_delay_seconds = 600"))
    assert NetworkSpec.from_toml(tmp_path / "delay.toml").admin_transfer_delay_seconds == 600
    lines = [ln for ln in text.splitlines() if not ln.startswith("admin_transfer_delay_seconds")]
    (tmp_path / "default.toml").write_text("\n".join(lines))
    assert NetworkSpec.from_toml(tmp_path / "default.toml").admin_transfer_delay_seconds == 2 * 86400
