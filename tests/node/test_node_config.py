"""node.toml parsing: every missing or unusable setting is named; relative paths resolve
against the config file's folder."""
from __future__ import annotations

import pytest

from node.cli import main
from node.config import ConfigError, load_config

BASE = ('rpc_url = "http://127.0.0.1:8545"\nregistry = "0x' + "11" * 20 + '"\nledger = "0x' + "22" * 20 + '"\n'
        'operator_key_file = "op.key"\narchive = "sqlite:///data/node.db"\n')


def test_full_config(tmp_path):
    (tmp_path / "op.key").write_text("0x" + "ab" * 32 + "\n")
    cfg_file = tmp_path / "node.toml"
    cfg_file.write_text(BASE + 'listen = "0.0.0.0:9000"\npeers = ["http://b:1/", "http://c:2"]\ngrace_seconds = 1.5\n'
                        'grids = ["0x' + "33" * 20 + '"]\n')
    cfg = load_config(cfg_file)
    assert cfg.operator_key == bytes.fromhex("ab" * 32)
    assert cfg.archive == f"sqlite:///{tmp_path / 'data' / 'node.db'}"
    assert (cfg.listen_host, cfg.listen_port) == ("0.0.0.0", 9000)
    assert cfg.peers == ("http://b:1", "http://c:2") and cfg.grace_seconds == 1.5 and len(cfg.grids) == 1
    assert cfg.name == "node"


@pytest.mark.parametrize("text, key, match", [
    (BASE.replace('ledger = "0x' + "22" * 20 + '"\n', ""), "ab" * 32, "missing key 'ledger'"),
    (BASE, "ab" * 31, "is 31 bytes, expected 32"),
    (BASE, "zz", "operator key file"),
    ("rpc_url = ", "ab" * 32, "cannot read config"),
], ids=["missing-key", "short-operator-key", "operator-key-not-hex", "not-toml"])
def test_bad_config_is_named(tmp_path, text, key, match):
    (tmp_path / "op.key").write_text(key)
    (tmp_path / "node.toml").write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(tmp_path / "node.toml")


def test_cli_refuses_a_bad_config(tmp_path, capsys):
    (tmp_path / "node.toml").write_text(BASE)  # the key file is missing
    assert main(["run", "--config", str(tmp_path / "node.toml")]) == 2
    assert "operator key file" in capsys.readouterr().err
