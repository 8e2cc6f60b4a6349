"""meter-oracle's commands through click's test runner: keys new|import|show, check-config,
help texts and --version, and the refusals with their exit status."""
from __future__ import annotations

import json
from importlib.metadata import version

from click.testing import CliRunner
from eth_account import Account
from oracle_support import DOMAIN, write_deployment

from meter_oracle.cli import main
from meter_oracle.config import load_config
from meter_oracle.reading import meter_id
from rust_core.cli_support import undocumented
from rust_core.keystore import read_keystore, write_keystore

METER = "dsmr:4B384547303034303436333935353037"
KEY = bytes.fromhex("5c" * 32)


def cli(*args: str, input: str | None = None):
    return CliRunner(mix_stderr=False).invoke(main, list(args), input=input, prog_name="meter-oracle")


def test_help_on_every_command_and_version():
    top = cli("--help")
    assert top.exit_code == 0 and "meter oracle" in top.output
    for args in (["run"], ["read"], ["parse"], ["check-config"], ["keys"], ["keys", "new"], ["keys", "import"],
                 ["keys", "show"]):
        result = cli(*args, "--help")
        assert result.exit_code == 0, args
        assert len(result.output.split("\n\n")[1].strip()) > 20, args  # a real sentence, not just the usage
    assert undocumented(main, "meter-oracle") == []
    shown = cli("--version")
    assert (shown.exit_code, shown.output.strip()) == (0, f"meter-oracle {version('energy-settlement')}")


def test_keys_new_writes_an_encrypted_keystore_for_the_meter(tmp_path):
    (tmp_path / "pw").write_text("meter password\n")
    new = cli("keys", "new", str(tmp_path / "p1.json"), "--meter", METER, "--password-file", str(tmp_path / "pw"))
    assert new.exit_code == 0, new.stderr
    lines = dict(line.split(None, 1) for line in new.output.strip().splitlines())
    assert lines["meter"] == METER and lines["meter_id"] == "0x" + meter_id("dsmr", METER[5:]).hex()
    key = read_keystore(tmp_path / "p1.json", "meter password")
    assert Account.from_key(key).address == lines["address"]
    assert key.hex() not in (tmp_path / "p1.json").read_text() and key.hex() not in new.output
    assert json.loads((tmp_path / "p1.json").read_text())["meter"] == METER


def test_keys_import_from_stdin_and_show(tmp_path):
    imported = cli("keys", "import", str(tmp_path / "k.json"), "--meter", "sml:0a01aabb", "--key-file", "-",
                   input="0x" + KEY.hex() + "\nsecret\nsecret\n")
    assert imported.exit_code == 0, imported.stderr
    assert read_keystore(tmp_path / "k.json", "secret") == KEY
    show = cli("keys", "show", str(tmp_path / "k.json"))
    assert show.exit_code == 0
    assert show.output.splitlines() == [
        "meter       sml:0a01aabb", f"meter_id    0x{meter_id('sml', '0a01aabb').hex()}",
        f"address     {Account.from_key(KEY).address}"]
    assert KEY.hex() not in show.output


def test_keys_import_from_a_file(tmp_path):
    (tmp_path / "key.hex").write_text(KEY.hex())
    (tmp_path / "pw").write_text("x\n")
    result = cli("keys", "import", str(tmp_path / "k.json"), "--meter", METER, "--key-file", str(tmp_path / "key.hex"),
                 "--password-file", str(tmp_path / "pw"))
    assert result.exit_code == 0 and Account.from_key(KEY).address in result.output


def test_keys_show_of_a_keystore_without_a_meter(tmp_path):
    write_keystore(tmp_path / "plain.json", KEY, "pw", iterations=1000)
    show = cli("keys", "show", str(tmp_path / "plain.json"))
    assert show.exit_code == 0 and "not recorded" in show.output and Account.from_key(KEY).address in show.output


