"""The run configuration: its Hydra schema, and the checks every value passes before a run
touches a file or reads data.

Two layers:

* **Types, at compose time** (Hydra structured configs, registered in the ConfigStore when
  ``sslrec.__main__`` is imported). The ``trainer`` group is typed by :class:`TrainerConfig`
  (``conf/trainer/default.yaml`` lists ``schema`` first in its defaults) and the ``eval`` node by
  :class:`EvalConfig` (``eval_schema`` in ``conf/config.yaml``): ``trainer.epochs=ten`` or
  ``eval.ks=[a]`` stop while Hydra composes, naming the key, and a misspelt key
  (``trainer.epoch=3``) is an error rather than a silently ignored new key. The root stays an
  open dict: a typed root would have to declare every optional group node (``augmenter`` only
  exists for SSL models) and every key other parts add, so ``seed``, ``device`` and ``threads``
  are checked by value instead, below.
* **Values, when the run starts** (:func:`validate_run_config`, which also builds
  :class:`TrainerConfig`, whose ``__post_init__`` checks its own fields). The keys that depend
  on each other (the selection metric must be one the evaluation computes) are checked, and the
  loss, augmenter, InfoNCE head and regulariser nodes are built early so that their
  constructors' checks run before the data is read. The model's own arguments
  (``embedding_dim``, ``num_layers``, ``cl_layer``) are checked by its constructor, after the
  data is read but before the first epoch; ``eval.ks`` against the item count likewise.

Every error is a :class:`ConfigError` that names the key, the value and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

#: selection protocols and what results call them
PROTOCOLS = {
    "validation": "validation (model selected on a validation split carved from train)",
    "paper": "paper (model selected on the TEST split, as in the published code)",
}
OPTIMIZERS = ("adam", "sgd")
ON_NONFINITE = ("stop", "skip_batch")
SAMPLERS = ("auto", "numpy", "device")
PRECISIONS = ("fp32", "bf16")
MAX_SEED = 2**32 - 1  # numpy's generators take seeds in [0, 2**32 - 1]


class ConfigError(ValueError):
    """A configuration value that is not allowed: the message names key, value and rule."""


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{key}={value!r}: {allowed}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) and math.isfinite(value)


def check_int(key: str, value: Any, low: int, high: int | None = None) -> None:
    """``value`` must be an integer in ``[low, high]`` (``high=None``: no upper bound)."""
    if not _is_int(value) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise _fail(key, value, f"must be an integer {bound}")


def check_choice(key: str, value: Any, allowed: tuple[str, ...] | list[str]) -> None:
    """``value`` must be one of ``allowed``."""
    if value not in allowed:
        raise _fail(key, value, f"must be one of {', '.join(map(str, allowed))}")


@dataclass
class TrainerConfig:
    """Settings of the ``trainer`` config group (also its Hydra schema).

    Attributes:
        epochs: maximum number of epochs (>= 1).
        batch_size: positives per step (>= 1).
        lr: learning rate (> 0).
        optimizer: ``adam`` (every model's official code) or ``sgd`` (plain SGD: the NeuMF paper
            fine-tunes a pre-trained NeuMF with it).
        weight_decay: the optimiser's L2 weight decay on every parameter (DirectAU's only
            regulariser); 0 leaves regularisation to the model's ``reg`` term.
        eval_every: evaluate (and checkpoint) every this many epochs, and after the last.
        patience: stop after this many evaluations without improvement of ``metric`` (>= 1).
        metric: the selection metric, e.g. ``recall@20``; one of ``eval.metrics`` × ``eval.ks``.
        protocol: ``validation`` selects on the validation split; ``paper`` selects on test.
        sampling: ``interaction`` (each interaction once an epoch) or ``user_uniform``.
        num_negatives: sampled negatives per positive (``[B]`` for 1, else ``[B, k]``).
        negative_sampling: the negatives' proposal, ``uniform`` or ``popularity``.
        popularity_exponent: ``α >= 0`` of the popularity proposal ``q(i) ∝ count(i)^α``.
        sampler: where batches are drawn: ``auto`` (numpy on the CPU, whose stream every CPU
            run is seeded with; on the model's device otherwise, so no batch crosses from the
            host), ``numpy`` or ``device`` (:mod:`sslrec.data.device_sampling`).
        on_nonfinite: a non-finite loss term (NaN, inf): ``stop`` fails the run at the end of
            the epoch, naming epoch, batch and term, with no per-batch host sync (the default);
            ``skip_batch`` checks every batch's terms and gradients before the optimiser step
            and skips the step of a bad batch, at the price of one host sync per batch.
        resume: continue from ``checkpoint.pt`` in the run directory if it exists.
        overwrite: let a fresh run replace another run's outputs in its directory (they are
            deleted first); without it such a directory is refused.
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
    sampler: str = "auto"
    on_nonfinite: str = "stop"
    resume: bool = False
    overwrite: bool = False
    progress: bool | None = None

    def __post_init__(self) -> None:
        from sslrec.data.sampling import PROPOSALS
        from sslrec.data.sampling import PROTOCOLS as SAMPLING

        check_int("trainer.epochs", self.epochs, 1)
        check_int("trainer.batch_size", self.batch_size, 1)
        check_int("trainer.eval_every", self.eval_every, 1)
        check_int("trainer.patience", self.patience, 1)
        check_int("trainer.num_negatives", self.num_negatives, 1)
        if not _is_number(self.lr) or self.lr <= 0:
            raise _fail("trainer.lr", self.lr, "must be a finite number > 0")
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            raise _fail("trainer.weight_decay", self.weight_decay, "must be a number >= 0")
        if not _is_number(self.popularity_exponent) or self.popularity_exponent < 0:
            raise _fail(
                "trainer.popularity_exponent", self.popularity_exponent, "must be a number >= 0"
            )
        check_choice("trainer.optimizer", self.optimizer, OPTIMIZERS)
        check_choice("trainer.sampler", self.sampler, SAMPLERS)
        check_choice("trainer.protocol", self.protocol, list(PROTOCOLS))
        check_choice("trainer.sampling", self.sampling, SAMPLING)
        check_choice("trainer.negative_sampling", self.negative_sampling, PROPOSALS)
        check_choice("trainer.on_nonfinite", self.on_nonfinite, ON_NONFINITE)
        if not isinstance(self.metric, str) or "@" not in self.metric:
            raise _fail("trainer.metric", self.metric, "must be NAME@K, e.g. recall@20")

    @classmethod
    def from_config(cls, node: Any) -> TrainerConfig:
        """From the ``trainer`` node (or a dict); an unknown key (``+trainer.epoch=3`` gets past
        the schema) is a :class:`ConfigError` listing the known ones."""
        values = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"trainer.{unknown[0]}: unknown key; the trainer keys are {', '.join(known)}"
            )
        return cls(**values)


