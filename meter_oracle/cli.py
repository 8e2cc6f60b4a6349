"""meter-oracle run | read | parse."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from pathlib import Path

from meter_oracle.config import ConfigError, load_config
from meter_oracle.drivers import FrameDecoder, StreamDriver
from meter_oracle.dsmr import VERSIONS
from meter_oracle.framing import Dropped
from meter_oracle.reading import MeterFrame


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


def cmd_parse(args) -> int:
    bad = 0
    for name in args.files:
        decoder = FrameDecoder(args.protocol, args.dsmr_version, **_decoder_options(args))
        items = decoder.feed(Path(name).read_bytes())
        if not items:
            items = [Dropped(f"no complete {args.protocol} frame in the file", b"")]
        for item in items:
            bad += isinstance(item, Dropped)
            print(json.dumps(frame_json(item, file=name)), flush=True)
    return 1 if bad else 0


def _decoder_options(args) -> dict:
    from meter_oracle.p1_cipher import parse_key

    return {"identity": args.identity, "crc": args.crc,
            "decryption_key": parse_key(args.decryption_key, "--decryption-key") if args.decryption_key else None,
            "authentication_key": parse_key(args.authentication_key, "--authentication-key") if args.authentication_key else None}


def _add_decoder_options(p) -> None:
    p.add_argument("--spec", "--dsmr-version", dest="dsmr_version", choices=sorted(VERSIONS),
                   help="DSMR telegram specification: force instead of detecting")
    p.add_argument("--identity", help="the meter's identity, for frames that carry none")
    p.add_argument("--decryption-key", help="encrypted P1: the meter's key, 32 hex digits")
    p.add_argument("--authentication-key", help="encrypted P1: default Luxembourg Smarty's public key")
    p.add_argument("--crc", choices=("x25", "kermit"), default="x25", help="SML frame CRC")


def cmd_read(args) -> int:
    stop = threading.Event()
    if args.protocol == "sunspec":
        from meter_oracle.sunspec import SunSpecDriver

        driver = SunSpecDriver(args.device, unit=args.unit)
        results = driver.results(stop, 1.0)
    else:
        results = StreamDriver(args.device, args.protocol, dsmr_version=args.dsmr_version,
                               **_decoder_options(args)).results(stop)
    timer = threading.Timer(args.timeout, stop.set)
    timer.start()
    try:
        for item in results:
            print(json.dumps(frame_json(item, device=args.device)), flush=True)
            if isinstance(item, MeterFrame):
                return 0
    finally:
        stop.set()
        timer.cancel()
    print(json.dumps({"device": args.device, "valid": False, "error": f"no valid frame within {args.timeout} s"}))
    return 1


def cmd_run(args) -> int:
    from meter_oracle.outbox import OutboxError
    from meter_oracle.service import run

    try:
        config = load_config(args.config)
        return run(config)
    except (ConfigError, OutboxError) as e:
        print(f"meter-oracle: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meter-oracle", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="read meters, sign, deliver to the settlement nodes")
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("read", help="print one reading of a device")
    p.add_argument("device", help="serial port, socket://host:port, rfc2217://host:port or tcp://host:port")
    p.add_argument("--protocol", choices=("dsmr", "sml", "sunspec", "d0"), default="dsmr")
    _add_decoder_options(p)
    p.add_argument("--unit", type=int, default=1, help="Modbus unit id (sunspec)")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_read)
    p = sub.add_parser("parse", help="check captured frames: one JSON object per frame")
    p.add_argument("--protocol", choices=("dsmr", "sml", "d0"), required=True)
    _add_decoder_options(p)
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_parse)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose or args.command == "run" else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
