"""One run: config → data → model → fit → test → ``results.json``/``embeddings.npz``.

This is the only module that reads the composed Hydra config; everything below it receives
plain arguments or typed dataclasses.
"""

from __future__ import annotations

import io
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from sslrec.data import DatasetSpec, Interactions, load_dataset, split_validation
from sslrec.evaluation import Evaluator
from sslrec.graph import normalized_adjacency
from sslrec.logging import read_jsonl
from sslrec.train import Trainer, TrainerConfig, save_json, seed_everything
from sslrec.train.checkpoint import save_bytes, save_text

log = logging.getLogger("sslrec")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


_AUGMENTER_LABELS = {"EdgeDropout": "ed", "NodeDropout": "nd", "RandomWalk": "rw"}


def _augmenter_label(aug: Any) -> str:
    cls = get_class(aug._target_).__name__
    if cls == "UniformNoise":
        return "noise" if aug.get("distribution", "uniform") == "uniform" else aug.distribution
    return _AUGMENTER_LABELS.get(cls, cls.lower())


def run_name(cfg: DictConfig) -> str:
    """Run label from the model, its augmenter and key hyperparameters, e.g.
    ``simgcl-noise-lam0.1-eps0.1-t0.2-k3-lastfm-s1`` or ``lightgcn-k3+e0-lastfm-s1``
    (``+e0``: the layer-0 embeddings join the layer mean)."""
    m = cfg.model
    parts = [get_class(m._target_).__name__.lower()]
    aug = cfg.get("augmenter") if "ssl_weight" in m else None
    if aug is not None and "_target_" in aug:
        parts.append(_augmenter_label(aug))
    if "ssl_weight" in m:
        parts.append(f"lam{m.ssl_weight}")
    if m.get("bpr_weight", 1.0) != 1.0:
        parts.append(f"bpr{m.bpr_weight}")  # bpr0.0: CL only
    if aug is not None:
        if "ratio" in aug:
            parts.append(f"r{aug.ratio}")
        if "eps" in aug:
            parts.append(f"eps{aug.eps}")
    if m.get("head") is not None and "temperature" in m.head:
        parts.append(f"t{m.head.temperature}")
    if "cl_layer" in m:
        parts.append(f"cl{m.cl_layer}")
    if "num_layers" in m:
        parts.append(f"k{m.num_layers}" + ("+e0" if m.get("include_layer0") else ""))
    parts += [str(cfg.dataset.name), f"s{cfg.seed}"]
    return "-".join(parts)


def _hydra_runtime() -> DictConfig | None:
    """The ``hydra`` node of the job being run, ``None`` outside a Hydra run (a direct call)."""
    return HydraConfig.get() if HydraConfig.initialized() else None


