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
@click.option("--households", default=24, show_default=True, help="Households with a smart meter (some with PV and batteries).")
@click.option("--periods", default=96, show_default=True, help="15-minute periods of the simulated day")
@click.option("--period-seconds", default=3, show_default=True, help="wall-clock seconds per period")
@click.option("--challenge-window", default=None, type=int, help="seconds (default: a third of a period, at least 1)")
@click.option("--seed", default=1, show_default=True, help="Seed of the simulated loads, PV and market.")
@click.option("--workdir", default="var/demo", show_default=True, type=click.Path(path_type=Path),
              help="Where the configs, keystores, logs, archives and the audit report go.")
def cli(households: int, periods: int, period_seconds: int, challenge_window: int | None, seed: int, workdir: Path):
    """Run the neighbourhood demo on a local chain.

    Deploys a network, registers simulated meters, starts three settlement nodes and two meter
    oracles, settles a simulated day period by period and audits it. Exits non-zero unless
    every period settled and the audit passed."""
    # A group's next period is settled once the previous one is final (its leaves are the next
    # one's starting registers), so submission plus window must fit in a period.
    window = challenge_window if challenge_window is not None else max(1, period_seconds // 3)
    options = DemoOptions(households=households, periods=periods, period_seconds=period_seconds,
                          challenge_window_seconds=window, seed=seed, workdir=workdir)
    sys.exit(NeighbourhoodDemo(project, chain, accounts.test_accounts, options, echo=click.echo).run())
