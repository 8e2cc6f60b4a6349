"""python -m devnet geth | start [--signers N] [--period S] | stop | status  (state in --dir)."""
from __future__ import annotations

from pathlib import Path

import click

from devnet.clique import DEFAULT_PERIOD, STATE_FILE, CliqueNetwork, NetworkError
from devnet.geth import ensure_geth, geth_version

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "var" / "network"
BASE_PORT = 8645  # signer i: JSON-RPC 8645+i (ape-config.yaml's ethereum:settlement uri is signer 0's)

dir_option = click.option("--dir", "directory", type=click.Path(path_type=Path), default=DEFAULT_DIR,
                          show_default=True, help="where the keys, genesis, data directories and state file live")


@click.group()
def cli():
    pass


@cli.command()
def geth():
    """Builds geth from the Go module proxy unless it is there."""
    path = ensure_geth()
    click.echo(f"{path} ({geth_version(path)})")


@cli.command()
@dir_option
@click.option("--signers", default=3, show_default=True, help="validators, one per operator")
@click.option("--period", default=DEFAULT_PERIOD, show_default=True, help="Clique block period in seconds")
def start(directory: Path, signers: int, period: int):
    """Creates the network unless the folder holds one, starts every signer, waits for blocks."""
    try:
        if (directory / STATE_FILE).exists():
            net = CliqueNetwork.load(directory)
        else:
            net = CliqueNetwork.create(directory, signers, period=period, base_port=BASE_PORT)
        net.start_all()
    except NetworkError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Clique network (chain id {net.chain_id}, {len(net.signers)} signers, {net.period} s blocks), "
               f"state in {directory / STATE_FILE}")
    for s in net.signers:
        click.echo(f"{s.name} {s.address} {s.url}")


@cli.command()
@dir_option
def stop(directory: Path):
    """Stops every signer (SIGTERM); the chain stays on disk for the next start."""
    if not (directory / STATE_FILE).exists():
        click.echo(f"no network in {directory}")
        return
    CliqueNetwork.load(directory).stop_all()
    click.echo("stopped")


@cli.command()
@dir_option
def status(directory: Path):
    try:
        net = CliqueNetwork.load(directory)
    except NetworkError as e:
        raise click.ClickException(str(e)) from None
    for i, s in enumerate(net.signers):
        click.echo(f"{s.name} {s.url} {'running' if net.is_running(i) else 'stopped'} head={net.head(i)}")


if __name__ == "__main__":
    cli()
