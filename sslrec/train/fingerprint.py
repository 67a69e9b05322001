"""What defines a run, so that ``trainer.resume=true`` continues only the run it was given.

A fingerprint is plain data stored in ``checkpoint.pt``::

    {"config": {dotted key: value, ...},      # the resolved config minus RESUMABLE keys
     "data": {file name: {"bytes": size, "sha256": hex digest}, ...}}

``config`` covers the model, loss, augmenter, optimiser and trainer settings, the seed, the
dataset settings and the evaluation; ``data`` the content of every split file read (sha256,
about 1 s per GB, once per run). Resuming with a different fingerprint is refused with the
differing keys, old and new value each (:func:`check_same_run`).

:data:`RESUMABLE` lists the keys that may change on resume, each because it cannot change what
the resumed run computes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sslrec.train.rundir import RunDirError

#: keys (a trailing "." means the whole subtree) a resumed run may change, and why
RESUMABLE = {
    "trainer.epochs": "extends or shortens the run; the epochs already run are unchanged",
    "trainer.patience": "changes only when early stopping ends the run",
    "trainer.resume": "this very switch",
    "trainer.overwrite": "applies to fresh runs only",
    "trainer.progress": "display only",
    "trainer.on_nonfinite": (
        "identical training while every batch is finite; lets a run stopped by a NaN resume "
        "from its last good checkpoint with skip_batch"
    ),
    "logger.": "where records are mirrored (wandb); metrics.jsonl is always written",
    "threads": "CPU threads (a resubmitted job may get other cores); sums may round "
    "differently, so a resume is bit-identical only with the same threads",
    "device": "where it runs (device=auto may pick another device on a resubmitted job); "
    "bit-identity likewise needs the same device",
    "eval.batch_size": "users per score block: the same metrics",
    "eval.item_tile": "items per score tile: the same rankings (tested), another speed",
    "eval.selection": "how a block's top-k is found: the same rankings (tested), another speed",
    "trainer.sampler": "where batches are drawn: on another device the stream differs, like "
    "device itself",
    "data_root": "where the data lives; its content is compared by hash",
    "dataset.path": "likewise",
}


class ResumeMismatchError(RunDirError):
    """``trainer.resume=true`` met a checkpoint (or config.yaml) of a different run."""


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: list(tree) if isinstance(tree, list | tuple) else tree}


def is_resumable(key: str) -> bool:
    """Whether ``key`` may differ between a run and its resume."""
    return any(key.startswith(k) if k.endswith(".") else key == k for k in RESUMABLE)


def config_part(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The run-defining part of a config: resolved, flattened, minus :data:`RESUMABLE` keys
    (and ``hydra``, which is Hydra's, not the run's)."""
    tree = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg
    flat = _flatten({k: v for k, v in tree.items() if k != "hydra"})
    return {k: v for k, v in sorted(flat.items()) if not is_resumable(k)}


def file_digest(path: Path) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex}`` of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def data_part(files: list[Path]) -> dict[str, Any]:
    """Digests of the data files, keyed by file name (the folder may move)."""
    return {path.name: file_digest(path) for path in files}


def run_fingerprint(cfg: DictConfig, files: list[Path]) -> dict[str, Any]:
    """The fingerprint of the run ``cfg`` over the data ``files``."""
    return {"config": config_part(cfg), "data": data_part(files)}


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old → new`` for every key whose value differs (``<absent>`` when missing)."""
    lines = []
    for key in sorted(set(old) | set(new)):
        if key not in old or key not in new or old[key] != new[key]:
            was = repr(old[key]) if key in old else "<absent>"
            now = repr(new[key]) if key in new else "<absent>"
            lines.append(f"{key}: {was} → {now}")
    return lines


def check_same_run(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], source: Path, compare_data: bool = True
) -> None:
    """Refuse to resume unless ``old`` (the fingerprint found in ``source``) matches ``new``.

    Args:
        compare_data: ``False`` when ``old`` is only a config part (read from config.yaml).

    Raises:
        ResumeMismatchError: listing every differing key with its old and new value.
    """
    if old is None:
        raise ResumeMismatchError(
            f"trainer.resume=true: {source} carries no run fingerprint (written by an older "
            "sslrec), so it cannot be matched to this run; start a fresh run in another "
            "directory, or pass trainer.overwrite=true trainer.resume=false to replace it"
        )
    diff = [f"config {line}" for line in differences(old["config"], new["config"])]
    if compare_data:
        before, after = old.get("data", {}), new["data"]
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                was, now = _digest(before.get(name)), _digest(after.get(name))
                diff.append(f"data {name}: {was} → {now}")
    if diff:
        listed = "\n  ".join(diff)
        raise ResumeMismatchError(
            f"trainer.resume=true refused: {source} belongs to a different run; differences "
            f"(before → now):\n  {listed}\nKeys that may change on resume: "
            f"{', '.join(k + '*' if k.endswith('.') else k for k in RESUMABLE)}. Nothing "
            "was changed; resume with the original values, or start a fresh run in another "
            "directory."
        )


def _digest(entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "<absent>"
    return f"{entry['bytes']} bytes, sha256 {entry['sha256'][:12]}…"
