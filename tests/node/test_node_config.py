"""node.toml and the settlement-node command line: what a config accepts, each way it refuses
one (file, key path, reason), and every command through click's test runner."""
from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_account import Account

from node.cli import main
from node.config import ConfigError, load_config
from rust_core.cli_support import undocumented
from rust_core.deployment import Deployment
from rust_core.keystore import read_keystore, write_keystore

REPO = Path(__file__).resolve().parents[2]
KEY = bytes.fromhex("ab" * 32)
ADDRESS = "0x" + "11" * 20
GRIDS = {"street-1": "0x" + "33" * 20, "district": "0x" + "44" * 20}
BASE = ('rpc_url = "http://127.0.0.1:8545"\ndeployment = "deployment.json"\narchive = "sqlite:///data/node.db"\n'
        '[operator]\nkeystore = "op.json"\npassword_file = "op.pw"\n')


@pytest.fixture
def node_dir(tmp_path):
    Deployment(chain_id=31337, registry=ADDRESS, ledger="0x" + "22" * 20, period_seconds=900,
               challenge_window_seconds=3600, first_block=5, grids=GRIDS).save(tmp_path / "deployment.json")
    write_keystore(tmp_path / "op.json", KEY, "secret", iterations=1000)
    (tmp_path / "op.pw").write_text("secret\n")
    return tmp_path


def config(folder: Path, top: str = "", operator: str = "") -> Path:
    """BASE with `top` keys before the [operator] table and `operator` keys inside it."""
    head, table = BASE.split("[operator]\n")
    path = folder / "node.toml"
    path.write_text(head + top + "[operator]\n" + table + operator)
    return path


def refused(path) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path)
    return str(e.value)


def test_full_config(node_dir):
    cfg = load_config(config(node_dir, 'listen = "0.0.0.0:9000"\npeers = ["http://b:1/", "http://c:2"]\n'
                                       'grace_seconds = 1.5\ngrids = ["district"]\n'))
    assert cfg.signer().address == Account.from_key(KEY).address
    assert cfg.archive == f"sqlite:///{node_dir / 'data' / 'node.db'}"  # relative to the config file
    assert (cfg.listen_host, cfg.listen_port) == ("0.0.0.0", 9000)
    assert cfg.peers == ["http://b:1", "http://c:2"] and cfg.grace_seconds == 1.5
    assert cfg.grid_addresses == (GRIDS["district"],)
    assert (cfg.name, cfg.deployment.registry, cfg.deployment.ledger) == ("node", ADDRESS, "0x" + "22" * 20)


def test_agreement_and_limit_settings(node_dir):
    cfg = load_config(config(node_dir))
    assert (cfg.reconcile_retry_seconds, cfg.max_clock_offset_seconds) == (2.0, None)
    assert (cfg.max_body_bytes, cfg.max_delivery_readings) == (4 * 1024 * 1024, 2000)
    cfg = load_config(config(node_dir, "reconcile_retry_seconds = 5\nmax_clock_offset_seconds = 3\n"
                                       "max_body_bytes = 65536\nmax_delivery_readings = 10\n"))
    assert (cfg.reconcile_retry_seconds, cfg.max_clock_offset_seconds, cfg.max_body_bytes,
            cfg.max_delivery_readings) == (5, 3, 65536, 10)
    path = config(node_dir, "max_body_bytes = 0\n")
    assert refused(path).startswith(f"{path}: max_body_bytes: Input should be greater than 0")


def test_all_grids_innermost_first_by_default_and_none_on_request(node_dir):
    assert load_config(config(node_dir)).grid_addresses == (GRIDS["street-1"], GRIDS["district"])
    assert load_config(config(node_dir, "grids = []\n")).grid_addresses == ()
    # the deployment's order (inner grids first), whatever order the config names them in
    assert load_config(config(node_dir, 'grids = ["district", "street-1"]\n')).grid_addresses == tuple(GRIDS.values())


def test_a_typo_is_refused_not_ignored(node_dir):
    path = config(node_dir, "grace_second = 60\n")
    assert refused(path) == f"{path}: grace_second: unknown key (a typo?)"


def test_a_typo_in_a_table_names_its_path(node_dir):
    path = config(node_dir, operator='password_fille = "op.pw"\n')
    assert f"{path}: operator.password_fille: unknown key (a typo?)" in refused(path)


def test_a_bare_string_is_not_a_list_of_peers(node_dir):
    path = config(node_dir, 'peers = "http://127.0.0.1:8701"\n')
    assert refused(path) == f"{path}: peers: Input should be a valid list (got 'http://127.0.0.1:8701')"


