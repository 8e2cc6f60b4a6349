"""`meter-oracle`: read meters, sign their readings, deliver them; check captures; manage meter keys."""
from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path

import click

from meter_oracle.config import load_config
from meter_oracle.drivers import FrameDecoder, StreamDriver
from meter_oracle.dsmr import VERSIONS
from meter_oracle.framing import Dropped
from meter_oracle.reading import PROTOCOLS, MeterFrame, meter_id
from rust_core.cli_support import (
    ConfigProblem,
    config_option,
    create_keystore,
    keystore_argument,
    load_or_fail,
    password_file_option,
    read_info,
    read_password,
    version_option,
)


def frame_json(item: MeterFrame | Dropped, **extra) -> dict:
    if isinstance(item, Dropped):
        return {**extra, "valid": False, "error": item.reason}
    return {
        **extra,
        "valid": True,
        "meter_id": "0x" + item.meter_id.hex() if item.identity else None,  # none: from the configuration
        "identity": item.identity or None,
        "import_mwh": item.import_mwh,
        "export_mwh": item.export_mwh,
        "import_wh": str(item.import_wh),
        "export_wh": str(item.export_wh),
        "meter_time": item.meter_time,
        "detail": item.detail,
    }


config_file = config_option(
    "The oracle's TOML file (see examples/oracle.toml); METER_ORACLE_* variables override its keys.")


def _aes_key(_ctx, param, value: str | None) -> bytes | None:
    if value is None:
        return None
    from meter_oracle.p1_cipher import parse_key

    try:
        return parse_key(value, param.opts[0])
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def decoder_options(command):
    """The options of a stream decoder (FrameDecoder / StreamDriver), as a device in oracle.toml has them."""
    for option in reversed([
        click.option("--spec", "--dsmr-version", "dsmr_version", type=click.Choice(sorted(VERSIONS)),
                     help="DSMR: the telegram specification to parse as, instead of detecting it."),
        click.option("--identity", help="The meter's identity, for frames that carry none (D0, some SML)."),
        click.option("--decryption-key", callback=_aes_key,
                     help="Encrypted P1 (DSMR): the meter's AES key, 32 hex digits."),
        click.option("--authentication-key", callback=_aes_key,
                     help="Encrypted P1: the authentication key (default: Luxembourg Smarty's public one)."),
        click.option("--crc", type=click.Choice(("x25", "kermit")), help="SML: the frame CRC variant (default x25)."),
    ]):
        command = option(command)
    return command


def _decoder_kwargs(identity, decryption_key, authentication_key, crc) -> dict:
    """Only the options given: the decoder's own defaults apply to the others."""
    given = {"identity": identity, "decryption_key": decryption_key, "authentication_key": authentication_key,
             "crc": crc}
    return {k: v for k, v in given.items() if v is not None}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@version_option
