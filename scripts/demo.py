"""ape run demo --network ethereum:local:foundry [--households 24] [--periods 96] [--period-seconds 3]

The README's main job: the neighbourhood demo (scripts/_demo.py) on a local anvil chain that
ape starts. Exits non-zero unless every period settled and the audit passed."""
import sys
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand

from scripts._demo import DemoOptions, NeighbourhoodDemo


@click.command(cls=ConnectedProviderCommand)
@click.option("--households", default=24, show_default=True)
@click.option("--periods", default=96, show_default=True, help="15-minute periods of the simulated day")
@click.option("--period-seconds", default=3, show_default=True, help="wall-clock seconds per period")
@click.option("--seed", default=1, show_default=True)
@click.option("--workdir", default="var/demo", show_default=True, type=click.Path(path_type=Path))
def cli(households: int, periods: int, period_seconds: int, seed: int, workdir: Path):
    options = DemoOptions(households=households, periods=periods, period_seconds=period_seconds,
                          challenge_window_seconds=max(2, period_seconds + 1), seed=seed, workdir=workdir)
    sys.exit(NeighbourhoodDemo(project, chain, accounts.test_accounts, options, echo=click.echo).run())
