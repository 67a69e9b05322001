"""The Python entry points a notebook needs: train a configured run, then use it.

    run_dir = sslrec.fit("model=simgcl", "dataset=pyg", "dataset.path=graph.pt", out_dir="run")
    sslrec.recommend_to_csv(run_dir, "recs.csv", k=20)

``fit`` composes the same Hydra configuration as ``python -m sslrec OVERRIDES`` and runs it in
this process, writing the usual outputs into ``out_dir``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def compose(*overrides: str) -> Any:
    """The run configuration ``python -m sslrec OVERRIDES`` would compose (a ``DictConfig``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from sslrec.__main__ import config_dir  # registers the config schemas

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def fit(*overrides: str, out_dir: str | Path) -> Path:
    """Train the configured run into ``out_dir`` (results.json, embeddings.npz, ...); returns
    ``out_dir``. Raises what the run raises (a bad value, a non-finite loss, ...)."""
    from sslrec.run import run

    run(compose(*overrides), out_dir)
    return Path(out_dir)
