"""The output contract, in one place: atomic writers and the readers of a run directory.

A run directory holds ``config.yaml``, ``metrics.jsonl`` (one JSON object per evaluation),
``results.json``, ``embeddings.npz`` and ``checkpoint.pt`` (plus ``error.txt`` for a failed
sweep job, and ``.lock`` while a run holds it). Every file is written to a temporary file
``.NAME.XXXX.tmp`` in the same folder and renamed over its target, so a crash or a kill never
leaves a truncated file behind; the next run in the folder removes such leftovers
(:func:`remove_temporaries`). Files get the permissions ``0o666 & ~umask`` like any file the
user creates (``mkstemp`` alone would make them ``0600``). Nothing here runs code from a file:
torch files load with ``weights_only=True``. This module imports nothing else of sslrec:
everything may use it.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
EMBEDDINGS = "embeddings.npz"
CHECKPOINT = "checkpoint.pt"
ERROR = "error.txt"
#: the files one run writes into its directory (what a fresh run refuses to mix with)
OUTPUTS = (CONFIG, METRICS, RESULTS, EMBEDDINGS, CHECKPOINT, ERROR)


class UnsafeFileError(ValueError):
    """A torch file that is not plain data (tensors, numbers, strings, lists, dicts): loading
    it would have to run code named in its pickle, so it was not loaded."""


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only swap it, which would
    briefly apply 0 to files other threads create)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic(
    path: Path,
    write: Callable[[IO[bytes]], Any],
    before_replace: Callable[[], None] | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from the group
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace()
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


def save_torch(
    obj: Any, path: str | Path, before_replace: Callable[[], None] | None = None
) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    ``before_replace`` runs once the data is on disk in the temporary file, just before the
    rename (the fault-injection tests stop the process there).
    """
    _atomic(Path(path), lambda fh: torch.save(obj, fh), before_replace)


def load_torch(path: str | Path, mmap: bool = False) -> Any:
    """A torch file of plain data, on the CPU, loaded with ``weights_only=True``: tensors,
    numbers, strings and lists/tuples/dicts of them, never an object whose unpickling runs
    code (a crafted ``checkpoint.pt`` could otherwise run any command).

    Args:
        path: the file.
        mmap: map the tensors' bytes instead of reading them (copy-on-write: writing to a
            tensor never changes the file): a tensor's pages are read when it is first used,
            so a caller that reads the bookkeeping, or one part, of a checkpoint of several GB
            (EASE's fitted matrix, an optimiser's state) reads little more than that. Files in
            torch's legacy format, which cannot be mapped, are read whole.

    Raises:
        UnsafeFileError: the file names anything else (or is not a torch file at all).
    """
    try:
        if mmap:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap can only be used" not in str(exc):
                    raise
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"WeightsUnpickler error: ([^\n]*)", str(exc))
        reason = found.group(1).split(" Please use")[0] if found else str(exc).splitlines()[0]
        raise UnsafeFileError(
            f"{path}: not a plain-data torch file, so it was not loaded (loading it could run "
            f"code; sslrec loads with torch.load(weights_only=True)): {reason}"
        ) from None
    except (RuntimeError, EOFError) as exc:  # truncated, empty or not a torch file
        raise UnsafeFileError(f"{path}: not a readable torch file: {exc}") from None


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """``np.savez`` (uncompressed) written atomically: ``embeddings.npz``."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    save_bytes(buf.getvalue(), path)


def append_jsonl(record: dict[str, Any], path: str | Path) -> None:
    """Append one JSON line and flush it to disk.

    A last line left without its newline by a killed writer is ended first, so the new record
    never merges with it; the ``fsync`` makes the record durable before whatever the caller
    writes next (the trainer writes the checkpoint after the record it covers).
    """
    with Path(path).open("ab+") as fh:
        fh.seek(0, os.SEEK_END)
        prefix = b""
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            prefix = b"" if fh.read(1) == b"\n" else b"\n"
        fh.write(prefix + (json.dumps(record) + "\n").encode())
        fh.flush()
        os.fsync(fh.fileno())


def parse_jsonl(data: bytes) -> list[dict[str, Any]]:
    """The JSON objects of JSON-lines ``data``; blank lines, a line cut short by a killed
    writer, undecodable bytes and lines that are not objects are skipped."""
    rows = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (``[]`` if it is missing): :func:`parse_jsonl`."""
    path = Path(path)
    return parse_jsonl(path.read_bytes()) if path.is_file() else []


def remove_temporaries(folder: str | Path, names: Iterable[str] = OUTPUTS) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files that killed atomic writes of ``names`` left in
    ``folder``; returns them. Call it only while holding the folder (its run lock): a live
    writer's temporary file looks the same."""
    removed = []
    for name in names:
        for tmp in Path(folder).glob(f".{glob_escape(name)}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters bracketed, matched literally by ``Path.glob``."""
    return re.sub(r"([*?\[])", r"[\1]", name)


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
