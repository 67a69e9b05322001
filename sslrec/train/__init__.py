"""Training: the loop, early stopping, checkpoints, resume, the run directory and seeding."""

from sslrec.train.nonfinite import NonFiniteLossError
from sslrec.train.seeding import seed_everything
from sslrec.train.trainer import PROTOCOLS, Trainer, TrainerConfig

__all__ = ["PROTOCOLS", "NonFiniteLossError", "Trainer", "TrainerConfig", "seed_everything"]
