"""Atomic writes: a crash or kill mid-write never leaves a truncated file behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic(path: Path, write) -> None:
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


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    _atomic(Path(path), lambda fh: torch.save(obj, fh))


def save_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    _atomic(Path(path), lambda fh: fh.write((json.dumps(obj, indent=2) + "\n").encode()))


def save_bytes(data: bytes, path: str | Path) -> None:
    """Write ``data`` atomically."""
    _atomic(Path(path), lambda fh: fh.write(data))


def save_text(text: str, path: str | Path) -> None:
    """Write ``text`` atomically."""
    save_bytes(text.encode(), path)


def load_torch(path: str | Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=False)