@click.option("-v", "--verbose", is_flag=True, help="Log progress (INFO) for read and parse too.")
def main(verbose: bool) -> None:
    """The meter oracle of an energy community's settlement network.

    It reads smart meters (DSMR P1, SML, SunSpec Modbus), signs each reading with the meter's
    key (EIP-712, for the PeriodLedger) and delivers it to every settlement node, keeping
    undelivered readings in an outbox. Start with `keys new`, then `check-config`, then `run`."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@config_file
def run(config_path: Path) -> None:
    """Read the devices, sign, deliver, until SIGINT or SIGTERM.

    Exit status 1 if a device or delivery worker failed (a supervisor restarts the oracle; the
    outbox resumes where it was), 2 if the config or the outbox file is unusable."""
    from meter_oracle.outbox import OutboxError
    from meter_oracle.service import run as run_service

    config = load_or_fail(load_config, config_path)
    logging.getLogger().setLevel(logging.INFO)
    try:
        status = run_service(config)
    except OutboxError as e:
        raise ConfigProblem(str(e)) from None
    sys.exit(status)


@main.command("check-config")
@config_file
def check_config(config_path: Path) -> None:
    """Validate a config and print a summary.

    Nothing is started: the deployment file is read and every meter keystore decrypted. Exit
    status 2 with the file, key and reason if the config is unusable."""
    from rust_core.keystore import keystore_info

    cfg = load_or_fail(load_config, config_path)
    click.echo(f"config      {config_path}: valid")
    click.echo(f"domain      chain {cfg.domain.chain_id}, PeriodLedger {cfg.deployment.ledger}, "
               f"periods of {cfg.period_seconds} s")
    click.echo(f"outbox      {cfg.outbox}")
    for n in cfg.nodes:
        click.echo(f"node        {n.name} {n.url}")
    for m in cfg.meters:
        click.echo(f"meter       {m.meter} key {keystore_info(m.keystore)['address']}")
    for d in cfg.devices:
        click.echo(f"device      {d.name} {d.protocol} {d.url} every {d.interval_s:g} s")


@main.command()
@click.argument("device")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="dsmr", show_default=True,
              help="What the device speaks.")
@decoder_options
@click.option("--unit", type=click.IntRange(0, 255), default=1, show_default=True, help="SunSpec: Modbus unit id.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Give up after this many seconds without a valid frame.")
def read(device: str, protocol: str, dsmr_version: str | None, unit: int, timeout: float, **decoder) -> None:
    """Print the first valid reading of DEVICE as JSON (nothing is signed).

    DEVICE is a serial port (/dev/ttyUSB0), socket://host:port, rfc2217://host:port or, for
    SunSpec, tcp://host:port. Frames refused on the way are printed too. Exit status 1 if no
    valid frame came within the timeout."""
    stop = threading.Event()
    if protocol == "sunspec":
        from meter_oracle.sunspec import SunSpecDriver

        results = SunSpecDriver(device, unit=unit).results(stop, 1.0)
    else:
        results = StreamDriver(device, protocol, dsmr_version=dsmr_version, **_decoder_kwargs(**decoder)).results(stop)
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    try:
        for item in results:
            click.echo(json.dumps(frame_json(item, device=device)))
            if isinstance(item, MeterFrame):
                return
    finally:
        stop.set()
        timer.cancel()
    click.echo(json.dumps({"device": device, "valid": False, "error": f"no valid frame within {timeout} s"}))
    sys.exit(1)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--protocol", type=click.Choice([p for p in PROTOCOLS if p != "sunspec"]), required=True,
              help="What the captures contain.")
@decoder_options
def parse(files: tuple[Path, ...], protocol: str, dsmr_version: str | None, **decoder) -> None:
    """Check captured frames: one JSON object per frame in FILES.

    Each object says whether the frame is valid and, if so, the meter id and registers.
    Exit status 1 if any frame was refused."""
    bad = 0
    for path in files:
        items = FrameDecoder(protocol, dsmr_version, **_decoder_kwargs(**decoder)).feed(path.read_bytes())
        if not items:
            items = [Dropped(f"no complete {protocol} frame in the file", b"")]
        for item in items:
            bad += isinstance(item, Dropped)
            click.echo(json.dumps(frame_json(item, file=str(path))))
    if bad:
        sys.exit(1)


# -- keys ---------------------------------------------------------------------------------

def _meter_label(_ctx, _param, value: str) -> str:
    scheme, sep, identity = value.partition(":")
    if not sep or scheme not in PROTOCOLS or not identity:
        raise click.BadParameter(f"{value!r}: expected scheme:identity with scheme one of {', '.join(PROTOCOLS)}")
    return value


meter_option = click.option(
    "--meter", required=True, callback=_meter_label,
    help="The meter as scheme:identity, as registered on chain (e.g. dsmr:4B3845473030...).")


@main.group()
def keys() -> None:
    """Meter signing keys in encrypted keystore files.

    The files are in the eth-account / geth keystore format (scrypt), readable only by their
    owner, and name their meter; oracle.toml's [[meters]] tables point at them."""


def _print_key(address: str, meter: str) -> None:
    scheme, _, identity = meter.partition(":")
    click.echo(f"meter       {meter}")
    click.echo(f"meter_id    0x{meter_id(scheme, identity).hex()}")
    click.echo(f"address     {address}")


@keys.command("new")
@keystore_argument
@meter_option
@password_file_option
def keys_new(keystore: Path, meter: str, password_file: Path | None) -> None:
    """Create a new signing key for a meter in KEYSTORE; print its meter id and address.

    The address is the `key` column of the meter CSV that `ape run register` reads. An existing
    file is never overwritten."""
    address = create_keystore(keystore, None, read_password(password_file, confirm=True), meter=meter)
    _print_key(address, meter)


@keys.command("import")
@keystore_argument
@meter_option
@click.option("--key-file", required=True, type=click.File("r"),
              help="A file holding the private key as 64 hex digits (optionally 0x); - for stdin.")
@password_file_option
def keys_import(keystore: Path, meter: str, key_file, password_file: Path | None) -> None:
    """Encrypt an existing private key of a meter into KEYSTORE; print its meter id and address.

    For a key that a gateway vendor or an older setup provides; delete the plaintext file after."""
    text = key_file.readline().strip().removeprefix("0x")  # one line: the rest of stdin may be the password
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigProblem("--key-file: not hexadecimal (expected 64 hex digits)") from None
    if len(key) != 32 or not 0 < int.from_bytes(key, "big") < SECP256K1_N:
        raise ConfigProblem(f"--key-file: {len(key)} bytes; a secp256k1 private key is 32 bytes, 1 <= key < n")
    address = create_keystore(keystore, key, read_password(password_file, confirm=True), meter=meter)
    _print_key(address, meter)


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@keys.command("show")
@keystore_argument
def keys_show(keystore: Path) -> None:
    """Print the meter, meter id and address of KEYSTORE.

    No password is needed; the key itself is never shown."""
    info = read_info(keystore)
    if "meter" in info:
        _print_key(info["address"], info["meter"])
    else:
        click.echo("meter       (not recorded in this keystore)")
        click.echo(f"address     {info['address']}")


if __name__ == "__main__":
    sys.exit(main(prog_name="meter-oracle"))
