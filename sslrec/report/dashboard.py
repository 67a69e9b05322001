"""A report on the dashboard: its table as a wandb Table and its plots as images, in the group
of the sweep's runs, so the comparison sits next to the curves it summarises.

Offline by default, like runs (``wandb sync`` later); a failing wandb call warns and gives up,
never failing the report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from sslrec.report.build import Report

log = logging.getLogger(__name__)


def table_rows(report: Report) -> tuple[list[str], list[list[Any]]]:
    """``(columns, rows)`` of the report's table: counts, then mean, std and p per metric."""
    columns = ["configuration", "model", "seeds", "failed", "running"]
    for m in report.metrics:
        columns += [f"{m} mean", f"{m} std", f"{m} p vs baseline"]
    rows = []
    for row in report.rows:
        values: list[Any] = [row.label, row.model, row.n_seeds, row.n_failed, row.n_running]
        for m in report.metrics:
            values += [row.mean[m], row.std[m], row.pvalue[m]]
        rows.append(values)
    return columns, rows


def sweep_group(sweep_dir: str | Path) -> str:
    """The wandb group the runs of a multirun in ``sweep_dir`` were logged to (the rule of
    :func:`sslrec.runtime.sweep_group`): the preset or job name, then the folder's last two
    parts; a ``logger.group`` set for the sweep (in ``multirun.yaml``) wins."""
    folder = Path(sweep_dir).resolve()
    label = "sslrec"
    multirun = folder / "multirun.yaml"
    if multirun.is_file():
        try:
            cfg = yaml.safe_load(multirun.read_text()) or {}
            group = (cfg.get("logger") or {}).get("group")
            if group:
                return str(group)
            hydra = cfg.get("hydra") or {}
            choices = (hydra.get("runtime") or {}).get("choices") or {}
            label = choices.get("sweep") or (hydra.get("job") or {}).get("name") or label
        except (yaml.YAMLError, AttributeError):
            pass
    return f"{label}-{'_'.join(folder.parts[-2:])}"


def upload_report(
    report: Report,
    plots: Sequence[Path],
    group: str,
    project: str = "sslrec",
    entity: str | None = None,
    mode: str = "offline",
    dir: str | Path | None = None,
) -> bool:
    """Log the report's table and plots as one wandb run (``job_type="report"``) in
    ``group``; returns whether it was logged."""
    try:
        import wandb

        run = wandb.init(
            project=project,
            entity=entity,
            group=group,
            name=f"report-{group}",
            job_type="report",
            mode=mode,
            dir=str(dir) if dir is not None else None,
            reinit="finish_previous",
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True),
        )
        columns, rows = table_rows(report)
        run.log(
            {"report": wandb.Table(columns=columns, data=rows)}
            | {f"plots/{p.stem}": wandb.Image(str(p)) for p in plots}
        )
        run.summary["split"] = report.split
        run.summary["baseline"] = report.baseline
        run.finish()
        return True
    except Exception as exc:  # a dashboard problem must not cost the report
        log.warning("the report was not logged to wandb: %s", exc)
        return False