def sweep_group(cfg: DictConfig) -> str | None:
    """wandb group: ``logger.group`` if set; in a multirun, one name shared by all its jobs:
    the sweep preset (``+sweep=NAME``) or the job name, plus the sweep folder's last two
    parts (the launch date and time by default); ``None`` for a single run."""
    group = cfg.get("logger", {}).get("group")
    if group:
        return str(group)
    hc = _hydra_runtime()
    if hc is None or hc.mode != RunMode.MULTIRUN:
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
    hc = _hydra_runtime()
    if hc is None:
        return None
    n_jobs, cpus = hc.launcher.get("n_jobs"), hc.launcher.get("cpus_per_task")
    if cpus:
        return int(cpus)
    if not n_jobs:
        return None
    return max(1, (os.cpu_count() or 1) // n_jobs) if n_jobs > 0 else 1


def build_model(cfg: DictConfig, data: Interactions, device: torch.device):
    """Instantiate ``cfg.model`` with the graph inputs its class lists in ``graph_inputs``."""
    users, items = (torch.from_numpy(a).to(device) for a in data.train_pairs())
    needs = get_class(cfg.model._target_).graph_inputs
    inputs: dict[str, Any] = {}
    if "adjacency" in needs:
        inputs["adjacency"] = normalized_adjacency(users, items, data.n_users, data.n_items)
    if "interactions" in needs:
        inputs.update(train_users=users, train_items=items)
    return instantiate(cfg.model, n_users=data.n_users, n_items=data.n_items, **inputs).to(device)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    save_bytes(buf.getvalue(), path)


def format_table(results: dict[str, Any]) -> str:
    """Test metrics as rows; the model and each baseline as columns."""
    columns = {"model": results["test"]} | results.get("baselines", {})
    lines = [f"{'test':<14}" + "".join(f"{name:>14}" for name in columns)]
    for key in results["test"]:
        lines.append(
            f"{key:<14}" + "".join(f"{m.get(key, float('nan')):>14.4f}" for m in columns.values())
        )
    lines.append(
        f"protocol: {results['protocol']}\nbest epoch {results['best_epoch']} of "
        f"{results['epochs_run']}; {results['seconds']:.1f}s "
        f"({results['seconds_per_epoch']:.2f}s/epoch train, "
        f"{results['seconds_per_eval']:.2f}s/eval)"
    )
    return "\n".join(lines)


def run(cfg: DictConfig, out_dir: str | Path) -> dict[str, Any]:
    """Execute one configured run and write its outputs into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    threads = cfg.threads or launcher_threads()
    if threads:
        torch.set_num_threads(int(threads))
        log.info("torch threads: %d", threads)
    save_text(OmegaConf.to_yaml(cfg, resolve=True), out / "config.yaml")
    seed_everything(cfg.seed)
    data = load_dataset(DatasetSpec(**OmegaConf.to_container(cfg.dataset, resolve=True)))
    trainer_cfg = TrainerConfig(**OmegaConf.to_container(cfg.trainer, resolve=True))
    if trainer_cfg.protocol == "validation" and data.valid.nnz == 0:
        data = split_validation(data, cfg.valid_fraction, cfg.split_seed)
        log.info(
            "validation split carved from train (fraction %s, seed %s)",
            cfg.valid_fraction,
            cfg.split_seed,
        )
    elif trainer_cfg.protocol == "paper":
        log.warning("protocol=paper: the model is SELECTED ON THE TEST SPLIT, as the papers did")
    device = _device(cfg.device)
    model = build_model(cfg, data, device)
    evaluator = Evaluator(
        data, ks=list(cfg.eval.ks), metrics=list(cfg.eval.metrics), batch_size=cfg.eval.batch_size
    )
    logger = instantiate(
        cfg.logger,
        run_config=OmegaConf.to_container(cfg, resolve=True),
        dir=str(out),
        name=run_name(cfg),
        group=sweep_group(cfg),
        _recursive_=False,
    )
    trainer = Trainer(model, data, evaluator, trainer_cfg, out, seed=cfg.seed, logger=logger)
    try:
        results = trainer.fit()
        results["baselines"] = {"most_popular": evaluator.most_popular("test")}
        # means over the evaluation records (each holds its epoch's training time)
        evals = read_jsonl(out / "metrics.jsonl")
        for key, field in (
            ("seconds_per_epoch", "train_seconds"),
            ("seconds_per_eval", "eval_seconds"),
        ):
            results[key] = float(np.mean([r[field] for r in evals])) if evals else 0.0
        results["dataset"] = data.stats() | {"name": data.name}
        # where it ran: a SLURM or joblib job's results say which device and how many threads
        results["device"] = str(device)
        results["threads"] = torch.get_num_threads()
        results["total_seconds"] = time.perf_counter() - t_start
        user_emb, item_emb = model.embeddings()
        arrays = {"user": user_emb.cpu().numpy(), "item": item_emb.cpu().numpy()}
        if data.id_map is not None:  # triples input: row k belongs to raw id raw_*_id[k]
            arrays["user_raw_id"] = np.asarray(data.id_map.raw_users())
            arrays["item_raw_id"] = np.asarray(data.id_map.raw_items())
        _save_npz(out / "embeddings.npz", **arrays)
        save_json(results, out / "results.json")
        logger.summary(results)
    finally:
        logger.finish()
    print(format_table(results))
    print(f"outputs in {out}")
    return results

