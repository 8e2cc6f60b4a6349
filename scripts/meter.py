"""ape run meter decommission|rotate-key|exchange --deployment deployments/local.json ... [--account ALIAS]

A meter point operator changes a registered meter from a period on, never retroactively: closes
its active window, rotates its signing key, or exchanges it for a new meter at the same metering
point. Each change is checked against the chain first; a refusal names the registry's error."""
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from ape import accounts
from ape.cli import ConnectedProviderCommand

from rust_core.wire import wh_to_mwh
from scripts._deployment import ApeTransactor, Deployment, SpecError
from scripts._lifecycle import ChangeRefused, decommission, exchange, meter_ref, rotate_key

deployment_option = click.option("--deployment", "dep_path", required=True,
                                 type=click.Path(exists=True, path_type=Path),
                                 help="The deployment file `ape run deploy` wrote.")
account_option = click.option("--account", "alias", default=None,
                              help="ape account alias of the meter operator (default: test account 0)")


def _run(alias: str | None, dep_path: Path, change: Callable[[ApeTransactor, Deployment], Any]) -> None:
    operator = ApeTransactor(accounts.load(alias) if alias else accounts.test_accounts[0])
    try:
        change(operator, Deployment.load(dep_path))
    except (SpecError, ChangeRefused, ValueError) as e:
        raise click.ClickException(str(e)) from None


@click.group()
def cli():
    """Decommission, rotate the key of or exchange a meter."""


@cli.command("decommission", cls=ConnectedProviderCommand)
@deployment_option
@click.option("--meter", required=True, help="The meter, as scheme:identity or its 0x id.")
@click.option("--last-period", type=int, required=True, help="The last period the meter settles in.")
@account_option
def decommission_cmd(dep_path: Path, meter: str, last_period: int, alias: str | None):
    """Close a meter's active window after its last period."""
    _run(alias, dep_path, lambda op, dep: decommission(op, dep, meter_ref(meter), last_period))
    click.echo(f"{meter} settles up to and including period {last_period}")


@cli.command("rotate-key", cls=ConnectedProviderCommand)
@deployment_option
@click.option("--meter", required=True, help="The meter, as scheme:identity or its 0x id.")
@click.option("--key", required=True, help="The new signing key's address (`meter-oracle keys new` prints it).")
@click.option("--from-period", type=int, required=True,
              help="The first period signed by the new key (after the current one).")
@account_option
def rotate_key_cmd(dep_path: Path, meter: str, key: str, from_period: int, alias: str | None):
    """Replace a meter's signing key from a future period on."""
    _run(alias, dep_path, lambda op, dep: rotate_key(op, dep, meter_ref(meter), key, from_period))
    click.echo(f"{meter} signs with {key} from period {from_period}")


@cli.command("exchange", cls=ConnectedProviderCommand)
@deployment_option
@click.option("--old", required=True, help="The meter taken out, as scheme:identity or its 0x id.")
@click.option("--new", required=True, help="The meter put in, as scheme:identity.")
@click.option("--key", required=True, help="The new meter's signing key's address.")
@click.option("--period", type=int, required=True,
              help="The exchange period: the old meter's last, the new meter's first.")
@click.option("--baseline-import-wh", default="0", show_default=True, help="The new meter's import register at fitting.")
@click.option("--baseline-export-wh", default="0", show_default=True, help="The new meter's export register at fitting.")
@account_option
def exchange_cmd(dep_path: Path, old: str, new: str, key: str, period: int, baseline_import_wh: str,
                 baseline_export_wh: str, alias: str | None):
    """Move a metering point from its old meter to a new one."""
    _run(alias, dep_path, lambda op, dep: exchange(
        op, dep, meter_ref(old), meter_ref(new), key, period,
        wh_to_mwh(baseline_import_wh, "baseline_import_wh"), wh_to_mwh(baseline_export_wh, "baseline_export_wh")))
    click.echo(f"{old} is exchanged for {new} in period {period}")
