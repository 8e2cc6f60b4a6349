"""`settlement-node`: run one settlement node, check its config, manage the operator keystore."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from node.config import load_config
from rust_core.cli_support import (
    config_option,
    create_keystore,
    keystore_argument,
    load_or_fail,
    password_file_option,
    read_info,
    read_password,
    version_option,
)

config_file = config_option(
    "The node's TOML file (see examples/node.toml); SETTLEMENT_NODE_* variables override its keys.")



@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@version_option
def main() -> None:
    """A settlement node of an energy community.

    It receives signed meter readings, closes each period into a Merkle-sum batch, co-signs it
    with the other operators' nodes, submits it to the PeriodLedger, proves fraud in others'
    batches and rolls the grids up. Start with `keys new`, then `check-config`, then `run`."""


@main.command()
@config_file
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Least severe log messages printed.")
def run(config_path: Path, log_level: str) -> None:
    """Run the node (HTTP API and settlement loop) until SIGINT or SIGTERM."""
    cfg = load_or_fail(load_config, config_path)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    import uvicorn

    from node.api import create_app
    from node.archive import open_archive
    from node.chain import Chain
    from node.peers import Peers
    from node.settlement import SettlementNode

    archive = open_archive(cfg.archive)
    chain = Chain(cfg.rpc_url, cfg.deployment.registry, cfg.deployment.ledger, cfg.signer(), cfg.chain,
                  chain_id=cfg.deployment.chain_id, first_block=cfg.deployment.first_block)
    node = SettlementNode(chain, archive, Peers(tuple(cfg.peers)), grace_seconds=cfg.grace_seconds,
                          takeover_seconds=cfg.takeover_seconds, clock_skew_seconds=cfg.clock_skew_seconds,
                          poll_seconds=cfg.poll_seconds, name=cfg.name, grids=cfg.grid_addresses,
                          reconcile_retry_seconds=cfg.reconcile_retry_seconds,
                          max_clock_offset_seconds=cfg.max_clock_offset_seconds, chain_id=cfg.deployment.chain_id)
    node.start()
    try:
        uvicorn.run(create_app(node, max_body_bytes=cfg.max_body_bytes,
                               max_entries=cfg.max_delivery_readings), host=cfg.listen_host, port=cfg.listen_port, log_level="warning")
    finally:
        node.stop()
        archive.close()


@main.command("check-config")
@config_file
def check_config(config_path: Path) -> None:
    """Validate a config and print a summary.

    Nothing is started: the deployment file is read and the operator keystore decrypted. Exit
    status 2 with the file, key and reason if the config is unusable."""
    cfg = load_or_fail(load_config, config_path)
    dep = cfg.deployment
    grids = [f"{name} {address}" for name, address in dep.grids.items() if address in cfg.grid_addresses]
    click.echo(f"config      {config_path}: valid")
    click.echo(f"name        {cfg.name}")
    click.echo(f"operator    {cfg.signer().address}")
    click.echo(f"chain       {dep.chain_id} at {cfg.rpc_url}")
    click.echo(f"registry    {dep.registry}")
    click.echo(f"ledger      {dep.ledger} (periods of {dep.period_seconds} s, "
               f"challenge window {dep.challenge_window_seconds} s)")
    click.echo(f"grids       {', '.join(grids) or 'none'} (rolled up in this order)")
    click.echo(f"listen      {cfg.listen}")
    click.echo(f"peers       {', '.join(cfg.peers) or 'none'}")
    click.echo(f"archive     {cfg.archive.split('@')[-1] if cfg.archive.startswith('postgres') else cfg.archive}")


@main.group()
def keys() -> None:
    """The operator key in an encrypted keystore file.

    The file is in the eth-account / geth keystore format (scrypt), readable only by its owner."""


@keys.command("new")
@keystore_argument
@password_file_option
def keys_new(keystore: Path, password_file: Path | None) -> None:
    """Create a new operator key in KEYSTORE and print its address.

    The address is what the network admin registers with MeterRegistry.addOperator. An existing
    file is never overwritten."""
    address = create_keystore(keystore, None, read_password(password_file, confirm=True))
    click.echo(address)


@keys.command("show")
@keystore_argument
def keys_show(keystore: Path) -> None:
    """Print the address of the key in KEYSTORE.

    No password is needed; the key itself is never shown."""
    click.echo(read_info(keystore)["address"])


if __name__ == "__main__":
    sys.exit(main(prog_name="settlement-node"))
