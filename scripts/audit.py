"""ape run audit --deployment deployments/local.json --export archive.jsonl [--archive URL] [--report DIR] [--findings FILE]

Rebuilds every period from chain events alone plus an archive export (write one with
--archive sqlite:///path/node.db, or postgresql://...), recomputes every leaf, signature,
Merkle-sum root, total, roll-up, conservation check and allocation, prints a verdict per
period and exits non-zero on any mismatch, naming period, group or grid, meter and what differs.
Verified equivocation evidence against a meter key is shown (severity "evidence") without
failing the audit; an export entry that is no evidence fails it.
Always writes the findings as JSON (with the audit's provenance: chain id, contract addresses,
block range, the export's sha256, software version, time); --report adds plots and a page."""
import sys
from pathlib import Path

import click
from ape import chain
from ape.cli import ConnectedProviderCommand

from scripts._audit import Provenance, audit, export_archive, read_chain, read_export, write_findings
from scripts._deployment import Deployment
from scripts._report import write_report


@click.command(cls=ConnectedProviderCommand)
@click.option("--deployment", "dep_path", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--export", "export_path", required=True, type=click.Path(path_type=Path),
              help="archive export (JSON lines); written first when --archive is given")
@click.option("--archive", default=None, help="a node's archive URL to export from")
@click.option("--report", "report_dir", default=None, type=click.Path(path_type=Path),
              help="write PNG plots and index.html here")
@click.option("--findings", "findings_path", default=None, type=click.Path(path_type=Path),
              help="the findings JSON [default: DIR/findings.json with --report, else EXPORT.findings.json]")
@click.option("--confirmations", default=0, show_default=True,
              help="read the chain only this deep below the head (a chain that reorganises, e.g. Clique: 2)")
def cli(dep_path: Path, export_path: Path, archive: str | None, report_dir: Path | None, findings_path: Path | None,
        confirmations: int):
    dep = Deployment.load(dep_path)
    if archive:
        exported = export_archive(archive, export_path)
        click.echo(f"exported {exported.leaves} leaves and {exported.equivocations} equivocation evidence pairs "
                   f"from {archive}")
    names = {bytes.fromhex(gid[2:]): name for name, gid in dep.groups.items()}
    view = read_chain(chain.provider.web3, dep, confirmations)
    result = audit(view, read_export(export_path), names, Provenance.of(view, export_path))
    for period in sorted(result.periods):
        bad = [f for f in result.failures if f.period == period]
        click.echo(f"period {period} ({result.period_start(period):%Y-%m-%d %H:%M:%S} UTC): {'FAIL' if bad else 'ok'}")
        for f in bad:
            click.echo(f"  {f}")
        for f in result.evidence:
            if f.period == period:
                click.echo(f"  evidence: {f}")
    click.echo(f"audit: {result.batches} final batches, {result.leaves} readings, {len(result.failures)} findings, "
               f"{len(result.evidence)} equivocation evidence: {result.verdict}")
    if findings_path is None:
        findings_path = report_dir / "findings.json" if report_dir else export_path.with_suffix(".findings.json")
    click.echo(f"findings: {write_findings(result, findings_path)}")
    if report_dir:
        click.echo(f"report: {write_report(result, report_dir)}")
    sys.exit(0 if result.ok else 1)
