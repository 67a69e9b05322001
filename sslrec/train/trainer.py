"""The training loop: the optimiser on the model's loss, periodic evaluation, early stopping,
checkpoints and resume, and the stop on a non-finite loss.

An evaluated epoch goes train → evaluate → append its record to ``metrics.jsonl`` → write
``checkpoint.pt`` (atomically). A resume restarts after the checkpoint's epoch and drops the
records past it, so a kill anywhere loses nothing: a record whose checkpoint the kill prevented
is computed again, identically, and written again.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from sslrec.config import OPTIMIZERS, PROTOCOLS, TrainerConfig
from sslrec.data.device_sampling import DeviceSampler
from sslrec.data.interactions import Interactions
from sslrec.data.sampling import BPRSampler
from sslrec.devices import host_paths
from sslrec.evaluation import Evaluator
from sslrec.io import CHECKPOINT, METRICS, save_torch
from sslrec.logging import JsonlLogger, NullLogger, RunLogger
from sslrec.losses import total
from sslrec.models.base import Recommender
from sslrec.train.checkpoint import FORMAT, read_checkpoint
from sslrec.train.faults import fault_point
from sslrec.train.fingerprint import check_same_run
from sslrec.train.nonfinite import (
    EpochLosses,
    NonFiniteLossError,
    batch_is_finite,
    nonfinite_tensors,
)
from sslrec.train.seeding import rng_state, set_rng_state

__all__ = ["PROTOCOLS", "NonFiniteLossError", "Trainer", "TrainerConfig", "make_optimizer"]

log = logging.getLogger(__name__)

#: users whose scores are checked for NaN/inf at every evaluation (one score block)
SCORE_PROBE_USERS = 256


def _differing(a: dict[str, float], b: dict[str, float]) -> str:
    """``a``'s entries that differ from ``b``'s, as ``key value`` pairs."""
    return ", ".join(f"{k} {v:.6f}" for k, v in a.items() if b.get(k) != v) or "the same"


def make_optimizer(model: torch.nn.Module, config: TrainerConfig) -> torch.optim.Optimizer:
    """Adam or plain SGD over the model's parameters, with ``lr`` and ``weight_decay``. Adam is
    the fused kernel on CPU and CUDA: one pass over each parameter instead of a dozen (on the
    CPU 10× faster for gowalla's tables, ``experiments/bench_epoch.py``); its updates match the
    unfused Adam's to float32 rounding."""
    if config.optimizer == "adam":
        fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters()) or None
        return torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused
        )
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"trainer.optimizer must be one of {OPTIMIZERS}, got {config.optimizer!r}")


def negatives_per_positive(config: TrainerConfig, required: int | None) -> int:
    """The sampler's ``k``: ``trainer.num_negatives``, or what the model requires.

    A model that needs ``k`` candidates per positive (MixGCF's ``n_negs``) declares it as
    ``required_negatives``; the trainer's default of 1 then gives way to it, and any other
    explicit value is refused with a sentence.
    """
    if required is None or config.num_negatives == required:
        return config.num_negatives
    if config.num_negatives == 1:
        return required
    raise ValueError(
        f"the model draws from {required} candidate negatives per positive, but "
        f"trainer.num_negatives={config.num_negatives}: leave trainer.num_negatives at 1 (the "
        f"model's {required} is used) or set it to {required}"
    )


def make_sampler(
    data: Interactions,
    config: TrainerConfig,
    seed: int,
    device: torch.device,
    required_negatives: int | None = None,
) -> BPRSampler | DeviceSampler:
    """The numpy sampler on the CPU (``trainer.sampler=auto``), the device sampler elsewhere;
    ``required_negatives``: the model's own ``k`` (:func:`negatives_per_positive`)."""
    on_device = config.sampler == "device" or (config.sampler == "auto" and not host_paths(device))
    kwargs = {
        "num_negatives": negatives_per_positive(config, required_negatives),
        "negative_sampling": config.negative_sampling,
        "popularity_exponent": config.popularity_exponent,
    }
    if on_device:
        return DeviceSampler(
            data.train, config.batch_size, config.sampling, seed, device=device, **kwargs
        )
    return BPRSampler(data.train, config.batch_size, config.sampling, seed, **kwargs)


