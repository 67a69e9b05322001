"""Training: the loop, atomic checkpoints and seeding."""

from sslrec.train.checkpoint import save_json, save_torch
from sslrec.train.seeding import seed_everything
from sslrec.train.trainer import PROTOCOLS, Trainer, TrainerConfig

__all__ = ["PROTOCOLS", "Trainer", "TrainerConfig", "save_json", "save_torch", "seed_everything"]
