"""oracle.toml: what it accepts, and each way it refuses a config (file, key path and reason)."""
from __future__ import annotations

import pytest
from oracle_support import DOMAIN, REPO, key_for, write_deployment

from meter_oracle.config import ConfigError, load_config
from meter_oracle.keystore import Keyring
from meter_oracle.reading import meter_id
from rust_core.keystore import write_keystore

KEY = key_for("config")
DEVICE = '[[devices]]\nprotocol = "dsmr"\nurl = "/dev/ttyUSB0"\n'


def config(tmp_path, body: str, deployment: str = 'deployment = "deployment.json"\n'):
    write_deployment(tmp_path, period_seconds=300)
    path = tmp_path / "oracle.toml"
    path.write_text(deployment + body)
    return path


def refused(path) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path)
    return str(e.value)


def test_loads_keys_devices_and_the_domain_from_the_deployment(tmp_path, monkeypatch):
    write_keystore(tmp_path / "m.json", KEY, "pw", iterations=1000)
    monkeypatch.setenv("METER_PW", "pw")
    cfg = load_config(config(tmp_path,
        '[[nodes]]\nname = "op1"\nurl = "http://127.0.0.1:8700"\n'
        '[[meters]]\nmeter = "sunspec:SimCo:BAT-1"\nkeystore = "m.json"\npassword_env = "METER_PW"\nmax_power_w = 11000\n'
        '[[devices]]\nprotocol = "sunspec"\nurl = "tcp://10.0.0.5:502"\nunit = 3\nserial = { baudrate = 9600 }\n'))
    [key] = cfg.keys
    assert (key.label, key.private_key, key.max_power_w) == ("sunspec:SimCo:BAT-1", KEY, 11000)
    assert Keyring(cfg.keys).key_for(meter_id("sunspec", "SimCo:BAT-1"), "x").private_key == KEY
    assert (cfg.domain, cfg.period_seconds) == (DOMAIN, 300)
    assert cfg.outbox == tmp_path / "oracle.sqlite"  # relative to the config file
    [device] = cfg.devices
    assert (device.name, device.unit, device.serial, device.interval_s) == ("tcp://10.0.0.5:502", 3, {"baudrate": 9600}, 60)
    assert [(n.name, n.url) for n in cfg.nodes] == [("op1", "http://127.0.0.1:8700")]


def test_unknown_key_is_refused_with_its_path(tmp_path):
    path = config(tmp_path, DEVICE * 2 + DEVICE.replace("\n", '\ninterval_second = 5\n', 1))
    assert refused(path) == f"{path}: devices[2].interval_second: unknown key (a typo?)"


def test_wrong_type_is_refused_with_path_and_value(tmp_path):
    path = config(tmp_path, DEVICE + 'interval_s = "fast"\n')
    assert refused(path) == (f"{path}: devices[0].interval_s: Input should be a valid number, "
                             "unable to parse string as a number (got 'fast')")


def test_every_error_is_listed_at_once(tmp_path):
    path = config(tmp_path, 'max_skew_s = -1\nsigner = "openssl"\n[[devices]]\nprotocol = "mbus"\n')
    lines = refused(path).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "max_skew_s", "signer", "devices[0].protocol", "devices[0].url"]
    assert "Input should be 'dsmr', 'sml', 'sunspec' or 'd0' (got 'mbus')" in lines[2] and "Field required" in lines[3]


def test_a_bare_string_for_a_list_is_refused(tmp_path):
    path = config(tmp_path, 'nodes = "http://127.0.0.1:8700"\n')
    assert refused(path) == f"{path}: nodes: Input should be a valid list (got 'http://127.0.0.1:8700')"


@pytest.mark.parametrize("deployment, error", [
    ("", "deployment: Field required"),
    ('deployment = "elsewhere.json"\n', "deployment: deployment file {tmp}/elsewhere.json: No such file or directory"),
    ('deployment = "oracle.toml"\n', "deployment: deployment file {tmp}/oracle.toml: (top level): Invalid JSON"),
])
def test_missing_or_broken_deployment_file(tmp_path, deployment, error):
    path = config(tmp_path, DEVICE, deployment)
    assert f"{path}: " + error.format(tmp=tmp_path) in refused(path)


def test_a_deployment_file_with_a_bad_address_names_the_key(tmp_path):
    path = config(tmp_path, DEVICE)
    dep = tmp_path / "deployment.json"
    dep.write_text(dep.read_text().replace('"ledger": "0x', '"ledger": "0x12'))
    assert f"{path}: deployment: deployment file {dep}: ledger: String should match pattern" in refused(path)


def test_wrong_keystore_password_is_refused(tmp_path):
    write_keystore(tmp_path / "m.json", KEY, "right", iterations=1000)
    (tmp_path / "m.pw").write_text("wrong\n")
    path = config(tmp_path, '[[meters]]\nmeter = "dsmr:X1"\nkeystore = "m.json"\npassword_file = "m.pw"\n')
    assert refused(path).startswith(f"{path}: meters[0]: cannot decrypt keystore {tmp_path}/m.json: MAC mismatch")


