"""The run logger interface and the local JSON-lines logger that every run writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from sslrec.io import append_jsonl, save_text


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
        """Drop records past ``epoch`` (written after the checkpoint a resumed run restarts at)."""
        if not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line).get("epoch", 0) <= epoch
        ]
        save_text("".join(line + "\n" for line in kept), self.path)


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
