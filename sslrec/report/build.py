"""Build a report: collect run directories, summarise each configuration, test vs a baseline."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslrec.report.collect import Group, Run, find_run_dirs, group_runs, load_run
from sslrec.report.stats import best_index, mean_std, paired_pvalue

DEFAULT_METRICS = ("recall@20", "ndcg@20")


@dataclass
class Row:
    """Summary of one configuration over its finished seeds."""

    label: str
    model: str
    n_seeds: int
    n_failed: int
    n_running: int
    mean: dict[str, float]
    std: dict[str, float]
    pvalue: dict[str, float]
    best: dict[str, bool] = field(default_factory=dict)
    baseline: str | None = None  # label of the configuration this row is tested against


@dataclass
class Report:
    """Everything a report shows: one row per configuration plus the runs behind them."""

    rows: list[Row]
    groups: list[Group]
    metrics: list[str]
    split: str
    baseline: str | None  # the baseline's label; with several datasets, each has its own
    test: str

    @property
    def unfinished(self) -> list[Run]:
        """Runs without results: still running, or failed."""
        return [r for g in self.groups for r in g.runs if r.status != "finished"]


def _dataset(group: Group) -> Any:
    return group.config.get("dataset.name")


def _pick_baselines(
    groups: Sequence[Group], baseline: str | Sequence[str] | None
) -> list[Group | None]:
    """Each group's baseline, on the same dataset (a report never tests across datasets).

    ``baseline``: one or more labels; groups whose label equals one of them (case-insensitive)
    are the candidates, else those whose label contains one; default: the lightgcn groups.
    Among a dataset's candidates, one of the group's own model wins (``--baseline mf lightgcn``
    tests every MF row against MF and every LightGCN row against LightGCN), then the one with
    the most finished seeds. ``None`` where the group's dataset has no candidate. Raises if
    ``baseline`` is given and matches nothing.
    """
    if baseline is None:
        matches = [g for g in groups if g.model == "lightgcn"]
    else:
        wanted = [w.lower() for w in ([baseline] if isinstance(baseline, str) else baseline)]
        matches = [g for g in groups if g.label.lower() in wanted] or [
            g for g in groups if any(w in g.label.lower() for w in wanted)
        ]
        if not matches:
            labels = ", ".join(g.label for g in groups)
            raise ValueError(f"no configuration matches baseline {baseline!r}; have: {labels}")
    picked = []
    for group in groups:
        same = [g for g in matches if _dataset(g) == _dataset(group)]
        same = [g for g in same if g.model == group.model] or same
        picked.append(max(same, key=lambda g: len(g.finished)) if same else None)
    return picked


def _by_seed(group: Group, metric: str) -> dict[Any, float]:
    """Finished runs' final metric value keyed by seed."""
    return {r.seed: r.results[metric] for r in group.finished if metric in r.results}


def build_report(
    dirs: Iterable[str | Path],
    metrics: Sequence[str] = DEFAULT_METRICS,
    baseline: str | Sequence[str] | None = None,
    split: str = "test",
    test: str = "ttest",
) -> Report:
    """Collect run directories under ``dirs`` and summarise each configuration.

    ``baseline`` is one or more labels (see :func:`_pick_baselines`; default: lightgcn);
    ``split`` picks results.json's section and the metrics.jsonl rows; ``test`` is
    ``"ttest"`` or ``"wilcoxon"``.
    """
    runs = [load_run(d, split) for d in find_run_dirs(dirs)]
    groups = group_runs(runs)
    bases = _pick_baselines(groups, baseline)
    rows = []
    for group, base in zip(groups, bases, strict=True):
        mean, std, pvalue = {}, {}, {}
        for metric in metrics:
            values = _by_seed(group, metric)
            mean[metric], std[metric] = mean_std(list(values.values()))
            pvalue[metric] = (
                float("nan")
                if base is None or base is group
                else paired_pvalue(values, _by_seed(base, metric), test)
            )
        statuses = [r.status for r in group.runs]
        rows.append(
            Row(
                group.label,
                group.model,
                n_seeds=statuses.count("finished"),
                n_failed=statuses.count("failed"),
                n_running=statuses.count("running"),
                mean=mean,
                std=std,
                pvalue=pvalue,
                baseline=base.label if base else None,
            )
        )
    for metric in metrics:
        best = best_index([row.mean[metric] for row in rows])
        for i, row in enumerate(rows):
            row.best[metric] = i == best
    labels = list(dict.fromkeys(b.label for b in bases if b is not None))
    return Report(rows, groups, list(metrics), split, " / ".join(labels) or None, test)


def write_report(report: Report, out: str | Path) -> list[Path]:
    """Write report.md, report.csv and the PNG plots into ``out``; return the paths written."""
    from sslrec.report.plots import write_plots
    from sslrec.report.render import write_csv, write_markdown

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(report, out)
    md = write_markdown(report, out / "report.md", plots)
    return [md, write_csv(report, out / "report.csv"), *plots]
