"""The end of a multirun: a summary of its jobs, and a non-zero exit status if one failed.

:class:`SweepSummary` is a Hydra callback (``hydra.callbacks.sweep_summary`` in
``conf/config.yaml``). It runs in the launching process, before the first job and after the
last, whatever the launcher (basic, joblib, submitit) or sweeper (Optuna): jobs may run in other
processes or on other machines, so it judges each job by the files the job left in its folder
under ``hydra.sweep.dir``. A job of this multirun is a folder whose Hydra or sslrec files are new
or changed since the start (compared with a snapshot, not with clocks, which may differ on a
shared file system). It is ``ok`` when it wrote a ``results.json`` with ``"status":
"finished"``, else ``failed`` with its reason: ``results.json``'s, the exception line of its
``error.txt``, the last error of its log (a job refused its folder writes nothing there), or
"no results.json". :func:`sslrec.__main__.cli` exits 1 when :data:`FAILED` is not empty.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sslrec.io import CONFIG, ERROR, RESULTS
from sslrec.report.collect import exception_line, natural_key

#: the failed jobs of the last multirun in this process: ``(folder, reason)``
FAILED: list[tuple[Path, str]] = []
#: files that show a job ran in a folder
MARKERS = (".hydra/overrides.yaml", CONFIG, ERROR, RESULTS)


def job_folders(root: Path) -> set[Path]:
    """The job folders under a sweep folder: those with Hydra's ``.hydra/overrides.yaml``, and
    (``hydra.output_subdir=null``) its direct subfolders holding sslrec's files."""
    if not root.is_dir():
        return set()
    found = {p.parent.parent for p in root.rglob("overrides.yaml") if p.parent.name == ".hydra"}
    found |= {
        d for d in root.iterdir() if d.is_dir() and any((d / m).is_file() for m in MARKERS[1:])
    }
    return found


def _snapshot(root: Path) -> dict[str, int]:
    """``{path: mtime_ns}`` of the marker files of every job folder under ``root``."""
    found: dict[str, int] = {}
    for folder in job_folders(root):
        for marker in MARKERS:
            try:
                found[str(folder / marker)] = (folder / marker).stat().st_mtime_ns
            except OSError:
                continue
    return found


def _log_error(folder: Path) -> str:
    """The last ``[ERROR]`` message of the job's Hydra log files, or ''."""
    for log_file in sorted(folder.glob("*.log")):
        try:
            lines = log_file.read_text(errors="replace").splitlines()
        except OSError:
            continue
        errors = [ln.split("] - ", 1)[-1] for ln in lines if "[ERROR]" in ln]
        if errors:
            return errors[-1]
    return ""


def job_outcome(folder: Path, changed: set[str]) -> tuple[bool, str]:
    """``(ok, reason)`` of the job in ``folder``; ``changed``: marker files new or changed
    during the multirun (older ones belong to an earlier run in the folder)."""
    results = folder / RESULTS
    if str(results) in changed:
        try:
            data = json.loads(results.read_bytes())
        except (OSError, ValueError) as exc:
            return False, f"unreadable {RESULTS}: {exc}"
        if isinstance(data, dict) and data.get("status", "finished") == "finished":
            return True, ""
        reason = data.get("reason") if isinstance(data, dict) else None
        return False, str(reason or f"{RESULTS} without results")
    error = folder / ERROR
    if str(error) in changed:
        return False, exception_line(error.read_text(errors="replace"))
    return False, _log_error(folder) or f"no {RESULTS} (killed, or refused its folder)"


class SweepSummary(Callback):
    """Prints ``N ok, M failed`` with each failed job's folder and reason after a multirun,
    and records the failures in :data:`FAILED` for the exit status."""

    def __init__(self) -> None:
        self.before: dict[str, int] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.before = _snapshot(Path(str(config.hydra.sweep.dir)))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        root = Path(str(config.hydra.sweep.dir))
        after = _snapshot(root)
        changed = {p for p, t in after.items() if self.before.get(p) != t}
        folders = sorted({_job_folder(Path(p)) for p in changed}, key=natural_key)
        outcomes = [(folder, *job_outcome(folder, changed)) for folder in folders]
        failed = [(folder, reason) for folder, ok, reason in outcomes if not ok]
        FAILED[:] = failed
        print(f"sweep summary: {len(outcomes) - len(failed)} ok, {len(failed)} failed ({root})")
        for folder, reason in failed:
            print(f"  failed {folder}: {reason}")
        if len(outcomes) - len(failed) and _logs_to_wandb(config):
            _report_to_wandb(root, config)


def _logs_to_wandb(config: DictConfig) -> bool:
    logger = config.get("logger") or {}
    return "Wandb" in str(logger.get("_target_", "")) and logger.get("mode") != "disabled"


def _report_to_wandb(root: Path, config: DictConfig) -> None:
    """The sweep's report (``SWEEP_DIR/report``), logged to the runs' wandb group."""
    try:
        from sslrec.report import build_report, write_report
        from sslrec.report.dashboard import sweep_group, upload_report

        report = build_report([root])
        paths = write_report(report, root / "report")
        group = config.logger.get("group") or sweep_group(root)
        plots = [p for p in paths if p.suffix == ".png"]
        logger = config.logger
        if upload_report(
            report,
            plots,
            group,
            logger.get("project", "sslrec"),
            logger.get("entity"),
            logger.get("mode", "offline"),
            root / "report",
        ):
            print(f"sweep report: {root / 'report'}, logged to wandb group {group}")
    except Exception as exc:  # the sweep's outcome stands whatever the report does
        print(f"sweep report not written: {exc}")


def _job_folder(marker: Path) -> Path:
    return marker.parent.parent if marker.parent.name == ".hydra" else marker.parent
