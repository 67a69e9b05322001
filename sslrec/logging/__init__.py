"""Run logging: ``metrics.jsonl`` always, wandb optionally."""

from sslrec.logging.base import JsonlLogger, NullLogger, RunLogger, read_jsonl
from sslrec.logging.wandb import WandbLogger

__all__ = ["JsonlLogger", "NullLogger", "RunLogger", "WandbLogger", "read_jsonl"]
