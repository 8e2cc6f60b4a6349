"""The audit report a person would rather look at than read: PNG plots and one HTML page.

Per period (on the axis: when it started, UTC): energy injected and withdrawn per group, each
grid's imbalance and losses, local self-sufficiency, and the origin of consumed local energy
(which group's generation it was). The page opens with the audit's provenance; equivocation
evidence against meter keys has its own table (it does not fail the audit)."""
from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import asdict
from datetime import UTC
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from scripts._audit import AuditResult  # noqa: E402

KWH = 1e6  # mWh per kWh


# BatchRejected reasons (contracts/README.md: fraud proofs 1-10, 11 orphan, 12 data withheld)
REJECT_REASONS = {1: "bad signature", 2: "unknown meter", 3: "bad previous register", 4: "out of order",
                  5: "bad sum", 6: "bad leaf sum", 7: "bad padding", 8: "missing previous", 9: "bad node kind",
                  10: "bad width", 11: "orphan of a rejected batch", 12: "leaves withheld (not revealed)"}


def _rejected_html(result: AuditResult) -> str:
    if not result.rejected:
        return ""
    rows = "".join(f"<tr><td>{p}</td><td>0x{g.hex()[:12]}</td><td>0x{r.hex()[:16]}</td>"
                   f"<td>{reason} {html.escape(REJECT_REASONS.get(reason, ''))}</td></tr>"
                   for p, g, r, reason in result.rejected)
    return ("<h2>Rejected batches</h2><table><tr><th>period</th><th>group</th><th>root</th><th>reason</th></tr>"
            f"{rows}</table>")


def _evidence_html(result: AuditResult) -> str:
    if not result.evidence:
        return ""

    def reading(r: dict) -> str:
        return (f"{r['timestamp']}: {r['import_mwh']} / {r['export_mwh']} mWh "
                f"<code title='{html.escape(r['signature'])}'>{html.escape(r['signature'][:18])}...</code>")

    rows = []
    for f in result.evidence:
        final = f.expected.get("final_leaf") or {}
        settled = "; ".join(f"period {p}: {reading(lf) if lf else 'no leaf'}" for p, lf in final.items()) or "not final"
        rows.append(f"<tr><td>{f.period}</td><td>{html.escape(f.name)}</td><td><code>{html.escape(f.meter or '')}"
                    f"</code></td><td>{html.escape(f.actual['kind'])}</td><td>{reading(f.actual['first'])}</td>"
                    f"<td>{reading(f.actual['second'])}</td><td>{settled}</td></tr>")
    return ("<h2>Equivocation evidence against meter keys</h2><p>Both readings of each pair are signed by the "
            "meter's registered key; the settlement resolved them by its rule (latest timestamp, then lowest "
            "signature). Evidence, not an audit failure.</p><table class=evidence><tr><th>period</th><th>group</th>"
            "<th>meter</th><th>kind</th><th>first reading</th><th>second reading</th><th>settled (final leaf)</th>"
            f"</tr>{''.join(rows)}</table>")


def write_report(result: AuditResult, out_dir: Path, title: str = "Settlement audit") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    periods = sorted(result.periods)
    figures = [
        ("energy.png", "Injected and withdrawn per group", _energy_plot),
        ("balance.png", "Grid balance: imbalance and losses", _balance_plot),
        ("self_sufficiency.png", "Local self-sufficiency", _self_sufficiency_plot),
        ("origin.png", "Origin of locally consumed energy", _origin_plot),
    ]
    for filename, heading, plot in figures:
        fig, ax = plt.subplots(figsize=(10, 4))
        plot(ax, result, periods)
        ax.set_title(heading)
        fig.tight_layout()
        fig.savefig(out_dir / filename, dpi=90)
        plt.close(fig)
    page = out_dir / "index.html"
    page.write_text(_html(result, periods, title, figures))
    return page


def _period_axis(ax, result: AuditResult, periods: list[int]) -> list:
    """Sets the x axis to UTC clock time; returns the periods' start times to plot over."""
    span = (periods[-1] - periods[0] + 1) * result.period_seconds if periods else 0
    clock = "%H:%M:%S" if span < 3600 else "%H:%M" if span <= 2 * 86400 else "%Y-%m-%d"
    ax.xaxis.set_major_formatter(mdates.DateFormatter(clock, tz=UTC))
    first = f" on {result.period_start(periods[0]):%Y-%m-%d}" if periods else ""
    ax.set_xlabel(f"period start (UTC{first})")
    return [result.period_start(p) for p in periods]


def _energy_plot(ax, result: AuditResult, periods: list[int]) -> None:
    starts = _period_axis(ax, result, periods)
    groups = sorted({g for p in periods for g in result.periods[p].groups})
    for g in groups:
        inj = [result.periods[p].groups.get(g, (0, 0))[0] / KWH for p in periods]
        wd = [-result.periods[p].groups.get(g, (0, 0))[1] / KWH for p in periods]
        line = ax.plot(starts, inj, label=f"{g} injected")[0]
        ax.plot(starts, wd, linestyle="--", color=line.get_color(), label=f"{g} withdrawn")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_ylabel("kWh (withdrawn negative)")
    ax.legend(fontsize="x-small", ncol=2)