@pytest.mark.parametrize("peer", ["127.0.0.1:8701", "ftp://x", "http://"])
def test_a_peer_must_be_an_http_url(node_dir, peer):
    path = config(node_dir, f'peers = ["http://ok:1", "{peer}"]\n')
    assert refused(path) == f"{path}: peers[1]: {peer!r} is not an http(s):// URL of a peer node"


@pytest.mark.parametrize("listen", ["0.0.0.0", ":8700", "host:http", "127.0.0.1:70000"])
def test_a_bad_listen_address_is_refused_clearly(node_dir, listen):
    path = config(node_dir, f'listen = "{listen}"\n')
    assert refused(path) == f"{path}: listen: {listen!r} is not host:port (e.g. 127.0.0.1:8700, 0.0.0.0:8700, [::]:8700)"


def test_ipv6_listen_address(node_dir):
    cfg = load_config(config(node_dir, 'listen = "[::1]:8700"\n'))
    assert (cfg.listen_host, cfg.listen_port) == ("::1", 8700)


def test_wrong_type_is_refused(node_dir):
    path = config(node_dir, 'takeover_seconds = "soon"\n')
    assert refused(path).startswith(f"{path}: takeover_seconds: Input should be a valid number")


def test_missing_keys_are_all_named(node_dir):
    path = node_dir / "node.toml"
    path.write_text('archive = "sqlite:///n.db"\n')
    assert refused(path).splitlines() == [f"{path}: {key}: Field required" for key in ("rpc_url", "deployment", "operator")]


def test_missing_deployment_file(node_dir):
    (node_dir / "deployment.json").unlink()
    path = config(node_dir)
    assert refused(path) == f"{path}: deployment: deployment file {node_dir}/deployment.json: No such file or directory"


def test_a_grid_not_in_the_deployment(node_dir):
    path = config(node_dir, 'grids = ["street-9"]\n')
    assert refused(path) == (f"{path}: (top level): grids: grid(s) street-9 not in the deployment "
                             "(it has: street-1, district)")


def test_an_unknown_archive_url(node_dir):
    path = node_dir / "node.toml"
    path.write_text(BASE.replace("sqlite:///data/node.db", "mysql://x"))
    assert refused(path) == f"{path}: archive: 'mysql://x': expected sqlite:///path or postgresql://user:password@host:port/db"


def test_wrong_keystore_password(node_dir):
    (node_dir / "op.pw").write_text("guess\n")
    path = config(node_dir)
    assert refused(path) == f"{path}: operator: cannot decrypt keystore {node_dir}/op.json: MAC mismatch"


def test_a_plaintext_key_file_is_no_longer_accepted(node_dir):
    (node_dir / "op.key").write_text(KEY.hex())
    path = config(node_dir, 'operator_key_file = "op.key"\n')
    assert f"{path}: operator_key_file: unknown key (a typo?)" in refused(path)


def test_environment_overrides_the_file(node_dir, monkeypatch):
    monkeypatch.setenv("SETTLEMENT_NODE_LISTEN", "0.0.0.0:9100")
    monkeypatch.setenv("SETTLEMENT_NODE_PEERS", '["http://peer-b:8700"]')
    monkeypatch.setenv("OP_PASSWORD", "secret")
    monkeypatch.setenv("SETTLEMENT_NODE_OPERATOR__PASSWORD_ENV", "OP_PASSWORD")
    path = node_dir / "node.toml"
    path.write_text(BASE.replace('password_file = "op.pw"\n', ""))
    cfg = load_config(path)
    assert (cfg.listen_port, cfg.peers, cfg.operator.password_env) == (9100, ["http://peer-b:8700"], "OP_PASSWORD")


def test_a_bad_environment_value_names_the_variable(node_dir, monkeypatch):
    monkeypatch.setenv("SETTLEMENT_NODE_LISTEN", "8700")
    path = config(node_dir)
    assert refused(path) == "environment variable SETTLEMENT_NODE_LISTEN: listen: '8700' is not host:port " \
                            "(e.g. 127.0.0.1:8700, 0.0.0.0:8700, [::]:8700)"


def test_the_example_config_loads(tmp_path, monkeypatch):
    """examples/node.toml as shipped, with its deployment file and keystore in place."""
    (tmp_path / "deployments").mkdir()
    Deployment(chain_id=31337, registry=ADDRESS, ledger="0x" + "22" * 20, period_seconds=900,
               challenge_window_seconds=3600, first_block=5, grids=GRIDS).save(tmp_path / "deployments" / "local.json")
    (tmp_path / "keys").mkdir()
    write_keystore(tmp_path / "keys" / "operator.json", KEY, "pw", iterations=1000)
    (tmp_path / "keys" / "operator.pw").write_text("pw\n")
    (tmp_path / "node.toml").write_text((REPO / "examples" / "node.toml").read_text())
    cfg = load_config(tmp_path / "node.toml")
    assert cfg.grid_addresses and cfg.peers and cfg.listen_port