class Trainer:
    """Fits ``model`` on ``data.train`` and reports the selected model's valid/test metrics.

    Args:
        model: the recommender (already on its device).
        data: dataset; with the validation protocol it must carry a valid split.
        evaluator: full-ranking evaluator over ``data``.
        config: trainer settings.
        out_dir: run directory (``metrics.jsonl``, ``checkpoint.pt``).
        seed: seeds the sampler.
        logger: extra logger (wandb); ``metrics.jsonl`` is always written.
        fingerprint: what defines the run (:mod:`sslrec.train.fingerprint`): stored in every
            checkpoint, and a resume from a checkpoint with another one is refused. ``None``
            (direct use) stores none and checks nothing.
    """

    def __init__(
        self,
        model: Recommender,
        data: Interactions,
        evaluator: Evaluator,
        config: TrainerConfig,
        out_dir: str | Path,
        seed: int = 0,
        logger: RunLogger | None = None,
        fingerprint: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.data = data
        self.evaluator = evaluator
        self.cfg = config
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.select_split = "test" if config.protocol == "paper" else "valid"
        if self.select_split == "valid" and data.valid.nnz == 0:
            raise ValueError(
                f"the validation protocol needs a valid split, but {data.name} has none: carve "
                "one with dataset.valid_fraction, or add valid.txt to the dataset folder"
            )
        # a closed-form model (EASE, ItemKNN) is fitted once by fit_closed_form: it has no
        # parameters, and neither sampler nor optimiser
        self.closed_form = getattr(model, "closed_form", False)
        if self.closed_form:
            self.device = model.device
            self.sampler, self.optimizer = None, None
        else:
            self.device = next(model.parameters()).device
            required = getattr(model, "required_negatives", None)
            self.sampler = make_sampler(data, config, seed, self.device, required)
            self.optimizer = make_optimizer(model, config)
        self.jsonl = JsonlLogger(self.out_dir / METRICS)
        self.logger = logger or NullLogger()
        self.checkpoint_path = self.out_dir / CHECKPOINT
        self.fingerprint = fingerprint
        self.skip_nonfinite = config.on_nonfinite == "skip_batch"
        self.skipped = 0  # batches skipped in the last epoch (skip_batch)
        self.checkpoint_epoch = 0  # epoch of the last checkpoint written or loaded; 0: none
        self.state: dict[str, Any] = {
            "epoch": 0,
            "best_value": -float("inf"),
            "best_epoch": 0,
            "best_metrics": {},
            "bad_evals": 0,
            "seconds": 0.0,
            "best_model": None,
            "stopped_early": False,
            "skipped_batches": 0,
        }

    # -- checkpoints ---------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        """The checkpoint as plain data (layout: :mod:`sslrec.train.checkpoint`); a closed-form
        model's holds its fitted state as ``model`` and no optimiser or sampler."""
        if self.closed_form:
            return {
                "format": FORMAT,
                "model": self.model.fitted_state(),
                "optimizer": None,
                "sampler_rng": None,
                "rng": rng_state(),
                "state": self.state,
                "fingerprint": self.fingerprint,
            }
        return {
            "format": FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler_rng": self.sampler.state(),
            "rng": rng_state(),
            "state": self.state,
            "fingerprint": self.fingerprint,
        }

    def save_checkpoint(self) -> None:
        epoch = self.state["epoch"]
        save_torch(
            self.checkpoint_state(),
            self.checkpoint_path,
            before_replace=lambda: fault_point("checkpoint", epoch),
        )
        self.checkpoint_epoch = epoch

    def load_checkpoint(self, ckpt: dict[str, Any] | None = None) -> bool:
        """Restore ``ckpt`` (default: read ``checkpoint.pt`` safely). Without a checkpoint the
        run starts over, and records of a run killed before its first checkpoint are dropped.

        Raises:
            CheckpointError: the file is not a plain-data sslrec checkpoint.
            ResumeMismatchError: it belongs to a run with another fingerprint.
        """
        if ckpt is None:
            if not self.checkpoint_path.exists():
                log.info("no checkpoint at %s; starting from scratch", self.checkpoint_path)
                self.jsonl.truncate_after(0)
                return False
            ckpt = read_checkpoint(self.checkpoint_path)
        if self.fingerprint is not None:
            check_same_run(ckpt.get("fingerprint"), self.fingerprint, self.checkpoint_path)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.sampler.load_state(ckpt["sampler_rng"])
        set_rng_state(ckpt["rng"])
        self.state = {"skipped_batches": 0} | ckpt["state"]
        self.checkpoint_epoch = self.state["epoch"]
        self.jsonl.truncate_after(self.state["epoch"])
        log.info("resumed from %s at epoch %d", self.checkpoint_path, self.state["epoch"])
        return True

    # -- loop ----------------------------------------------------------------------------
    def _show_progress(self) -> bool:
        if self.cfg.progress is not None:
            return self.cfg.progress
        return sys.stderr.isatty() and not os.environ.get("CI")

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass of the sampler; returns the mean of each loss term (and ``total``) over
        the batches stepped.

        Every batch's loss terms stay on the device and are read once, at the end
        (:class:`~sslrec.train.nonfinite.EpochLosses`), for the means and the non-finite
        check; ``skip_batch`` reads each batch's check instead.

        Raises:
            NonFiniteLossError: a non-finite total or weighted term (``stop``), or every batch
                skipped (``skip_batch``); nothing of this epoch is saved.
        """
        self.model.train()
        self.model.start_epoch()
        losses = EpochLosses(self.device, len(self.sampler))
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.skipped = 0
        bar = tqdm(
            self.sampler.epoch(),
            total=len(self.sampler),
            desc=f"epoch {epoch}",
            leave=False,
            disable=not self._show_progress(),
        )
        for batch in bar:
            terms = self.model.loss(batch.to(self.device))
            loss = total(terms)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.skip_nonfinite and not batch_is_finite(terms, loss, params):
                self.skipped += 1  # the price of skip_batch: one host sync per batch
                continue
            self.optimizer.step()
            losses.add(terms, loss)
            if losses.batches == 1:
                fault_point("train", epoch)
        sums, first_bad, bad_values = losses.read()
        if first_bad is not None:
            raise self._nonfinite_loss(epoch, first_bad + 1, bad_values, losses.checked)
        if losses.batches == 0:
            raise NonFiniteLossError(
                f"every batch of epoch {epoch} ({self.skipped}) had a non-finite loss or "
                f"gradient under trainer.on_nonfinite=skip_batch; nothing could be trained. "
                f"{self._kept()} Lower trainer.lr.",
                epoch,
            )
        if self.skipped:
            log.warning(
                "epoch %d: %d of %d batches skipped (non-finite loss or gradient)",
                epoch,
                self.skipped,
                self.skipped + losses.batches,
            )
        return {key: value / losses.batches for key, value in sums.items()}

    def _kept(self) -> str:
        if self.checkpoint_epoch:
            return (
                f"checkpoint.pt keeps epoch {self.checkpoint_epoch}, the last evaluated "
                "before the failure."
            )
        return "No checkpoint had been written yet."

    def _nonfinite_loss(
        self, epoch: int, batch: int, values: dict[str, float], checked: list[str]
    ) -> NonFiniteLossError:
        bad = {k: v for k, v in values.items() if k in checked and not math.isfinite(v)}
        return NonFiniteLossError(
            f"non-finite loss in epoch {epoch}, batch {batch} of {len(self.sampler)}: "
            + ", ".join(f"{k}={v}" for k, v in bad.items())
            + f". The run stops (trainer.on_nonfinite=stop). {self._kept()} Lower "
            "trainer.lr, or resume with trainer.on_nonfinite=skip_batch to skip such batches.",
            epoch,
            batch,
            bad,
        )

    def evaluate(self, split: str) -> dict[str, float]:
        """Metrics of ``split``, after checking that the model's parameters, the scorer's
        representations and one block of scores are finite (one host sync): ranking NaN
        scores gives numbers that look like results.

        Raises:
            NonFiniteLossError: naming the non-finite tensors.
        """
        self.model.eval()
        scorer = self.model.scorer()
        named = {f"model.{n}": p for n, p in self.model.named_parameters()}
        fields = getattr(scorer, "__dict__", {})
        named |= {f"scorer.{k}": v for k, v in fields.items() if isinstance(v, torch.Tensor)}
        # finite representations can still overflow to inf/NaN scores (|e| ~ 1e20 after a
        # huge step): probe one block of users' scores as well
        probe = torch.arange(min(SCORE_PROBE_USERS, self.data.n_users), device=scorer.device)
        with torch.no_grad():
            named["scores"] = scorer.full_scores(probe)
        bad = nonfinite_tensors(named)
        if bad:
            epoch = self.state["epoch"]
            raise NonFiniteLossError(
                f"non-finite values in {', '.join(bad)} at the {split} evaluation after epoch "
                f"{epoch}; the run stops. {self._kept()} Lower trainer.lr.",
                epoch,
                terms=bad,
            )
        return self.evaluator.evaluate_scorer(scorer, split)

    def fit_closed_form(self) -> None:
        """A closed-form model's "training": ``model.fit()`` once, the selection split
        evaluated once, one ``metrics.jsonl`` record (epoch 1, ``train_seconds`` the fit's,
        no losses), the checkpoint. There is nothing to resume: a resumed run whose
        ``results.json`` is missing fits again (a finished one is not refitted: run.py
        returns its results)."""
        if self.cfg.resume:
            log.info("closed-form model: nothing to resume, fitting again")
        self.jsonl.truncate_after(0)
        st = self.state
        t0 = time.perf_counter()
        self.model.fit()
        train_s = time.perf_counter() - t0
        st["epoch"] = 1
        t1 = time.perf_counter()
        metrics = self.evaluate(self.select_split)
        eval_s = time.perf_counter() - t1
        st.update(
            seconds=train_s + eval_s,
            best_value=metrics[self.cfg.metric],
            best_epoch=1,
            best_metrics=metrics,
        )
        record = {
            "epoch": 1,
            "split": self.select_split,
            "losses": {},
            "metrics": metrics,
            "train_seconds": train_s,
            "eval_seconds": eval_s,
            "wall_seconds": st["seconds"],
            "best_epoch": 1,
            "protocol": self.cfg.protocol,
        }
        self.jsonl.log(record)
        self.save_checkpoint()
        self.logger.log(record)
        log.info(
            "fitted in %.2fs  %s %.5f  eval %.2fs",
            train_s,
            self.cfg.metric,
            metrics[self.cfg.metric],
            eval_s,
        )

    def fit(self, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
        """Train until ``epochs`` or early stopping; restore the best state; evaluate test.
        A closed-form model is fitted once instead (:meth:`fit_closed_form`).

        Args:
            checkpoint: a checkpoint already read (and checked) to resume from; without it,
                ``config.resume`` reads ``checkpoint.pt`` if there is one.

        Returns:
            ``{"valid": {...}, "test": {...}, "best_epoch", "protocol", "seconds", ...}``.

        Raises:
            NonFiniteLossError: training diverged (see ``trainer.on_nonfinite``).
        """
        if self.closed_form:
            self.fit_closed_form()
        elif checkpoint is not None or self.cfg.resume:
            self.load_checkpoint(checkpoint)
        st = self.state
        # a resumed run's results say so: its total_seconds (run.py) counts from the resume
        resumed_from = 0 if self.closed_form else st["epoch"]
        while not self.closed_form and st["epoch"] < self.cfg.epochs and not st["stopped_early"]:
            epoch = st["epoch"] + 1
            t0 = time.perf_counter()
            losses = self.train_epoch(epoch)
            train_s = time.perf_counter() - t0
            st["epoch"] = epoch
            st["seconds"] += train_s
            skipped = {"skipped_batches": self.skipped} if self.skip_nonfinite else {}
            st["skipped_batches"] += self.skipped
            # every epoch's loss components reach the dashboard; metrics.jsonl keeps one
            # record per evaluation (the output contract)
            self.logger.log(
                {"epoch": epoch, "split": "train", "losses": losses, "train_seconds": train_s}
                | skipped
            )
            if epoch % self.cfg.eval_every and epoch != self.cfg.epochs:
                continue
            t1 = time.perf_counter()
            metrics = self.evaluate(self.select_split)
            fault_point("eval", epoch)
            eval_s = time.perf_counter() - t1
            st["seconds"] += eval_s
            value = metrics[self.cfg.metric]
            improved = value > st["best_value"]
            if improved:
                st.update(best_value=value, best_epoch=epoch, best_metrics=metrics, bad_evals=0)
                st["best_model"] = copy.deepcopy(self.model.state_dict())
            else:
                st["bad_evals"] += 1
                st["stopped_early"] = st["bad_evals"] >= self.cfg.patience
            record = {
                "epoch": epoch,
                "split": self.select_split,
                "losses": losses,
                "metrics": metrics,
                "train_seconds": train_s,
                "eval_seconds": eval_s,
                "wall_seconds": st["seconds"],
                "best_epoch": st["best_epoch"],
                "protocol": self.cfg.protocol,
            } | skipped
            # the record first: if a kill stops the checkpoint, the resume (from the previous
            # checkpoint) drops this record and writes it again; the other order loses it
            self.jsonl.log(record)
            fault_point("record", epoch)
            self.save_checkpoint()
            fault_point("saved", epoch)
            self.logger.log(record)
            log.info(
                "epoch %d  %s  %s %.5f%s  train %.2fs  eval %.2fs",
                epoch,
                "  ".join(f"{k} {v:.4f}" for k, v in losses.items()),
                self.cfg.metric,
                value,
                " *" if improved else "",
                train_s,
                eval_s,
            )
        if st["stopped_early"]:
            log.info("early stop at epoch %d (best %d)", st["epoch"], st["best_epoch"])
        if st["best_model"] is not None:
            self.model.load_state_dict(st["best_model"])
        if self.closed_form and self.select_split == "test":
            test = st["best_metrics"]  # its one fit was just evaluated on test (protocol paper)
        else:
            test = self.evaluate("test")
            if self.select_split == "test" and st["best_metrics"] and test != st["best_metrics"]:
                # the restored state should score what its epoch scored: a difference means
                # state outside state_dict() (or a non-deterministic evaluation); say so
                log.warning(
                    "the restored best model (epoch %d) scores %s on test, its epoch's record "
                    "%s: results.json reports the restored model",
                    st["best_epoch"],
                    _differing(test, st["best_metrics"]),
                    _differing(st["best_metrics"], test),
                )
        results = {
            "valid": st["best_metrics"] if self.select_split == "valid" else {},
            "test": test,
            "best_epoch": st["best_epoch"],
            "epochs_run": st["epoch"],
            "protocol": PROTOCOLS[self.cfg.protocol],
            "selection_split": self.select_split,
            "selection_metric": self.cfg.metric,
            "seconds": st["seconds"],
            "resumed_from_epoch": resumed_from,
        }
        if self.skip_nonfinite:
            results["skipped_batches"] = st["skipped_batches"]
        return results
