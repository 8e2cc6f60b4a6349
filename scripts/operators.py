"""ape run operators --deployment deployments/local.json [--join ADDR ...] [--leave ADDR ...] --quorum K

The registry admin changes the settlement operators: who joins, who leaves and the quorum k, as
one new operator epoch (batch headers signed for an earlier epoch no longer count). Each joining
operator should run a synced node before this is sent (contracts/README.md, joining)."""
from pathlib import Path

import click
from ape import accounts
from ape.cli import ConnectedProviderCommand
from web3 import Web3

from scripts._deployment import ApeTransactor, Deployment, SpecError
from scripts._lifecycle import ChangeRefused, change_operators, operator_epoch


@click.command(cls=ConnectedProviderCommand)
@click.option("--deployment", "dep_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="The deployment file `ape run deploy` wrote.")
@click.option("--join", "joining", multiple=True, help="An operator's address to add (repeatable).")
@click.option("--leave", "leaving", multiple=True, help="An operator's address to remove (repeatable).")
@click.option("--quorum", type=int, default=None,
              help="Signatures a batch needs in the new epoch (default: the current quorum).")
@click.option("--account", "alias", default=None, help="ape account alias of the registry admin (default: test account 0)")
def cli(dep_path: Path, joining: tuple[str, ...], leaving: tuple[str, ...], quorum: int | None, alias: str | None):
    """Change the settlement operators and quorum as one new epoch."""
    admin = ApeTransactor(accounts.load(alias) if alias else accounts.test_accounts[0])
    dep = Deployment.load(dep_path)
    before = operator_epoch(admin.web3, dep)
    try:
        after = change_operators(admin, dep, list(joining), list(leaving), before.quorum if quorum is None else quorum)
    except (SpecError, ChangeRefused) as e:
        raise click.ClickException(str(e)) from None
    members = ", ".join(Web3.to_checksum_address(a) for a in after.operators)
    click.echo(f"epoch {after.epoch}: {after.quorum} of {len(after.operators)} ({members}); "
               f"was epoch {before.epoch}: {before.quorum} of {len(before.operators)}")
