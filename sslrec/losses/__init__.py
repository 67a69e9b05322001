"""Losses: one function or small class per formula, reused by every model."""

from sslrec.losses.infonce import InfoNCEHead, info_nce
from sslrec.losses.pairwise import bpr_loss
from sslrec.losses.regularization import L2Reg

__all__ = ["InfoNCEHead", "L2Reg", "bpr_loss", "info_nce"]
