"""Text outputs of a report: the markdown summary and the per-configuration CSV."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sslrec.report.build import Report, Row

DASH = "–"


def format_mean_std(mean: float, std: float) -> str:
    """``0.2684 ± 0.0031``; an undefined std (one seed) shows as ``–``, no value as ``–``."""
    if math.isnan(mean):
        return DASH
    return f"{mean:.4f} ± {DASH if math.isnan(std) else f'{std:.4f}'}"


def format_pvalue(p: float) -> str:
    """Four decimals, scientific below 1e-4, ``n/a`` when the test was not possible."""
    if math.isnan(p):
        return "n/a"
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def _cell(row: Row, metric: str) -> str:
    """A mean ± std cell, bold for the best configuration."""
    text = format_mean_std(row.mean[metric], row.std[metric])
    return f"**{text}**" if row.best.get(metric) else text


def _pcell(report: Report, row: Row) -> str:
    """p-values vs the baseline, one per metric joined with ' / '."""
    if row.baseline is None:
        return "n/a"
    if row.label == row.baseline:
        return "baseline"
    return " / ".join(format_pvalue(row.pvalue[m]) for m in report.metrics)


def markdown(report: Report, plots: Sequence[Path] = ()) -> str:
    """The report as markdown: summary table, unfinished runs and plot links."""
    test = "paired t-test" if report.test == "ttest" else "Wilcoxon signed-rank test"
    base = report.baseline or "none"
    if " / " in base:  # one baseline per dataset
        base = f"the same dataset's {base.split(' dataset=')[0]}"
    lines = [
        "# Experiment report",
        "",
        f"Split: `{report.split}`. Values are mean ± sample std over seeds (– for one seed); "
        f"best mean per metric in **bold**. p: two-sided {test} vs `{base}`, runs paired by "
        f"seed, one p per metric ({' / '.join(report.metrics)}); n/a with fewer than 2 pairs.",
        "",
        "| configuration | seeds | " + " | ".join(report.metrics) + f" | p vs {base} |",
        "|---|---:|" + "---:|" * len(report.metrics) + "---:|",
    ]
    for row in report.rows:
        cells = [row.label.replace("|", "\\|"), str(row.n_seeds)]
        cells += [_cell(row, m) for m in report.metrics] + [_pcell(report, row)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += unfinished_sections(report)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


def unfinished_sections(report: Report) -> list[str]:
    """Markdown lines listing the failed runs, each with its reason (the exception line, or
    why its files could not be read; a failed run is never a value in the table), then the
    runs still going."""
    failed = [r for r in report.unfinished if r.status == "failed"]
    running = [r for r in report.unfinished if r.status != "failed"]
    lines = ["", f"## Failed runs ({len(failed)})", ""]
    lines += [f"- `{r.path}` — failed: {_one_line(r.error) or 'no reason given'}" for r in failed]
    lines += [] if failed else ["None."]
    lines += ["", f"## Running runs ({len(running)})", ""]
    lines += [f"- `{r.path}` — {r.status} (no results.json)" for r in running]
    return lines + ([] if running else ["None."])


def _one_line(text: str) -> str:
    """``text`` on one markdown line (a reason may span lines)."""
    return " ".join(text.split()).replace("|", "\\|")


def write_markdown(report: Report, path: Path, plots: Sequence[Path] = ()) -> Path:
    """Write :func:`markdown` to ``path``."""
    path.write_text(markdown(report, plots))
    return path


def write_csv(report: Report, path: Path) -> Path:
    """One row per configuration: counts, then mean, std and p vs baseline per metric."""
    header = ["label", "model", "n_seeds", "n_failed", "n_running"]
    for m in report.metrics:
        header += [f"{m}_mean", f"{m}_std", f"{m}_p_vs_baseline"]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in report.rows:
            values: list[object] = [row.label, row.model, row.n_seeds, row.n_failed, row.n_running]
            for m in report.metrics:
                values += [row.mean[m], row.std[m], row.pvalue[m]]
            writer.writerow(values)
    return path
