"""Losses: one function or small class per formula, reused by every model."""

from sslrec.losses.pairwise import bpr_loss
from sslrec.losses.regularization import L2Reg

__all__ = ["L2Reg", "bpr_loss"]
