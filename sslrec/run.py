"""One run: config → checks → run directory → data → model → fit → ``results.json`` and
``embeddings.npz``.

This is the only module that reads the composed Hydra config; everything below it receives
plain arguments or typed dataclasses.

Nothing is written into the run directory before every check has passed: the configuration's
values (:func:`sslrec.config.validate_run_config`), the directory's lock (a second run on it
fails naming the first one's pid), its ownership (a fresh run refuses another run's outputs
unless ``trainer.overwrite=true``) and, on ``trainer.resume=true``, the checkpoint's safety and
fingerprint; then the data is read and the model, evaluator and trainer are built, with their
own checks. Only then are ``overwrite``'s old outputs deleted, leftovers of killed writes
removed and ``config.yaml`` written, so a run that fails a check leaves the directory as it was.
Hydra itself writes ``.hydra/`` and the job log before any of this.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sslrec.config import ConfigError, TrainerConfig, validate_run_config
from sslrec.data import DatasetSpec, Interactions, load_dataset, split_validation
from sslrec.data.dataset import resolve_folder
from sslrec.evaluation import Evaluator
from sslrec.factory import build_model
from sslrec.gemm import cpu_gemm_backend
from sslrec.io import (
    CHECKPOINT,
    CONFIG,
    EMBEDDINGS,
    METRICS,
    RESULTS,
    format_table,
    read_jsonl,
    remove_temporaries,
    save_json,
    save_npz,
    save_text,
)
from sslrec.naming import run_name
from sslrec.runtime import launcher_threads, sweep_group
from sslrec.train import NonFiniteLossError, Trainer, seed_everything
from sslrec.train.checkpoint import read_checkpoint
from sslrec.train.fingerprint import check_same_run, config_part, run_fingerprint
from sslrec.train.rundir import RunDirError, RunLock, clear_outputs, run_outputs

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


def dataset_spec(cfg: DictConfig) -> DatasetSpec:
    """The ``dataset`` node as a :class:`DatasetSpec`; an unknown key is a ConfigError."""
    values = OmegaConf.to_container(cfg.dataset, resolve=True)
    try:
        return DatasetSpec(**values)
    except TypeError as exc:
        raise ConfigError(f"dataset: {exc}") from None


def data_files(spec: DatasetSpec) -> list[Path]:
    """The files a run reads (what its fingerprint hashes): every ``*_file`` the dataset
    settings name (the splits, side features) that exists in the dataset folder."""
    folder = resolve_folder(spec)
    names = [getattr(spec, f.name) for f in fields(spec) if f.name.endswith("_file")]
    paths = [folder / name for name in dict.fromkeys(names) if isinstance(name, str)]
    return [path for path in paths if path.is_file()]


def claim_run_dir(
    out: Path, trainer: TrainerConfig, fingerprint: dict[str, Any]
) -> dict[str, Any] | None:
    """Check that this run may use ``out`` (its lock held); returns the checkpoint to resume
    from, if any, its tensors mapped from the file rather than read. Reads only.

    * fresh run: ``out`` must hold none of another run's outputs, unless ``overwrite``;
    * ``resume``: ``checkpoint.pt`` must be plain data with this run's fingerprint; without a
      checkpoint, ``config.yaml`` (a run killed before its first checkpoint) must describe this
      run, and a folder with results but no checkpoint is refused.

    Raises:
        RunDirError: (or its CheckpointError, ResumeMismatchError) why not.
    """
    present = run_outputs(out)
    if trainer.resume:
        if CHECKPOINT in present:
            # mapped, not read: a finished run's check (finished_results) needs only the
            # bookkeeping, and EASE's fitted matrix alone can be several GB
            ckpt = read_checkpoint(out / CHECKPOINT, mmap=True)
            check_same_run(ckpt.get("fingerprint"), fingerprint, out / CHECKPOINT)
            return ckpt
        if CONFIG in present:
            old = _read_config(out / CONFIG)
            old_part = {"config": config_part(old)} if old is not None else None
            check_same_run(old_part, fingerprint, out / CONFIG, compare_data=False)
        finished = [name for name in (RESULTS, EMBEDDINGS) if name in present]
        if finished:
            raise RunDirError(
                f"trainer.resume=true refused: {out} holds {', '.join(finished)} but no "
                f"{CHECKPOINT} to resume from; run in another directory, or pass "
                "trainer.resume=false trainer.overwrite=true to replace it"
            )
        return None
    if present and not trainer.overwrite:
        raise RunDirError(
            f"{out} already holds another run's outputs ({', '.join(present)}); a fresh run "
            "never mixes with them. Pass trainer.resume=true to continue that run, "
            "trainer.overwrite=true to delete them and start over, or choose another "
            "hydra.run.dir"
        )
    return None


def finished_results(
    out: Path, checkpoint: dict[str, Any] | None, epochs: int
) -> dict[str, Any] | None:
    """The ``results.json`` of a finished run that a resume has nothing left to do for, else
    ``None``.

    Finished means: ``results.json`` says ``"status": "finished"`` for the checkpoint's last
    epoch, ``embeddings.npz`` is there, and the checkpoint's run trains no further under
    ``epochs`` (it stopped early or reached them; a closed-form model's, with no optimiser,
    never trains). A resume with more ``trainer.epochs`` trains on as before.
    """
    if checkpoint is None or not {RESULTS, EMBEDDINGS} <= set(run_outputs(out)):
        return None
    try:
        results = json.loads((out / RESULTS).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    state = checkpoint.get("state") or {}
    if not isinstance(results, dict) or results.get("status") != "finished":
        return None
    if results.get("epochs_run") != state.get("epoch"):
        return None  # results of an earlier stage of this run (killed while extended)
    closed_form = checkpoint.get("optimizer") is None
    if closed_form or state.get("stopped_early") or state.get("epoch", 0) >= epochs:
        return results
    return None


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        tree = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return tree if isinstance(tree, dict) else None


def run(cfg: DictConfig, out_dir: str | Path) -> dict[str, Any]:
    """Execute one configured run and write its outputs into ``out_dir``.

    Raises:
        ConfigError: a configuration value is not allowed (nothing was written).
        RunDirError: ``out_dir`` belongs to another run, is locked by one, or cannot be resumed
            (nothing was written).
        NonFiniteLossError: training diverged; ``results.json`` says ``"status": "failed"``
            with the reason and ``checkpoint.pt`` keeps the last good state.
    """
    out = Path(out_dir)
    t_start = time.perf_counter()
    trainer_cfg = validate_run_config(cfg)
    spec = dataset_spec(cfg)
    fingerprint = run_fingerprint(cfg, data_files(spec))
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        checkpoint = claim_run_dir(out, trainer_cfg, fingerprint)
        done = finished_results(out, checkpoint, trainer_cfg.epochs)
        if done is not None:
            # a resumed sweep reruns only what is missing: refitting a finished run (EASE on
            # yelp2018: 9 minutes) would rewrite the same results.json
            log.info("%s: this run has finished (results.json); nothing to resume", out)
            print(format_table(done))
            return done
        if checkpoint is not None:  # the run goes on from its checkpoint: held in memory
            checkpoint = read_checkpoint(out / CHECKPOINT)
        threads = cfg.threads or launcher_threads()
        if threads:
            torch.set_num_threads(int(threads))
            log.info("torch threads: %d", threads)
        seed_everything(cfg.seed)
        # the data and the model are built before anything is written, so that their checks
        # (bad input lines, a constructor's argument, eval.ks beyond the items) leave the
        # directory as it was: rerunning with the value fixed needs no overwrite
        data = load_data(spec, trainer_cfg.protocol)
        device = _device(cfg.device)
        try:
            model = build_model(cfg.model, data, device)
        except InstantiationException as exc:  # a constructor's check: say which node
            raise ConfigError(f"model: {exc.__cause__ or exc}") from None
        evaluator = Evaluator(
            data,
            ks=list(cfg.eval.ks),
            metrics=list(cfg.eval.metrics),
            batch_size=cfg.eval.batch_size,
            item_tile=cfg.eval.get("item_tile"),
            selection=cfg.eval.get("selection", "auto"),
            precision=cfg.eval.get("precision", "fp32"),
        )
        trainer = Trainer(
            model, data, evaluator, trainer_cfg, out, seed=cfg.seed, fingerprint=fingerprint
        )
        # every check passed: from here on the directory is this run's
        if trainer_cfg.overwrite and not trainer_cfg.resume:
            removed = clear_outputs(out)
            if removed:
                log.warning("trainer.overwrite=true: deleted %s from %s", ", ".join(removed), out)
        for tmp in remove_temporaries(out):
            log.warning("removed %s, left by a write that was killed", tmp)
        save_text(OmegaConf.to_yaml(cfg, resolve=True), out / CONFIG)
        trainer.logger = instantiate(
            cfg.logger,
            run_config=OmegaConf.to_container(cfg, resolve=True),
            dir=str(out),
            name=run_name(cfg),
            group=sweep_group(cfg.get("logger", {}).get("group")),
            _recursive_=False,
        )
        try:
            results = _fit(trainer, checkpoint, out, device, t_start)
        finally:
            trainer.logger.finish()
    print(format_table(results))
    print(f"outputs in {out}")
    return results


def _fit(
    trainer: Trainer,
    checkpoint: dict[str, Any] | None,
    out: Path,
    device: torch.device,
    t_start: float,
) -> dict[str, Any]:
    """Train, then write ``embeddings.npz`` and ``results.json``; a non-finite loss writes the
    failed ``results.json`` instead and re-raises."""
    try:
        results = {"status": "finished"} | trainer.fit(checkpoint)
    except NonFiniteLossError as exc:
        save_json(failure(exc, trainer.cfg), out / RESULTS)
        raise
    model, data = trainer.model, trainer.data
    results["baselines"] = {"most_popular": trainer.evaluator.most_popular("test")}
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
    if torch.device(device).type == "cpu":  # which library's fp32 products (sslrec.gemm)
        results["cpu_gemm"] = cpu_gemm_backend()
    results["scoring"] = "inner_product" if model.inner_product else "model"
    results["total_seconds"] = time.perf_counter() - t_start
    save_npz(out / EMBEDDINGS, **embedding_arrays(model, data))
    save_json(results, out / RESULTS)
    trainer.logger.summary(results)
    return results


def failure(exc: NonFiniteLossError, trainer_cfg: TrainerConfig) -> dict[str, Any]:
    """``results.json`` of a run stopped by a non-finite loss: the reason, never a metric."""
    return {
        "status": "failed",
        "reason": str(exc),
        "error": type(exc).__name__,
        "epoch": exc.epoch,
        "batch": exc.batch,
        "terms": exc.terms,
        "on_nonfinite": trainer_cfg.on_nonfinite,
    }


def embedding_arrays(model: Any, data: Interactions) -> dict[str, np.ndarray]:
    """``embeddings.npz``: ``user`` ``[U, d]`` and ``item`` ``[I, d]`` (the ranking
    representations of an inner-product model), plus the raw ids of remapped input."""
    user_emb, item_emb = model.embeddings()
    arrays = {"user": user_emb.cpu().numpy(), "item": item_emb.cpu().numpy()}
    if data.id_map is not None:  # triples input: row k belongs to raw id raw_*_id[k]
        arrays["user_raw_id"] = np.asarray(data.id_map.raw_users())
        arrays["item_raw_id"] = np.asarray(data.id_map.raw_items())
    return arrays


def belongs_to(out: str | Path, cfg: DictConfig) -> bool:
    """Whether ``out`` holds no run outputs, or this run's (its ``config.yaml`` describes
    ``cfg``): where a failed sweep job may leave ``error.txt`` without mixing two runs."""
    out = Path(out)
    if not run_outputs(out):
        return True
    old = _read_config(out / CONFIG)
    return old is not None and config_part(old) == config_part(cfg)