@pytest.mark.parametrize("meter, error", [
    ('meter = "modbus:x"\nkeystore = "m.json"\npassword_env = "P"\n', "meters[0].meter: String should match pattern"),
    ('meter = "dsmr:x"\nkeystore = "m.json"\n', "meters[0]: set exactly one of password_file or password_env"),
    ('meter = "dsmr:x"\nkeystore = "m.json"\npassword_env = "NOT_SET_ANYWHERE"\n',
     "meters[0]: environment variable NOT_SET_ANYWHERE (password_env) is not set"),
    ('meter = "dsmr:x"\nkeystore = "gone.json"\npassword_file = "m.pw"\n', "meters[0]: keystore {tmp}/gone.json: No such file"),
    ('meter = "dsmr:x"\nkeystore = "m.json"\npassword_file = "gone.pw"\n', "meters[0]: password file {tmp}/gone.pw: No such file"),
])
def test_meter_key_errors_name_the_meter(tmp_path, meter, error):
    write_keystore(tmp_path / "m.json", KEY, "pw", iterations=1000)
    (tmp_path / "m.pw").write_text("pw")
    path = config(tmp_path, "[[meters]]\n" + meter)
    assert f"{path}: " + error.format(tmp=tmp_path) in refused(path)


def test_names_must_be_unique(tmp_path):
    node = '[[nodes]]\nname = "op1"\nurl = "http://127.0.0.1:8700"\n'
    path = config(tmp_path, node * 2)
    assert refused(path) == f"{path}: (top level): node op1 listed twice"


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    path = config(tmp_path, 'max_skew_s = 60\n' + DEVICE)
    monkeypatch.setenv("METER_ORACLE_MAX_SKEW_S", "12.5")
    monkeypatch.setenv("METER_ORACLE_NODES", '[{"name": "op9", "url": "http://10.0.0.9:8700"}]')
    monkeypatch.setenv("METER_ORACLE_OUTBOX", "/var/lib/oracle/outbox.sqlite")
    cfg = load_config(path)
    assert cfg.max_skew_s == 12.5 and [n.name for n in cfg.nodes] == ["op9"]
    assert str(cfg.outbox) == "/var/lib/oracle/outbox.sqlite"


def test_a_bad_environment_value_names_the_variable(tmp_path, monkeypatch):
    path = config(tmp_path, DEVICE)
    monkeypatch.setenv("METER_ORACLE_MAX_SKEW_S", "soon")
    assert refused(path).startswith("environment variable METER_ORACLE_MAX_SKEW_S: max_skew_s: Input should be")
    monkeypatch.setenv("METER_ORACLE_MAX_SKEW_S", "1")
    monkeypatch.setenv("METER_ORACLE_NODES", "http://10.0.0.9:8700")  # not JSON
    assert 'error parsing value for field "nodes"' in refused(path)


def test_unreadable_or_invalid_toml(tmp_path):
    assert refused(tmp_path / "absent.toml") == f"cannot read config {tmp_path}/absent.toml: No such file or directory"
    path = tmp_path / "bad.toml"
    path.write_text("deployment = \n")
    assert refused(path).startswith(f"{path}: not valid TOML: ")


def test_the_example_config_loads(tmp_path, monkeypatch):
    """examples/oracle.toml as shipped, with its deployment file and keystore in place."""
    example = (REPO / "examples" / "oracle.toml").read_text()
    (tmp_path / "deployments").mkdir()
    write_deployment(tmp_path).rename(tmp_path / "deployments" / "local.json")
    (tmp_path / "keys").mkdir()
    write_keystore(tmp_path / "keys" / "p1.json", KEY, "pw", iterations=1000)
    (tmp_path / "keys" / "p1.pw").write_text("pw\n")
    monkeypatch.setenv("GARAGE_METER_PASSWORD", "pw")
    write_keystore(tmp_path / "keys" / "garage.json", key_for("garage"), "pw", iterations=1000)
    (tmp_path / "oracle.toml").write_text(example)
    cfg = load_config(tmp_path / "oracle.toml")
    assert cfg.domain == DOMAIN and len(cfg.keys) == 2 and len(cfg.devices) >= 2 and cfg.nodes


def test_a_rotated_key_signs_from_its_period_on(tmp_path, monkeypatch):
    nxt = key_for("config-next")
    write_keystore(tmp_path / "m.json", KEY, "pw", iterations=1000)
    write_keystore(tmp_path / "next.json", nxt, "pw", iterations=1000)
    monkeypatch.setenv("METER_PW", "pw")
    meter = '[[meters]]\nmeter = "sunspec:SimCo:BAT-1"\nkeystore = "m.json"\npassword_env = "METER_PW"\n'
    rotation = '[meters.rotation]\nkeystore = "next.json"\npassword_env = "METER_PW"\nfrom_period = 500\n'
    [key] = load_config(config(tmp_path, meter + rotation)).keys
    assert [key.signing_key(p) for p in (1, 499, 500, 9999)] == [KEY, KEY, nxt, nxt]
    path = config(tmp_path, meter + rotation.replace("from_period", "from_periode"))
    assert "meters[0].rotation.from_periode: unknown key (a typo?)" in refused(path)
    path = config(tmp_path, meter + rotation.replace("from_period = 500\n", ""))
    assert "meters[0].rotation.from_period" in refused(path)
