"""The run logger interface and the local JSON-lines logger that every run writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol


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
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def summary(self, results: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass

    def truncate_after(self, epoch: int) -> None:
        """Drop records past ``epoch`` (written after the checkpoint a resumed run restarts at)."""
        if not self.path.exists():
            return
        from sslrec.train.checkpoint import save_text

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
