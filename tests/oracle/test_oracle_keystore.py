"""Meter keys from encrypted keystore files, through the config the running oracle reads."""
from __future__ import annotations

import json

import pytest

from oracle_support import key_for
from meter_oracle.config import ConfigError, load_config
from meter_oracle.keystore import Keyring, read_keystore, write_keystore
from meter_oracle.reading import meter_id

KEY = key_for("keystore")


def test_keystore_round_trip_and_wrong_password(tmp_path):
    path = tmp_path / "k.json"
    write_keystore(path, KEY, "correct horse", iterations=1000)
    assert KEY.hex() not in path.read_text() and json.loads(path.read_text())["crypto"]["kdf"] == "pbkdf2"
    assert path.stat().st_mode & 0o077 == 0
    assert read_keystore(path, "correct horse") == KEY
    with pytest.raises(ValueError, match=r"cannot decrypt keystore .*k.json"):
        read_keystore(path, "wrong")


def test_config_loads_keys_and_maps_them_to_meter_ids(tmp_path, monkeypatch):
    write_keystore(tmp_path / "m.json", KEY, "pw", iterations=1000)
    monkeypatch.setenv("METER_PW", "pw")
    (tmp_path / "oracle.toml").write_text(
        'chain_id = 31337\nverifying_contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"\n'
        '[[meters]]\nmeter = "sunspec:SimCo:BAT-1"\nkeystore = "m.json"\npassword_env = "METER_PW"\nmax_power_w = 11000\n'
        '[[devices]]\nprotocol = "sunspec"\nurl = "tcp://10.0.0.5:502"\nunit = 3\n'
    )
    config = load_config(tmp_path / "oracle.toml")
    [key] = config.keys
    assert (key.label, key.private_key, key.max_power_w) == ("sunspec:SimCo:BAT-1", KEY, 11000)
    assert config.devices[0].unit == 3 and config.outbox == tmp_path / "oracle.sqlite"
    assert Keyring(config.keys).key_for(meter_id("sunspec", "SimCo:BAT-1"), "x").private_key == KEY


@pytest.mark.parametrize("meters, error", [
    ('[[meters]]\nmeter = "modbus:x"\nkeystore = "m.json"\npassword_env = "P"\n', "scheme one of"),
    ('[[meters]]\nmeter = "dsmr:x"\nkeystore = "m.json"\n', "set password_file or password_env"),
    ('[[meters]]\nmeter = "dsmr:x"\nkeystore = "m.json"\npassword_env = "NOT_SET_ANYWHERE"\n', "NOT_SET_ANYWHERE is not set"),
    ('[[devices]]\nprotocol = "mbus"\nurl = "/dev/x"\n', "protocol 'mbus' is not one of"),
])
def test_config_errors_name_the_problem(tmp_path, meters, error):
    (tmp_path / "oracle.toml").write_text(
        'chain_id = 31337\nverifying_contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"\n' + meters)
    with pytest.raises(ConfigError, match=error):
        load_config(tmp_path / "oracle.toml")