@dataclass
class EvalConfig:
    """The ``eval`` node: cut-offs, metric names, users per score block, items per score tile
    (``None``: whole rows) and the top-k selection (see
    :func:`sslrec.evaluation.ranker.rank_top_k`) (its schema)."""

    ks: list[int] = field(default_factory=lambda: [10, 20, 50])
    metrics: list[str] = field(
        default_factory=lambda: ["recall", "ndcg", "precision", "hit_rate", "mrr", "map"]
    )
    batch_size: int = 1024
    item_tile: int | None = None
    selection: str = "auto"
    precision: str = "fp32"


def register_schemas() -> None:
    """Put the schemas into Hydra's ConfigStore (idempotent): ``trainer/schema`` and
    ``eval_schema`` (package ``eval``), which the yaml files list in their defaults."""
    store = ConfigStore.instance()
    store.store(group="trainer", name="schema", node=TrainerConfig)
    store.store(name="eval_schema", node=EvalConfig, package="eval")


def validate_run_config(cfg: DictConfig) -> TrainerConfig:
    """Check a composed run configuration before anything is written or read; returns its
    :class:`TrainerConfig`.

    Raises:
        ConfigError: the first value that is not allowed.
    """
    import torch

    from sslrec.evaluation.metrics import METRICS
    from sslrec.evaluation.ranker import SELECTIONS

    trainer = TrainerConfig.from_config(cfg.trainer)
    seed = cfg.get("seed")
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise _fail("seed", seed, "Seed must be between 0 and 2**32 - 1 (numpy's generators)")
    threads = cfg.get("threads")
    if threads is not None:
        check_int("threads", threads, 1)
    check_choice("precision", cfg.get("precision", "fp32"), PRECISIONS)
    device = cfg.get("device", "auto")
    if device != "auto":
        try:
            kind = torch.device(device).type
        except (RuntimeError, TypeError) as exc:
            raise _fail("device", device, f"must be auto, cpu, cuda or cuda:N ({exc})") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise _fail("device", device, "no CUDA device is available here (device=auto picks)")
    ev = cfg.eval
    ks, metrics = list(ev.ks), list(ev.metrics)
    if not ks:
        raise _fail("eval.ks", ks, "must list at least one cut-off")
    for k in ks:
        check_int("eval.ks", k, 1, _known_items(cfg))
    if not metrics:
        raise _fail("eval.metrics", metrics, "must list at least one metric")
    for name in metrics:
        check_choice("eval.metrics", name, sorted(METRICS))
    check_int("eval.batch_size", ev.batch_size, 1)
    check_choice("eval.selection", ev.get("selection", "auto"), SELECTIONS)
    evaluated = [f"{m}@{k}" for m in metrics for k in ks]
    if trainer.metric not in evaluated:
        raise _fail(
            "trainer.metric",
            trainer.metric,
            f"is not evaluated; eval.metrics x eval.ks give {', '.join(evaluated)}",
        )
    dataset = cfg.get("dataset") or {}
    fraction = dataset.get("valid_fraction", 0.1)
    if not _is_number(fraction) or not 0 < fraction < 1:
        raise _fail("dataset.valid_fraction", fraction, "must be a number in (0, 1)")
    check_int("dataset.split_seed", dataset.get("split_seed", 0), 0, MAX_SEED)
    _build_value_nodes(cfg)
    return trainer


def _known_items(cfg: DictConfig) -> int | None:
    """``dataset.n_items`` when the config sets it: the upper bound of ``eval.ks``."""
    n_items = (cfg.get("dataset") or {}).get("n_items")
    return n_items if _is_int(n_items) else None


#: modules whose classes are plain values (losses, heads, regularisers, augmenters): building
#: one early runs its checks and has no other effect
VALUE_MODULES = ("sslrec.losses.", "sslrec.augment.")


def _build_value_nodes(cfg: DictConfig) -> None:
    """Instantiate ``loss``, ``augmenter`` and the model's nested value nodes (``head``,
    ``reg``) so that their constructors' checks (a temperature <= 0, a dropout ratio outside
    [0, 1), a negative noise eps) fail now, not after the data is read."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    nodes = {key: cfg.get(key) for key in ("loss", "augmenter")}
    model = cfg.get("model")
    if isinstance(model, DictConfig):
        nodes |= {f"model.{key}": model.get(key) for key in model}
    for key, node in nodes.items():
        target = node.get("_target_", "") if isinstance(node, DictConfig) else ""
        if not str(target).startswith(VALUE_MODULES):
            continue
        try:
            instantiate(node)
        except InstantiationException as exc:
            cause = exc.__cause__ or exc
            raise ConfigError(f"{key}: {cause}") from None
