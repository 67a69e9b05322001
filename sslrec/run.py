"""One run: config → data → model → fit → test → ``results.json``/``embeddings.npz``.

This is the only module that reads the composed Hydra config; everything below it receives
plain arguments or typed dataclasses.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sslrec.data import DatasetSpec, Interactions, load_dataset, split_validation
from sslrec.evaluation import Evaluator
from sslrec.factory import build_model
from sslrec.io import (
    CONFIG,
    EMBEDDINGS,
    METRICS,
    RESULTS,
    format_table,
    read_jsonl,
    save_json,
    save_npz,
    save_text,
)
from sslrec.naming import run_name
from sslrec.runtime import launcher_threads, sweep_group
from sslrec.train import Trainer, TrainerConfig, seed_everything

log = logging.getLogger("sslrec")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_data(spec: DatasetSpec, protocol: str) -> Interactions:
    """The dataset, with a validation split carved from train when the protocol selects on one
    and the dataset brings none."""
    data = load_dataset(spec)
    if protocol == "validation" and data.valid.nnz == 0:
        data = split_validation(data, spec.valid_fraction, spec.split_seed)
        log.info(
            "validation split carved from train (dataset.valid_fraction %s, split_seed %s)",
            spec.valid_fraction,
            spec.split_seed,
        )
    elif protocol == "paper":
        log.warning("protocol=paper: the model is SELECTED ON THE TEST SPLIT, as the papers did")
    return data


def run(cfg: DictConfig, out_dir: str | Path) -> dict[str, Any]:
    """Execute one configured run and write its outputs into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    threads = cfg.threads or launcher_threads()
    if threads:
        torch.set_num_threads(int(threads))
        log.info("torch threads: %d", threads)
    save_text(OmegaConf.to_yaml(cfg, resolve=True), out / CONFIG)
    seed_everything(cfg.seed)
    trainer_cfg = TrainerConfig(**OmegaConf.to_container(cfg.trainer, resolve=True))
    spec = DatasetSpec(**OmegaConf.to_container(cfg.dataset, resolve=True))
    data = load_data(spec, trainer_cfg.protocol)
    device = _device(cfg.device)
    model = build_model(cfg.model, data, device)
    evaluator = Evaluator(
        data, ks=list(cfg.eval.ks), metrics=list(cfg.eval.metrics), batch_size=cfg.eval.batch_size
    )
    logger = instantiate(
        cfg.logger,
        run_config=OmegaConf.to_container(cfg, resolve=True),
        dir=str(out),
        name=run_name(cfg),
        group=sweep_group(cfg.get("logger", {}).get("group")),
        _recursive_=False,
    )
    trainer = Trainer(model, data, evaluator, trainer_cfg, out, seed=cfg.seed, logger=logger)
    try:
        results = trainer.fit()
        results["baselines"] = {"most_popular": evaluator.most_popular("test")}
        # means over the evaluation records (each holds its epoch's training time)
        evals = read_jsonl(out / METRICS)
        for key, field in (
            ("seconds_per_epoch", "train_seconds"),
            ("seconds_per_eval", "eval_seconds"),
        ):
            results[key] = float(np.mean([r[field] for r in evals])) if evals else 0.0
        results["dataset"] = data.stats() | {"name": data.name}
        # where it ran: a SLURM or joblib job's results say which device and how many threads
        results["device"] = str(device)
        results["threads"] = torch.get_num_threads()
        results["scoring"] = "inner_product" if model.inner_product else "model"
        results["total_seconds"] = time.perf_counter() - t_start
        save_npz(out / EMBEDDINGS, **embedding_arrays(model, data))
        save_json(results, out / RESULTS)
        logger.summary(results)
    finally:
        logger.finish()
    print(format_table(results))
    print(f"outputs in {out}")
    return results


def embedding_arrays(model: Any, data: Interactions) -> dict[str, np.ndarray]:
    """``embeddings.npz``: ``user`` ``[U, d]`` and ``item`` ``[I, d]`` (the ranking
    representations of an inner-product model), plus the raw ids of remapped input."""
    user_emb, item_emb = model.embeddings()
    arrays = {"user": user_emb.cpu().numpy(), "item": item_emb.cpu().numpy()}
    if data.id_map is not None:  # triples input: row k belongs to raw id raw_*_id[k]
        arrays["user_raw_id"] = np.asarray(data.id_map.raw_users())
        arrays["item_raw_id"] = np.asarray(data.id_map.raw_items())
    return arrays
