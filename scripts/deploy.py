"""ape run deploy --spec network.toml --out deployments/local.json [--network ...] [--account ALIAS]

Deploys the MeterRegistry, the PeriodLedger and the grids of a network spec (see
scripts/_deployment.py) and writes the deployment file the nodes, oracles and the audit read.
On the local network the first test account is the admin unless --account names another."""
from pathlib import Path

import click
from ape import accounts
from ape.cli import ConnectedProviderCommand

from scripts._deployment import ApeTransactor, NetworkSpec, deploy


@click.command(cls=ConnectedProviderCommand)
@click.option("--spec", "spec_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="The network spec (TOML): period length, window, quorum, operators, grids; see examples/network.toml.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Where to write the deployment file that node.toml and oracle.toml point at.")
@click.option("--account", "alias", default=None, help="ape account alias of the admin (default: test account 0)")
def cli(spec_path: Path, out: Path, alias: str | None):
    """Deploy a settlement network and write its deployment file.

    Deploys the MeterRegistry, the PeriodLedger and the grids of the network spec (inner grids
    first), grants the roles and sets the quorum, then writes the deployment file (chain id,
    addresses, period length, first block) that the nodes, the oracles and the audit read."""
    admin = accounts.load(alias) if alias else accounts.test_accounts[0]
    dep = deploy(ApeTransactor(admin), NetworkSpec.from_toml(spec_path))
    dep.save(out)
    click.echo(f"registry {dep.registry}\nledger   {dep.ledger}")
    for name, addr in dep.grids.items():
        click.echo(f"grid     {addr} {name}")
    click.echo(f"deployment written to {out}")
