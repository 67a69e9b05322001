"""A finished run, opened again: its config, its data and a scorer for its selected model.

Used by ``sslrec recommend`` and ``sslrec evaluate``. A run directory is usable when it holds
``config.yaml`` and a ``results.json`` that is not marked failed; inner-product models are
scored from ``embeddings.npz`` (the representations ranking used), other models are rebuilt
from their config and load the selected weights (``checkpoint.pt``: ``state.best_model``);
closed-form models (EASE, ItemKNN) load their fitted state (``checkpoint.pt``: ``model``), or fit
again on the run's training data when the run kept none (``model.save_fitted=false``, or the
checkpoint deleted to save space): deterministic, the same model up to the solver's rounding.
Nothing here executes code from the directory: yaml is read safely, arrays without pickles and
the checkpoint with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from sslrec.data import DatasetSpec, Interactions
from sslrec.evaluation.scoring import InnerProductScorer, Scorer
from sslrec.io import CHECKPOINT, CONFIG, EMBEDDINGS, RESULTS, load_torch

log = logging.getLogger(__name__)


class RunNotUsable(ValueError):
    """The directory is not a finished run (missing, incomplete or failed)."""


@dataclass
class SavedRun:
    """A finished run directory: its resolved config and ``results.json``."""

    path: Path
    config: DictConfig
    results: dict[str, Any]

    @property
    def inner_product(self) -> bool:
        """Whether ranking was the inner product of ``embeddings.npz`` (older runs: yes)."""
        return self.results.get("scoring", "inner_product") == "inner_product"


def open_run(run_dir: str | Path) -> SavedRun:
    """Open ``run_dir``, refusing one that is incomplete or failed with a sentence saying why."""
    path = Path(run_dir)
    if not (path / CONFIG).is_file():
        raise RunNotUsable(f"{path}: no {CONFIG}; not an sslrec run directory")
    results_path = path / RESULTS
    if not results_path.is_file():
        raise RunNotUsable(
            f"{path}: no {RESULTS}, the run is incomplete (still running, or killed: resume it "
            f"with `python -m sslrec trainer.resume=true hydra.run.dir={path}`)"
        )
    try:
        results = json.loads(results_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunNotUsable(f"{results_path}: unreadable ({exc})") from None
    if not isinstance(results, dict) or results.get("status", "finished") != "finished":
        reason = results.get("reason", "no reason recorded") if isinstance(results, dict) else ""
        raise RunNotUsable(f"{path}: the run failed ({reason}); it has no model to use")
    config = OmegaConf.load(path / CONFIG)
    if not isinstance(config, DictConfig) or "model" not in config or "dataset" not in config:
        raise RunNotUsable(f"{path / CONFIG}: not a run configuration (no model or dataset)")
    return SavedRun(path, config, results)


def load_run_data(run: SavedRun, dataset_path: str | Path | None = None) -> Interactions:
    """The run's dataset with its splits (the validation split re-carved as the run did), or
    the dataset in ``dataset_path``, which must use the same ids."""
    from sslrec.run import load_data

    fields = OmegaConf.to_container(run.config.dataset, resolve=True)
    spec = DatasetSpec(**{k: v for k, v in fields.items() if k in DatasetSpec.__dataclass_fields__})
    if dataset_path is not None:
        spec = replace(spec, path=str(dataset_path))
    return load_data(spec, str(run.config.trainer.protocol))


def load_scorer(run: SavedRun, data: Interactions, device: str | torch.device = "cpu") -> Scorer:
    """A scorer of the run's selected model for ``data`` (sizes are checked against the run)."""
    device = torch.device(device)
    if run.inner_product:
        arrays = np.load(run.path / EMBEDDINGS, allow_pickle=False)
        user, item = (torch.from_numpy(arrays[k]).to(device) for k in ("user", "item"))
        _check_sizes(run, data, user.shape[0], item.shape[0])
        return InnerProductScorer(user, item)
    from sslrec.factory import build_model

    if getattr(get_class(run.config.model._target_), "closed_form", False):
        return _closed_form_scorer(run, data, device)
    ckpt = load_torch(run.path / CHECKPOINT, mmap=True)  # the optimiser's state stays unread
    weights = (ckpt.get("state") or {}).get("best_model") or ckpt.get("model")
    if weights is None:
        raise RunNotUsable(f"{run.path / CHECKPOINT}: holds no model weights")
    model = build_model(run.config.model, data, device)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:  # shapes differ: another dataset's ids
        raise RunNotUsable(
            f"{run.path}: its weights do not fit the dataset {data.name} "
            f"({data.n_users} users, {data.n_items} items): {str(exc).splitlines()[-1].strip()}"
        ) from None
    model.eval()
    return model.scorer()


def _closed_form_scorer(run: SavedRun, data: Interactions, device: torch.device) -> Scorer:
    """A closed-form model built on ``data``'s training interactions with the run's fitted
    state, or fitted again where the run kept none."""
    from sslrec.factory import build_model

    model = build_model(run.config.model, data, device)
    path = run.path / CHECKPOINT
    state = load_torch(path, mmap=True).get("model") if path.is_file() else None
    if state:
        try:
            model.load_fitted(state)
        except ValueError as exc:  # another dataset's item ids
            raise RunNotUsable(f"{run.path}: {exc}") from None
    else:
        log.info("%s keeps no fitted state: fitting %s again", run.path, model.config_name)
        model.fit()
    return model.scorer()


def _check_sizes(run: SavedRun, data: Interactions, n_users: int, n_items: int) -> None:
    if (n_users, n_items) != (data.n_users, data.n_items):
        raise RunNotUsable(
            f"{run.path}: the run has {n_users} users and {n_items} items, the dataset "
            f"{data.name} has {data.n_users} and {data.n_items}; use a dataset with the same ids"
        )
