"""``python -m sslrec [overrides]``: the Hydra entry point (also the ``sslrec`` script)."""

from __future__ import annotations

import importlib
import logging
import math
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from sslrec.config import register_schemas

log = logging.getLogger("sslrec")


def config_dir() -> str:
    """The ``conf/`` folder: packaged inside ``sslrec`` in a wheel, beside it in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"sslrec: no conf/config.yaml in {here} or {here.parent}")


register_schemas()  # before Hydra composes: conf/ names the schemas


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float:
    from sslrec.run import run
    from sslrec.runtime import is_optuna

    hc = HydraConfig.get()
    out = hc.runtime.output_dir
    if hc.mode != RunMode.MULTIRUN:
        results = run(cfg, out)  # an exception: Hydra prints it and exits 1
    else:  # one failing job of a sweep leaves error.txt; the others go on
        try:
            results = run(cfg, out)
        except Exception as exc:
            _job_failed(cfg, Path(out), exc, hc.job.num)
            if is_optuna(hc):
                raise  # a failed trial; a NaN return would crash the whole study
            return float("nan")
    value = float(results["valid"].get(cfg.trainer.metric, results["test"][cfg.trainer.metric]))
    if math.isnan(value) and hc.mode == RunMode.MULTIRUN and is_optuna(hc):
        raise ValueError(f"{cfg.trainer.metric} is NaN: the trial failed")
    return value


def _job_failed(cfg: DictConfig, out: Path, exc: Exception, num: int) -> None:
    """Leave the traceback in ``error.txt`` and, if the job got no further, its
    ``config.yaml`` (so that ``sslrec report`` lists it with its configuration). Never in a
    folder that holds another run: a job refused its folder leaves it as it was."""
    from omegaconf import OmegaConf

    from sslrec.io import CONFIG, ERROR, save_text
    from sslrec.run import belongs_to
    from sslrec.train.rundir import RunDirError

    tb = traceback.format_exc()
    if isinstance(exc, RunDirError) or not belongs_to(out, cfg):
        log.error("job %s failed, %s left untouched: %s: %s", num, out, type(exc).__name__, exc)
        return
    out.mkdir(parents=True, exist_ok=True)
    save_text(tb, out / ERROR)
    if not (out / CONFIG).exists():
        try:
            text = OmegaConf.to_yaml(cfg, resolve=True)
        except Exception:  # the config itself is what failed: keep it unresolved
            text = OmegaConf.to_yaml(cfg)
        save_text(text, out / CONFIG)
    log.error("job %s failed, traceback in %s:\n%s", num, out / ERROR, tb)


#: ``sslrec NAME ...`` (or ``python -m sslrec NAME ...``) runs the module's ``main(argv)``
COMMANDS = {
    "report": "sslrec.report.__main__",  # tables, tests and plots of run directories
    "prepare": "sslrec.prepare_cli",  # raw data into a dataset folder
    "recommend": "sslrec.recommend",  # top-k items per user of a finished run
    "evaluate": "sslrec.evaluate",  # a finished run's metrics, on its split or another
}


def cli() -> None:
    """``sslrec report|prepare|recommend|evaluate ...`` run those commands; anything else is a
    Hydra run or sweep."""
    if len(sys.argv) > 1 and sys.argv[1] in COMMANDS:
        module = importlib.import_module(COMMANDS[sys.argv[1]])
        raise SystemExit(module.main(sys.argv[2:]))
    from sslrec import multirun

    main()
    if multirun.FAILED:  # a sweep ran every job; some failed (listed by SweepSummary)
        raise SystemExit(1)


if __name__ == "__main__":
    cli()
