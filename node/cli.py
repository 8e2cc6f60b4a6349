"""`settlement-node run --config node.toml`: runs one settlement node until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from node.api import create_app
from node.archive import open_archive
from node.chain import Chain
from node.config import ConfigError, load_config
from node.peers import Peers
from node.settlement import SettlementNode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="settlement-node")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the node (HTTP API and settlement loop)")
    run.add_argument("--config", required=True, help="node TOML file")
    run.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"settlement-node: {e}", file=sys.stderr)
        return 2
    archive = open_archive(cfg.archive)
    chain = Chain(cfg.rpc_url, cfg.registry, cfg.ledger, cfg.operator_key)
    node = SettlementNode(chain, archive, Peers(cfg.peers), grace_seconds=cfg.grace_seconds,
                          takeover_seconds=cfg.takeover_seconds, clock_skew_seconds=cfg.clock_skew_seconds,
                          poll_seconds=cfg.poll_seconds, name=cfg.name, grids=cfg.grids)
    node.start()
    try:
        uvicorn.run(create_app(node), host=cfg.listen_host, port=cfg.listen_port, log_level="warning")
    finally:
        node.stop()
        archive.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
