"""Pairwise ranking losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Bayesian Personalised Ranking: ``softplus(neg - pos) = -log σ(pos - neg)``.

    Args:
        pos: ``[B]`` scores of the positive items.
        neg: ``[B]`` scores of the sampled negatives.
        reduction: ``mean`` (official LightGCN, SimGCL) or ``sum`` (official SGL-Torch).

    Returns:
        scalar tensor.
    """
    loss = F.softplus(neg - pos)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
