"""SimpleX's cosine contrastive loss (CCL; Mao et al., CIKM 2021)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from sslrec.losses.base import RankingBatch, RankingLoss, check_reduction, reduce
from sslrec.losses.normalize import unit_rows


def cosine_scores(
    user: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ŝ⁺ [B], ŝ⁻ [B] or [B, k])``: cosines of the user with its positive and negatives.

    ``F.normalize`` divides by ``max(‖x‖, 1e-12)``, so a zero vector gives cosine 0 and a
    finite gradient.
    """
    u = unit_rows(user)
    u_neg = u.unsqueeze(1) if neg.dim() == user.dim() + 1 else u
    pos_cos = (u * unit_rows(pos)).sum(-1)
    neg_cos = (u_neg * unit_rows(neg)).sum(-1)
    return pos_cos, neg_cos


def ccl_loss(
    pos_cos: torch.Tensor,
    neg_cos: torch.Tensor,
    margin: float = 0.9,
    negative_weight: float | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """``max(0, 1 − ŝ⁺) + (w/k) Σ_j max(0, ŝ⁻_j − m)`` per user.

    The positive term keeps the official ``relu(1 − ŝ⁺)`` (reczoo/RecBox,
    ``CosineContrastiveLoss``): for true cosines it is ``1 − ŝ⁺``, but SimpleX scores the
    dropped-out normalised user vector, ``dropout(û) · î``, which exceeds 1 for a well-aligned
    pair, and there the official term is 0. ``w/k`` times the sum is ``w`` times the mean over
    negatives, as the official code computes it: ``w`` is the weight of the negative side as a
    whole, independent of ``k``.

    Args:
        pos_cos: ``[B]`` cosines ``ŝ⁺`` of the positives (or SimpleX's training scores).
        neg_cos: ``[B]`` or ``[B, k]`` cosines ``ŝ⁻`` of the negatives.
        margin: ``m``: negatives less similar than ``m`` cost nothing.
        negative_weight: ``w``; ``None`` takes ``w = k`` (the plain sum over negatives: the
            official code's behaviour when ``negative_weight`` is unset).
        reduction: ``mean`` or ``sum`` over the ``B`` users.

    Returns:
        scalar tensor.
    """
    neg_cos = neg_cos.reshape(pos_cos.shape[0], -1)
    neg_loss = (neg_cos - margin).clamp(min=0)
    weight = neg_cos.shape[1] if negative_weight is None else negative_weight
    return reduce(torch.relu(1 - pos_cos) + weight * neg_loss.mean(dim=1), reduction)


@dataclass(frozen=True, kw_only=True)
class CCLLoss(RankingLoss):
    """Cosine contrastive loss on the cosines of the representations (not on the scores).

    An embedding model (MF, LightGCN, ...) trained with it ranks by cosine, as MF-CCL does: the
    loss leaves the norms untrained, so ranking by the raw inner product would rank by them too
    (:attr:`~sslrec.losses.base.RankingLoss.ranks_by_cosine`).

    ``max(0, 1 − ŝ⁺) + (w/k) Σ_j max(0, ŝ⁻_j − m)`` per user (:func:`ccl_loss`).

    ``m = 0.9`` is SimpleX's official setting (reczoo/RecBox,
    ``benchmarks/Yelp18/SimpleX_yelp18_x0`` and ``MF_CCL_yelp18_m1``). ``w`` defaults to ``k``
    (the plain sum over negatives, each weighted like the positive), which means the same at
    any ``trainer.num_negatives``; the official configs set ``w = 150`` with 1,000 (SimpleX) or
    800 (MF-CCL) negatives per positive on Yelp18 and ``w = 250`` with 2,000 on Gowalla (per
    negative 0.15 and 0.125): set ``w`` and ``k`` together, as the SimpleX experiment configs
    do. With few negatives ``w = 150`` would weigh one negative 150 times the positive.

    Attributes:
        margin: ``m`` in ``[-1, 1)``.
        negative_weight: ``w ≥ 0``; ``null`` takes ``w = k``.
        reduction: ``mean`` or ``sum`` over users.
    """

    margin: float = 0.9
    negative_weight: float | None = None
    reduction: str = "mean"

    name: ClassVar[str] = "ccl"
    needs_representations: ClassVar[bool] = True
    ranks_by_cosine: ClassVar[bool] = True  # MF-CCL scores cos(u, i); the norms are untrained

    def __post_init__(self) -> None:
        if not -1 <= self.margin < 1:
            raise ValueError(f"ccl margin must be in [-1, 1), got {self.margin}")
        if self.negative_weight is not None and self.negative_weight < 0:
            raise ValueError(
                f"ccl negative_weight must be >= 0 or null, got {self.negative_weight}"
            )
        check_reduction(self.reduction)

    def __call__(self, batch: RankingBatch) -> torch.Tensor:
        """``user [B, d]``, ``pos [B, d]``, ``neg [B, d]`` or ``[B, k, d]`` → scalar."""
        pos_cos, neg_cos = cosine_scores(*batch.representations(self.name))
        return ccl_loss(
            pos_cos,
            neg_cos,
            margin=self.margin,
            negative_weight=self.negative_weight,
            reduction=self.reduction,
        )
