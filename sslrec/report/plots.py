"""PNG plots of a report: metric curves, loss components and hyperparameter sweeps.

Figures are built with ``matplotlib.figure.Figure``, which saves PNGs through the Agg
canvas, so no pyplot state or display backend is touched.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

from sslrec.report.collect import Group, label_groups, param_names
from sslrec.report.stats import curve_band

if TYPE_CHECKING:
    from sslrec.report.build import Report

LOSS_ORDER = ("bpr", "ssl", "reg")


def safe_name(text: str) -> str:
    """File-name-safe text: anything outside ``[A-Za-z0-9@._-]`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9@._-]+", "_", text)


def _curves(group: Group, value: Callable[[dict[str, Any]], Any]) -> list[dict[int, float]]:
    """Per run, epoch -> ``value(history row)`` where that is a finite number."""
    curves = []
    for run in group.runs:
        points = {int(h["epoch"]): value(h) for h in run.history if "epoch" in h}
        points = {e: float(v) for e, v in points.items() if _is_number(v) and math.isfinite(v)}
        if points:
            curves.append(points)
    return curves


def _is_number(value: Any) -> bool:
    """Whether ``value`` is an int or float (bools excluded)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _color(index: int) -> str:
    """A configuration's colour, the same in every panel and plot."""
    return f"C{index % 10}"


def _save(fig: Figure, path: Path) -> Path:
    """Save at 120 dpi and return the path."""
    fig.savefig(path, dpi=120)
    return path


def plot_curve(report: Report, metric: str, path: Path) -> Path | None:
    """``metric`` vs epoch: the mean over seeds per configuration with a min–max band."""
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    drawn = False
    for i, group in enumerate(report.groups):
        curves = _curves(group, lambda h: h.get("metrics", {}).get(metric))
        if not curves:
            continue
        epochs, mean, _, lo, hi = curve_band(curves)
        ax.plot(epochs, mean, label=group.label, color=_color(i), linewidth=1.2)
        ax.fill_between(epochs, lo, hi, color=_color(i), alpha=0.2, linewidth=0)
        drawn = True
    if not drawn:
        return None
    splits = "/".join(
        sorted({str(h.get("split")) for g in report.groups for r in g.runs for h in r.history})
    )
    ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} ({splits}), min–max over seeds")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_losses(report: Report, path: Path) -> Path | None:
    """One panel per loss component (bpr, ssl, reg, ...): mean over seeds vs epoch.

    Each panel has its own legend, since a component (ssl) may be absent for some models.
    """
    runs = [r for g in report.groups for r in g.runs]
    found = {k for r in runs for h in r.history for k in h.get("losses", {})}
    components = [c for c in LOSS_ORDER if c in found] + sorted(found - {*LOSS_ORDER, "total"})
    if not components:
        return None
    fig = Figure(figsize=(5 * len(components), 4.5), layout="constrained")
    for i, component in enumerate(components):
        ax = fig.add_subplot(1, len(components), i + 1)
        positive = True
        for j, group in enumerate(report.groups):
            curves = _curves(group, lambda h, c=component: h.get("losses", {}).get(c))
            if curves:
                epochs, mean, *_ = curve_band(curves)
                ax.plot(epochs, mean, label=group.label, color=_color(j), linewidth=1.2)
                positive = positive and min(mean) > 0
        # sum- and mean-reduced losses differ by orders of magnitude: log scale when possible
        ax.set(xlabel="epoch", title=f"{component} loss", yscale="log" if positive else "linear")
        ax.legend(fontsize=6)
    return _save(fig, path)


def swept_params(groups: Sequence[Group]) -> dict[str, str]:
    """Label keys (-> short names) with at least two distinct numeric values across groups."""
    swept = {}
    for key, name in param_names(groups).items():
        values = {g.config[key] for g in groups if _is_number(g.config.get(key))}
        if len(values) >= 2:
            swept[key] = name
    return swept


def plot_sweep(report: Report, key: str, name: str, path: Path) -> Path:
    """Each metric's mean ± std vs the value of ``key``; one line per rest-of-configuration."""
    series_names = label_groups(report.groups, skip=[key])
    fig = Figure(figsize=(5 * len(report.metrics), 4.5), layout="constrained")
    for i, metric in enumerate(report.metrics):
        ax = fig.add_subplot(1, len(report.metrics), i + 1)
        series: dict[str, list[tuple[float, float, float]]] = {}
        for group, row, series_name in zip(report.groups, report.rows, series_names, strict=True):
            x = group.config.get(key)
            if _is_number(x) and math.isfinite(row.mean[metric]):
                series.setdefault(series_name, []).append((x, row.mean[metric], row.std[metric]))
        for series_name, points in series.items():
            xs, ys, es = zip(*sorted(points), strict=True)
            errs = [0.0 if math.isnan(e) else e for e in es]
            ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=series_name)
        ax.set(xlabel=name, ylabel=metric, title=f"{metric} vs {name} (mean ± std)")
        if series:
            ax.legend(fontsize=7)
    return _save(fig, path)


def write_plots(report: Report, out: Path) -> list[Path]:
    """Write curve_<metric>.png, loss_components.png and sweep_<param>.png; return paths."""
    paths = [plot_curve(report, m, out / f"curve_{safe_name(m)}.png") for m in report.metrics]
    paths.append(plot_losses(report, out / "loss_components.png"))
    for key, name in swept_params(report.groups).items():
        paths.append(plot_sweep(report, key, name, out / f"sweep_{safe_name(name)}.png"))
    return [p for p in paths if p is not None]