def _balance_plot(ax, result: AuditResult, periods: list[int]) -> None:
    starts = _period_axis(ax, result, periods)
    grids = sorted({g for p in periods for g in result.periods[p].grids})
    for g in grids:
        ax.plot(starts, [result.periods[p].grids.get(g, {}).get("imbalance", 0) / KWH for p in periods],
                label=f"{g} imbalance")
        ax.plot(starts, [result.periods[p].grids.get(g, {}).get("losses", 0) / KWH for p in periods],
                linestyle=":", label=f"{g} losses")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_ylabel("kWh")
    ax.legend(fontsize="x-small")


def _self_sufficiency(figures: dict) -> float:
    withdrawn = figures.get("withdrawn", 0)
    return figures.get("localAllocated", 0) / withdrawn if withdrawn else 0.0


def _self_sufficiency_plot(ax, result: AuditResult, periods: list[int]) -> None:
    starts = _period_axis(ax, result, periods)
    grids = sorted({g for p in periods for g in result.periods[p].grids})
    for g in grids:
        ax.plot(starts, [100 * _self_sufficiency(result.periods[p].grids.get(g, {})) for p in periods], label=g)
    ax.set_ylim(0, 105)
    ax.set_ylabel("% of withdrawal covered locally")
    ax.legend(fontsize="x-small")


def _origin_totals(result: AuditResult, periods: list[int]) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for p in periods:
        for pair, v in result.periods[p].origin.items():
            totals[pair] += v
    return totals


def _origin_plot(ax, result: AuditResult, periods: list[int]) -> None:
    totals = _origin_totals(result, periods)
    consumers = sorted({c for c, _ in totals})
    producers = sorted({p for _, p in totals})
    bottom = [0.0] * len(consumers)
    for prod in producers:
        values = [totals.get((c, prod), 0) / KWH for c in consumers]
        ax.bar(consumers, values, bottom=bottom, label=f"from {prod}")
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("kWh over all periods")
    ax.set_xlabel("consumer group")
    if producers:
        ax.legend(fontsize="x-small")
    else:
        ax.text(0.5, 0.5, "no local generation was consumed locally", ha="center", transform=ax.transAxes)


def _provenance_html(result: AuditResult) -> str:
    if result.provenance is None:
        return "<p>No provenance recorded.</p>"
    rows = []
    for key, value in asdict(result.provenance).items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
        rows.append(f"<tr><th>{html.escape(key.replace('_', ' '))}</th><td>{html.escape(str(value))}</td></tr>")
    return f"<table class=provenance>{''.join(rows)}</table>"


def _points_html(result: AuditResult) -> str:
    """Each metering point's settled energy: the deltas of every meter that served it (after a
    meter exchange, the old meter's and the new one's)."""
    if not result.point_energy:
        return ""
    rows = "".join(f"<tr><td>0x{point.hex()}</td><td>{imp / KWH:.3f}</td><td>{exp / KWH:.3f}</td></tr>"
                   for point, (imp, exp) in sorted(result.point_energy.items()))
    return ("<h2>Metering points (all periods)</h2><table class=points><tr><th>point</th><th>import kWh</th>"
            f"<th>export kWh</th></tr>{rows}</table>")


def _html(result: AuditResult, periods: list[int], title: str, figures) -> str:
    verdict = "PASS" if result.ok else f"FAIL ({len(result.failures)} findings)"
    rows = []
    for p in periods:
        f = result.periods[p]
        bad = [x for x in result.failures if x.period == p]
        grid_cells = "".join(
            f"<td>{g['injected'] / KWH:.2f} / {g['withdrawn'] / KWH:.2f}</td><td>{g['imbalance'] / KWH:+.3f}</td>"
            f"<td>{100 * _self_sufficiency(g):.0f}%</td>"
            for _, g in sorted(f.grids.items())
        )
        rows.append(f"<tr class={'bad' if bad else 'ok'}><td>{p}</td><td>{result.period_start(p):%Y-%m-%d %H:%M:%S}</td>"
                    f"<td>{'FAIL' if bad else 'ok'}</td>{grid_cells}</tr>")
    grid_names = sorted({g for p in periods for g in result.periods[p].grids})
    head = "".join(f"<th>{html.escape(g)} in / out kWh</th><th>imbalance kWh</th><th>self-sufficiency</th>" for g in grid_names)
    findings = "".join(f"<li>{html.escape(str(x))}</li>" for x in result.failures) or "<li>none</li>"
    origin = "".join(f"<tr><td>{html.escape(c)}</td><td>{html.escape(p)}</td><td>{v / KWH:.3f}</td></tr>"
                     for (c, p), v in sorted(_origin_totals(result, periods).items()))
    images = "".join(f"<h2>{h}</h2><img src='{fn}' alt='{h}'>" for fn, h, _ in figures)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;text-align:right}}
tr.bad{{background:#fdd}} .verdict{{font-size:1.4em;font-weight:bold}}
table.provenance th, table.provenance td, table.evidence td{{text-align:left}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="verdict">Verdict: {verdict}</p>
<h2>Provenance</h2>{_provenance_html(result)}
<p>{result.batches} final batches, {result.leaves} settled readings, {len(result.rejected)} batches rejected.</p>
{_rejected_html(result)}
<h2>Findings</h2><ul>{findings}</ul>
{_evidence_html(result)}
{images}
<h2>Origin of locally consumed energy (all periods)</h2>
<table><tr><th>consumer</th><th>producer</th><th>kWh</th></tr>{origin}</table>
{_points_html(result)}
<h2>Per period</h2><table><tr><th>period</th><th>start (UTC)</th><th>verdict</th>{head}</tr>{''.join(rows)}</table>
</body></html>
"""
