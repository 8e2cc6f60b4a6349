"""ape run register --deployment deployments/local.json --csv meters.csv [--account ALIAS]

Registers the meter points of a meter point operator's CSV (columns in scripts/_deployment.py,
read_meter_csv), as many per transaction as the block gas limit allows, each transaction all or
none. Meters already registered are skipped, so the same CSV can be run again after an
interruption; a meter registered with other data than its row is refused, never changed."""
from pathlib import Path

import click
from ape import accounts
from ape.cli import ConnectedProviderCommand

from scripts._deployment import ApeTransactor, Deployment, RegistrationError, SpecError, read_meter_csv, register


@click.command(cls=ConnectedProviderCommand)
@click.option("--deployment", "dep_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="The deployment file `ape run deploy` wrote.")
@click.option("--csv", "csv_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="Meter points: meter, key, kind, group, active_from, baseline_import_wh, baseline_export_wh.")
@click.option("--account", "alias", default=None, help="ape account alias of the meter operator (default: test account 0)")
def cli(dep_path: Path, csv_path: Path, alias: str | None):
    """Register a meter point operator's meters from a CSV file.

    Each row gives the meter (scheme:identity), its signing key's address (`meter-oracle keys
    new` prints it), kind, group, first period and the registers at registration. Meters
    already registered are skipped, so the same CSV can be run again; progress goes to stderr."""
    operator = accounts.load(alias) if alias else accounts.test_accounts[0]
    dep = Deployment.load(dep_path)
    try:
        rows = read_meter_csv(csv_path, dep.period_seconds)
        done = register(ApeTransactor(operator), dep, rows, progress=lambda line: click.echo(line, err=True))
    except (SpecError, RegistrationError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"registered {len(done)} of {len(rows)} meters ({len(rows) - len(done)} already registered)")
