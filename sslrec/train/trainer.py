"""The training loop: Adam on the model's loss, periodic evaluation, early stopping, resume."""

from __future__ import annotations

import copy
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from sslrec.data.interactions import Interactions
from sslrec.data.sampling import BPRSampler
from sslrec.evaluation import Evaluator
from sslrec.io import load_torch, save_torch
from sslrec.logging import JsonlLogger, NullLogger, RunLogger
from sslrec.losses import total
from sslrec.models.base import Recommender
from sslrec.train.seeding import rng_state, set_rng_state

log = logging.getLogger(__name__)

PROTOCOLS = {
    "validation": "validation (model selected on a validation split carved from train)",
    "paper": "paper (model selected on the TEST split, as in the published code)",
}


@dataclass
class TrainerConfig:
    """Settings of the ``trainer`` config group.

    Attributes:
        epochs: maximum number of epochs.
        batch_size: positives per step.
        lr: learning rate.
        optimizer: ``adam`` (every model's official code) or ``sgd`` (plain SGD: the NeuMF paper
            fine-tunes a pre-trained NeuMF with it).
        weight_decay: the optimiser's L2 weight decay on every parameter (DirectAU's only
            regulariser); 0 leaves regularisation to the model's ``reg`` term.
        eval_every: evaluate (and checkpoint) every this many epochs, and after the last.
        patience: stop after this many evaluations without improvement of ``metric``.
        metric: the selection metric, e.g. ``recall@20``.
        protocol: ``validation`` selects on the validation split; ``paper`` selects on test.
        sampling: ``interaction`` (each interaction once an epoch) or ``user_uniform``.
        num_negatives: sampled negatives per positive (``[B]`` for 1, else ``[B, k]``).
        negative_sampling: the negatives' proposal, ``uniform`` or ``popularity``.
        popularity_exponent: ``α`` of the popularity proposal ``q(i) ∝ count(i)^α``.
        resume: continue from ``checkpoint.pt`` in the run directory if it exists.
        progress: show a progress bar; ``None`` shows one on a TTY outside CI.
    """

    epochs: int = 1000
    batch_size: int = 2048
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    eval_every: int = 5
    patience: int = 10
    metric: str = "recall@20"
    protocol: str = "validation"
    sampling: str = "interaction"
    num_negatives: int = 1
    negative_sampling: str = "uniform"
    popularity_exponent: float = 1.0
    resume: bool = False
    progress: bool | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"trainer.protocol must be one of {list(PROTOCOLS)}, got {self.protocol!r}"
            )


def make_optimizer(model: torch.nn.Module, config: TrainerConfig) -> torch.optim.Optimizer:
    """Adam or plain SGD over the model's parameters, with ``lr`` and ``weight_decay``."""
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"trainer.optimizer must be 'adam' or 'sgd', got {config.optimizer!r}")


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
        self.sampler = BPRSampler(
            data.train,
            config.batch_size,
            config.sampling,
            seed,
            num_negatives=config.num_negatives,
            negative_sampling=config.negative_sampling,
            popularity_exponent=config.popularity_exponent,
        )
        self.optimizer = make_optimizer(model, config)
        self.jsonl = JsonlLogger(self.out_dir / "metrics.jsonl")
        self.logger = logger or NullLogger()
        self.checkpoint_path = self.out_dir / "checkpoint.pt"
        self.device = next(model.parameters()).device
        self.state: dict[str, Any] = {
            "epoch": 0,
            "best_value": -float("inf"),
            "best_epoch": 0,
            "best_metrics": {},
            "bad_evals": 0,
            "seconds": 0.0,
            "best_model": None,
            "stopped_early": False,
        }

    # -- checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        save_torch(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "sampler_rng": self.sampler.rng.bit_generator.state,
                "rng": rng_state(),
                "state": self.state,
            },
            self.checkpoint_path,
        )

    def load_checkpoint(self) -> bool:
        if not self.checkpoint_path.exists():
            log.info("no checkpoint at %s; starting from scratch", self.checkpoint_path)
            return False
        ckpt = load_torch(self.checkpoint_path)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.sampler.rng.bit_generator.state = ckpt["sampler_rng"]
        set_rng_state(ckpt["rng"])
        self.state = ckpt["state"]
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
        batches. The sums stay on the device in float64 and are read once, at the end."""
        self.model.train()
        self.model.start_epoch()
        sums: dict[str, torch.Tensor] = {}
        n = 0
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
            self.optimizer.step()
            values = {name: term.value for name, term in terms.items()} | {"total": loss}
            for key, value in values.items():
                value = value.detach().to(torch.float64)
                sums[key] = sums[key] + value if key in sums else value
            n += 1
        return {key: float(value) / n for key, value in sums.items()}

    def evaluate(self, split: str) -> dict[str, float]:
        self.model.eval()
        return self.evaluator.evaluate_scorer(self.model.scorer(), split)

    def fit(self) -> dict[str, Any]:
        """Train until ``epochs`` or early stopping; restore the best state; evaluate test.

        Returns:
            ``{"valid": {...}, "test": {...}, "best_epoch", "protocol", "seconds", ...}``.
        """
        if self.cfg.resume:
            self.load_checkpoint()
        st = self.state
        while st["epoch"] < self.cfg.epochs and not st["stopped_early"]:
            epoch = st["epoch"] + 1
            t0 = time.perf_counter()
            losses = self.train_epoch(epoch)
            train_s = time.perf_counter() - t0
            st["epoch"] = epoch
            st["seconds"] += train_s
            # every epoch's loss components reach the dashboard; metrics.jsonl keeps one
            # record per evaluation (the output contract)
            self.logger.log(
                {"epoch": epoch, "split": "train", "losses": losses, "train_seconds": train_s}
            )
            if epoch % self.cfg.eval_every and epoch != self.cfg.epochs:
                continue
            t1 = time.perf_counter()
            metrics = self.evaluate(self.select_split)
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
            }
            self.save_checkpoint()
            self.jsonl.log(record)
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
        test = self.evaluate("test")
        return {
            "valid": st["best_metrics"] if self.select_split == "valid" else {},
            "test": test,
            "best_epoch": st["best_epoch"],
            "epochs_run": st["epoch"],
            "protocol": PROTOCOLS[self.cfg.protocol],
            "selection_split": self.select_split,
            "selection_metric": self.cfg.metric,
            "seconds": st["seconds"],
        }