# -- the command line ---------------------------------------------------------------------

def cli(*args: str, input: str | None = None, env: dict | None = None):
    return CliRunner(mix_stderr=False).invoke(main, list(args), input=input, env=env, prog_name="settlement-node")


def test_help_and_version():
    top = cli("--help")
    assert top.exit_code == 0 and "settlement node of an energy community" in top.output
    for command in ("run", "check-config", "keys"):
        assert command in top.output
    for args in (["run"], ["check-config"], ["keys"], ["keys", "new"], ["keys", "show"]):
        result = cli(*args, "--help")
        assert result.exit_code == 0 and len(result.output.split("\n\n")[1].strip()) > 20, args  # a real help text
    assert undocumented(main, "settlement-node") == []
    shown = cli("--version")
    assert shown.exit_code == 0 and shown.output.strip() == f"settlement-node {version('energy-settlement')}"


def test_check_config_prints_a_summary(node_dir):
    result = cli("check-config", "--config", str(config(node_dir, 'grids = ["street-1"]\n')))
    assert result.exit_code == 0, result.stderr
    out = result.output
    assert f"operator    {Account.from_key(KEY).address}" in out
    assert "chain       31337 at http://127.0.0.1:8545" in out and f"registry    {ADDRESS}" in out
    assert f"grids       street-1 {GRIDS['street-1']} (rolled up in this order)" in out


def test_check_config_exits_2_with_the_reason(node_dir):
    path = config(node_dir, "grace_second = 60\n")
    result = cli("check-config", "--config", str(path))
    assert result.exit_code == 2
    assert result.stderr == f"Error: {path}: grace_second: unknown key (a typo?)\n" and result.stdout == ""


def test_run_refuses_a_bad_config_before_starting(node_dir):
    (node_dir / "op.pw").write_text("guess\n")
    result = cli("run", "--config", str(config(node_dir)))
    assert result.exit_code == 2 and "cannot decrypt keystore" in result.stderr


def test_missing_option_is_a_usage_error():
    result = cli("check-config")
    assert result.exit_code == 2 and "Missing option '--config'" in result.stderr


def test_keys_new_and_show(tmp_path):
    (tmp_path / "pw").write_text("long password\n")
    new = cli("keys", "new", str(tmp_path / "op.json"), "--password-file", str(tmp_path / "pw"))
    assert new.exit_code == 0, new.stderr
    address = new.output.strip()
    data = json.loads((tmp_path / "op.json").read_text())
    assert data["address"].lower() == address[2:].lower() and (tmp_path / "op.json").stat().st_mode & 0o077 == 0
    show = cli("keys", "show", str(tmp_path / "op.json"))
    assert (show.exit_code, show.output.strip()) == (0, address)
    # the keystore is what a node config reads
    assert Account.from_key(read_keystore(tmp_path / "op.json", "long password")).address == address


def test_keys_new_asks_twice_for_the_password(tmp_path):
    result = cli("keys", "new", str(tmp_path / "op.json"), input="pw1\npw1\n")
    assert result.exit_code == 0 and result.output.strip().splitlines()[-1].startswith("0x")
    mismatch = cli("keys", "new", str(tmp_path / "other.json"), input="pw1\npw2\npw3\npw3\n")
    assert mismatch.exit_code == 0 and "Error: The two entered values do not match." in mismatch.output
    assert read_keystore(tmp_path / "other.json", "pw3")  # the confirmed password, not the first


def test_keys_new_never_overwrites(tmp_path):
    (tmp_path / "pw").write_text("x\n")
    (tmp_path / "op.json").write_text("{}")
    result = cli("keys", "new", str(tmp_path / "op.json"), "--password-file", str(tmp_path / "pw"))
    assert result.exit_code == 2 and "exists: a keystore is never overwritten" in result.stderr
    assert (tmp_path / "op.json").read_text() == "{}"


def test_keys_show_refuses_what_is_not_a_keystore(tmp_path):
    (tmp_path / "k.json").write_text('{"crypto": {}}')
    result = cli("keys", "show", str(tmp_path / "k.json"))
    assert result.exit_code == 2 and f"keystore {tmp_path}/k.json: not a keystore file" in result.stderr
    missing = cli("keys", "show", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "No such file" in missing.stderr
