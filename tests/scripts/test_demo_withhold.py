"""`ape run demo --withhold`: after the day, two colluding operators (the quorum) submit a batch
and publish no leaves; the demo's nodes challenge it, nobody reveals, it is rejected (reason 12),
the colluders' finalize is refused throughout, and the report lists the rejected batch."""
from __future__ import annotations

from scripts._demo import DemoOptions, NeighbourhoodDemo


def test_a_withholding_pair_is_rejected_and_the_report_shows_it(wall_clock, project, chain, accounts, tmp_path):
    lines: list[str] = []
    options = DemoOptions(households=4, periods=2, period_seconds=3, challenge_window_seconds=4, start_hour=11,
                          workdir=tmp_path / "demo", withhold=True)
    code = NeighbourhoodDemo(project, chain, accounts, options, echo=lines.append).run()
    assert code == 0, "\n".join(lines)
    summary = [line for line in lines if line.startswith("withheld batch")]
    assert len(summary) == 1 and summary[0].endswith("rejected (reason 12)"), lines
    assert not any("FINALIZED" in line for line in lines)
    page = (tmp_path / "demo" / "report" / "index.html").read_text()
    assert "Rejected batches" in page and "leaves withheld" in page
