"""Run logging: ``metrics.jsonl`` always, wandb optionally."""

from sslrec.logging.base import JsonlLogger, NullLogger, RunLogger
from sslrec.logging.wandb import WandbLogger

__all__ = ["JsonlLogger", "NullLogger", "RunLogger", "WandbLogger"]
