"""``checkpoint.pt``: a run's complete state as plain data, written atomically, read safely.

Layout (every value a tensor, number, string, ``None`` or a list/tuple/dict of them, so the
file loads with ``torch.load(weights_only=True)`` and loading it never runs code)::

    format       2
    model        the model's state_dict (the weights of the epoch checkpointed)
    optimizer    the optimiser's state_dict
    sampler_rng  the training sampler's numpy bit-generator state (PCG64: ints and strings)
    rng          python, numpy and torch global states (:func:`sslrec.train.seeding.rng_state`)
    state        the trainer's bookkeeping: epoch, best_value, best_epoch, best_metrics,
                 bad_evals, seconds, stopped_early and best_model (the selected weights)
    fingerprint  what defines the run (:mod:`sslrec.train.fingerprint`), or None

``model`` and ``state["best_model"]`` are a stable interface: NeuMF pre-training reads a
finished run's weights through ``sslrec.io.load_torch(path)["state"]["best_model"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sslrec.io import UnsafeFileError, load_torch
from sslrec.train.rundir import RunDirError

FORMAT = 2
KEYS = ("model", "optimizer", "sampler_rng", "rng", "state")


class CheckpointError(RunDirError):
    """``checkpoint.pt`` is not a checkpoint this sslrec can resume from (not plain data,
    unreadable, or missing parts); it was not loaded and the directory was left as it was."""


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint without running code (``weights_only=True``) and check its layout.

    ``mmap``: map its tensors instead of reading them (:func:`sslrec.io.load_torch`).

    Raises:
        CheckpointError: it is not plain data, not a torch file, or lacks a part.
    """
    try:
        ckpt = load_torch(path, mmap=mmap)
    except UnsafeFileError as exc:
        raise CheckpointError(
            f"trainer.resume=true refused: {exc}. Delete it to start over, or resume a "
            "checkpoint this sslrec wrote."
        ) from None
    missing = [key for key in KEYS if not isinstance(ckpt, dict) or key not in ckpt]
    if missing:
        raise CheckpointError(
            f"trainer.resume=true refused: {path} is not an sslrec checkpoint (no "
            f"{', '.join(missing)})"
        )
    return ckpt
