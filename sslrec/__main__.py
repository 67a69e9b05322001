"""``python -m sslrec [overrides]``: the Hydra entry point (also the ``sslrec`` script)."""

from __future__ import annotations

import logging
import math
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

log = logging.getLogger("sslrec")


def config_dir() -> str:
    """The ``conf/`` folder: packaged inside ``sslrec`` in a wheel, beside it in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"sslrec: no conf/config.yaml in {here} or {here.parent}")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float:
    from sslrec.run import run
    from sslrec.runtime import is_optuna

    hc = HydraConfig.get()
    out = hc.runtime.output_dir
    if hc.mode != RunMode.MULTIRUN:
        results = run(cfg, out)
    else:  # one failing job of a sweep leaves error.txt; the others go on
        try:
            results = run(cfg, out)
        except Exception:
            from sslrec.io import save_text

            tb = traceback.format_exc()
            Path(out).mkdir(parents=True, exist_ok=True)
            save_text(tb, Path(out) / "error.txt")
            log.error("job %s failed, traceback in %s:\n%s", hc.job.num, out, tb)
            if is_optuna(hc):
                raise  # a failed trial; a NaN return would crash the whole study
            return float("nan")
    value = float(results["valid"].get(cfg.trainer.metric, results["test"][cfg.trainer.metric]))
    if math.isnan(value) and hc.mode == RunMode.MULTIRUN and is_optuna(hc):
        raise ValueError(f"{cfg.trainer.metric} is NaN: the trial failed")
    return value


def cli() -> None:
    """``sslrec report DIR ...`` (or ``python -m sslrec report ...``) writes a report of run
    directories, ``sslrec prepare INPUT ...`` a dataset folder; anything else is a Hydra run or
    sweep."""
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        from sslrec.report.__main__ import main as report

        raise SystemExit(report(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "prepare":
        from sslrec.prepare_cli import main as prepare

        raise SystemExit(prepare(sys.argv[2:]))
    main()


if __name__ == "__main__":
    cli()
