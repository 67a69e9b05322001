"""Training: the loop, early stopping, checkpoints and seeding."""

from sslrec.train.seeding import seed_everything
from sslrec.train.trainer import PROTOCOLS, Trainer, TrainerConfig

__all__ = ["PROTOCOLS", "Trainer", "TrainerConfig", "seed_everything"]
