"""The output contract, in one place: atomic writers and the readers of a run directory.

A run directory holds ``config.yaml``, ``metrics.jsonl`` (one JSON object per evaluation),
``results.json``, ``embeddings.npz`` and ``checkpoint.pt``. Every file is written to a temporary
file in the same folder and renamed over its target, so a crash or a kill never leaves a
truncated file behind. This module imports nothing else of sslrec: everything may use it.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
EMBEDDINGS = "embeddings.npz"
CHECKPOINT = "checkpoint.pt"


def _atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old or the new file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_bytes(data: bytes, path: str | Path) -> None:
    """Write ``data`` atomically."""
    _atomic(Path(path), lambda fh: fh.write(data))


def save_text(text: str, path: str | Path) -> None:
    """Write ``text`` atomically."""
    save_bytes(text.encode(), path)


def save_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    save_text(json.dumps(obj, indent=2) + "\n", path)


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    _atomic(Path(path), lambda fh: torch.save(obj, fh))


def load_torch(path: str | Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=False)


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """``np.savez`` (uncompressed) written atomically: ``embeddings.npz``."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    save_bytes(buf.getvalue(), path)


def append_jsonl(record: dict[str, Any], path: str | Path) -> None:
    """Append one JSON line (flushed when the file closes)."""
    with Path(path).open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (``[]`` if it is missing); blank lines and a line cut
    short by a killed writer are skipped."""
    path = Path(path)
    rows = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def format_table(results: dict[str, Any]) -> str:
    """``results.json`` as text: test metrics as rows, the model and each baseline as columns."""
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
