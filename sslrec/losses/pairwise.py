"""Pairwise ranking losses: BPR and the hinge (margin ranking) loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sslrec.losses.base import RankingBatch, RankingLoss, check_reduction, pair_up, reduce


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Bayesian Personalised Ranking: ``softplus(s⁻ − s⁺) = −log σ(s⁺ − s⁻)``.

    Args:
        pos: ``[B]`` scores of the positive items.
        neg: ``[B]`` scores of the sampled negatives, or ``[B, k]`` for ``k`` per positive
            (every (positive, negative) pair is one term).
        reduction: ``mean`` (official LightGCN, SimGCL) or ``sum`` (official SGL-Torch) over
            all pairs.

    Returns:
        scalar tensor.
    """
    return reduce(F.softplus(neg - pair_up(pos, neg)), reduction)


def hinge_loss(
    pos: torch.Tensor, neg: torch.Tensor, margin: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Pairwise hinge: ``max(0, m − s⁺ + s⁻)`` per (positive, negative) pair
    (``torch.nn.MarginRankingLoss(margin=m)`` with target 1).

    Args:
        pos: ``[B]``; neg: ``[B]`` or ``[B, k]``; margin: ``m``; reduction: ``mean`` or ``sum``.
    """
    return reduce(torch.relu(margin - pair_up(pos, neg) + neg), reduction)


@dataclass(frozen=True, kw_only=True)
class BPRLoss(RankingLoss):
    """BPR (Rendle et al., UAI 2009), logged as ``bpr``.

    Attributes:
        reduction: ``mean`` (official LightGCN/SimGCL) or ``sum`` (official SGL-Torch).
        weight: see :class:`RankingLoss` (0: "CL only" for an SSL model).
    """

    reduction: str = "mean"
    name = "bpr"

    def __post_init__(self) -> None:
        check_reduction(self.reduction)

    def __call__(self, batch: RankingBatch) -> torch.Tensor:
        return bpr_loss(batch.pos_scores, batch.neg_scores, self.reduction)


@dataclass(frozen=True, kw_only=True)
class HingeLoss(RankingLoss):
    """Pairwise hinge (margin ranking) loss, logged as ``hinge``.

    Attributes:
        margin: ``m``.
        reduction: ``mean`` or ``sum`` over (positive, negative) pairs.
    """

    margin: float = 1.0
    reduction: str = "mean"
    name = "hinge"

    def __post_init__(self) -> None:
        check_reduction(self.reduction)

    def __call__(self, batch: RankingBatch) -> torch.Tensor:
        return hinge_loss(batch.pos_scores, batch.neg_scores, self.margin, self.reduction)
