"""What a run asks of the Hydra runtime: the job's sweep group and its torch threads.

The only module besides ``__main__`` that looks at ``HydraConfig``; outside a Hydra run (a
direct call, a notebook) every lookup answers ``None``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

log = logging.getLogger("sslrec")


def hydra_runtime() -> DictConfig | None:
    """The ``hydra`` node of the job being run, ``None`` outside a Hydra run (a direct call)."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def is_multirun(hc: DictConfig | None = None) -> bool:
    """Whether the current job belongs to a ``--multirun`` sweep."""
    hc = hc if hc is not None else hydra_runtime()
    return hc is not None and hc.mode == RunMode.MULTIRUN


def is_optuna(hc: DictConfig) -> bool:
    """Whether the sweeper is Optuna's, which takes a raised job as a failed trial but aborts
    the study on a NaN value (hydra-optuna-sweeper tells optuna FAIL together with the NaN)."""
    return "optuna" in str(hc.sweeper.get("_target_", "")).lower()


def sweep_group(group: str | None = None) -> str | None:
    """wandb group: ``group`` (``logger.group``) if set; in a multirun, one name shared by all
    its jobs: the sweep preset (``+sweep=NAME``) or the job name, plus the sweep folder's last
    two parts (the launch date and time by default); ``None`` for a single run."""
    if group:
        return str(group)
    hc = hydra_runtime()
    if not is_multirun(hc):
        return None
    try:
        label = hc.runtime.choices.get("sweep") or hc.job.name
        stamp = "_".join(Path(str(hc.sweep.dir)).parts[-2:])
        return f"{label}-{stamp}"
    except Exception as exc:  # naming must never fail a run
        log.warning("no wandb group: %s", exc)
        return None


def launcher_threads() -> int | None:
    """Torch threads for a job of a parallel launcher: ``cores // n_jobs`` (at least 1) under
    joblib, so that 2 jobs on 2 cores run 1 thread each instead of oversubscribing;
    ``cpus_per_task`` under submitit (SLURM or local); ``None`` otherwise. The command line's
    ``threads=`` always wins."""
    hc = hydra_runtime()
    if hc is None:
        return None
    n_jobs, cpus = hc.launcher.get("n_jobs"), hc.launcher.get("cpus_per_task")
    if cpus:
        return int(cpus)
    if not n_jobs:
        return None
    return max(1, (os.cpu_count() or 1) // n_jobs) if n_jobs > 0 else 1
