"""The run logger interface and the local JSON-lines logger that every run writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from sslrec.io import append_jsonl, parse_jsonl, save_text


class RunLogger(Protocol):
    """Receives one record per evaluation and the final summary."""

    def log(self, record: dict[str, Any]) -> None: ...

    def summary(self, results: dict[str, Any]) -> None: ...

    def finish(self) -> None: ...


class JsonlLogger:
    """Appends each record as one JSON line to ``metrics.jsonl`` (flushed at once)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def log(self, record: dict[str, Any]) -> None:
        append_jsonl(record, self.path)

    def summary(self, results: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass

    def truncate_after(self, epoch: int) -> None:
        """Keep only records up to ``epoch``: a resumed run restarts after its checkpoint's
        epoch, and records past it (written before a kill stopped the checkpoint that would
        have covered them) are written again. A garbled or truncated line (a kill inside the
        append) is dropped too."""
        if not self.path.exists():
            return
        kept = [r for r in parse_jsonl(self.path.read_bytes()) if _epoch(r) <= epoch]
        save_text("".join(json.dumps(r) + "\n" for r in kept), self.path)


def _epoch(record: dict[str, Any]) -> float:
    """A record's epoch; a record without a usable one sorts last, so a resume drops it."""
    value = record.get("epoch")
    return value if isinstance(value, int) and not isinstance(value, bool) else float("inf")


class NullLogger:
    """Logs nothing beyond ``metrics.jsonl`` (``logger=none``); accepts and ignores metadata."""

    def __init__(self, **metadata: Any) -> None:
        pass

    def log(self, record: dict[str, Any]) -> None:
        pass

    def summary(self, results: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass
