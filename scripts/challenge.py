"""ape run challenge --deployment deployments/local.json --archive sqlite:///node-a.db --node URL [--account ALIAS]

Checks every batch in its challenge window against your own archive, with the committed leaves
fetched from the submitting operators' nodes (--node, repeatable), and sends the fraud proof
that rejects a false one. Anyone may run it; the account only pays the gas."""
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand

from scripts._challenge import challenge, leaves_from_node
from scripts._deployment import Deployment


@click.command(cls=ConnectedProviderCommand)
@click.option("--deployment", "dep_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="The deployment file `ape run deploy` wrote.")
@click.option("--archive", required=True, help="your node's archive URL (sqlite:///... or postgresql://...)")
@click.option("--node", "nodes", multiple=True, required=True, help="a settlement node URL serving batch leaves")
@click.option("--account", "alias", default=None, help="ape account alias (default: test account 0)")
def cli(dep_path: Path, archive: str, nodes: tuple[str, ...], alias: str | None):
    """Prove false batches while their challenge window is open.

    Checks every pending batch against your own node's archive, with the committed leaves
    fetched from the submitting operators' nodes, and sends the fraud proof that rejects a
    false one. Anyone may run it; the account only pays the gas."""
    sender = accounts.load(alias) if alias else accounts.test_accounts[0]
    dep = Deployment.load(dep_path)
    ledger = project.PeriodLedger.at(dep.ledger)

    def leaves_of(period, group, root):
        return next((found for url in nodes if (found := leaves_from_node(url, period, group, root))), None)

    def send(function, args):
        getattr(ledger, function)(*args, sender=sender)

    outcomes = challenge(chain.provider.uri, dep, archive, leaves_of, send)
    for o in outcomes:
        click.echo(f"period {o.period} group 0x{o.group_id.hex()[:12]} root 0x{o.root.hex()[:12]}: {o.verdict}")
    click.echo(f"{sum(o.verdict.startswith('proved') for o in outcomes)} batches challenged, {len(outcomes)} checked")