def test_keys_refusals(tmp_path):
    (tmp_path / "pw").write_text("x\n")
    pw = ["--password-file", str(tmp_path / "pw")]
    bad_label = cli("keys", "new", str(tmp_path / "a.json"), "--meter", "modbus:1", *pw)
    assert bad_label.exit_code == 2 and "expected scheme:identity" in bad_label.stderr
    (tmp_path / "short.hex").write_text("ab" * 31)
    short = cli("keys", "import", str(tmp_path / "a.json"), "--meter", METER, "--key-file", str(tmp_path / "short.hex"), *pw)
    assert short.exit_code == 2 and "31 bytes" in short.stderr
    (tmp_path / "junk.hex").write_text("not a key")
    junk = cli("keys", "import", str(tmp_path / "a.json"), "--meter", METER, "--key-file", str(tmp_path / "junk.hex"), *pw)
    assert junk.exit_code == 2 and "not hexadecimal" in junk.stderr
    (tmp_path / "empty").write_text("\n")
    empty = cli("keys", "new", str(tmp_path / "a.json"), "--meter", METER, "--password-file", str(tmp_path / "empty"))
    assert empty.exit_code == 2 and "empty password" in empty.stderr
    nofolder = cli("keys", "new", str(tmp_path / "no" / "a.json"), "--meter", METER, *pw)
    assert nofolder.exit_code == 2 and "does not exist" in nofolder.stderr
    assert not (tmp_path / "a.json").exists()
    write_keystore(tmp_path / "a.json", KEY, "pw", iterations=1000)
    before = (tmp_path / "a.json").read_text()
    again = cli("keys", "new", str(tmp_path / "a.json"), "--meter", METER, *pw)
    assert again.exit_code == 2 and "never overwritten" in again.stderr and (tmp_path / "a.json").read_text() == before
    missing = cli("keys", "show", str(tmp_path / "gone.json"))
    assert missing.exit_code == 2 and "No such file" in missing.stderr


def test_a_new_keystore_is_what_the_config_reads(tmp_path):
    (tmp_path / "pw").write_text("pw\n")
    assert cli("keys", "new", str(tmp_path / "m.json"), "--meter", METER, "--password-file", str(tmp_path / "pw")).exit_code == 0
    write_deployment(tmp_path)
    (tmp_path / "oracle.toml").write_text(
        f'deployment = "deployment.json"\n[[meters]]\nmeter = "{METER}"\nkeystore = "m.json"\npassword_file = "pw"\n'
        '[[devices]]\nprotocol = "dsmr"\nurl = "socket://127.0.0.1:1"\ninterval_s = 10\n'
        '[[nodes]]\nname = "op1"\nurl = "http://127.0.0.1:8700"\n')
    [key] = load_config(tmp_path / "oracle.toml").keys
    check = cli("check-config", "--config", str(tmp_path / "oracle.toml"))
    assert check.exit_code == 0, check.stderr
    assert f"domain      chain {DOMAIN.chain_id}, PeriodLedger 0x" in check.output
    assert f"meter       {METER} key {Account.from_key(key.private_key).address}" in check.output
    assert "device      socket://127.0.0.1:1 dsmr socket://127.0.0.1:1 every 10 s" in check.output
    assert "node        op1 http://127.0.0.1:8700" in check.output


def test_check_config_and_run_exit_2_with_the_reason(tmp_path):
    write_deployment(tmp_path)
    (tmp_path / "oracle.toml").write_text('deployment = "deployment.json"\nmax_skew = 5\n')
    for command in ("check-config", "run"):
        result = cli(command, "--config", str(tmp_path / "oracle.toml"))
        assert result.exit_code == 2
        assert result.stderr == f"Error: {tmp_path}/oracle.toml: max_skew: unknown key (a typo?)\n"
    usage = cli("run")
    assert usage.exit_code == 2 and "Missing option '--config'" in usage.stderr
