"""``python -m sslrec [overrides]``: the Hydra entry point (also the ``sslrec`` script)."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


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

    results = run(cfg, HydraConfig.get().runtime.output_dir)
    return float(results["valid"].get(cfg.trainer.metric, results["test"][cfg.trainer.metric]))


if __name__ == "__main__":
    main()
