"""Pairwise logistic loss over ranked lists (the RankNet objective)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from sslrec.losses.base import RankingBatch, RankingLoss, check_reduction


def pairwise_logistic(
    scores: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """``ℓ_b = Σ_{(p, n): label_bp > label_bn} log(1 + exp(−(s_bp − s_bn)))`` per row ``b``.

    Every ordered pair of entries of the same row whose labels differ is one term, the higher
    label playing ``p``; graded labels are allowed (a 2 beats a 1 and a 0), ties form no pair.
    Each term is ``softplus(s_n − s_p)``, stable at any score.

    Args:
        scores: ``[B, L]`` scores of ``L`` list entries per row.
        labels: ``[B, L]`` relevance labels (bool, int or float).
        mask: ``[B, L]`` bool, ``False`` for padding: such entries take part in no pair.
            ``None`` keeps every entry.
        reduction: ``mean``: the average of ``ℓ_b`` over the rows that have at least one pair
            (a row without a pair, e.g. all padding or all ties, carries no ranking
            information, so it neither adds a term nor dilutes the others: padding a batch with
            empty rows leaves the loss unchanged; a batch without any pair gives 0). ``sum``:
            ``Σ_b ℓ_b``.

    Returns:
        scalar tensor.
    """
    if scores.dim() != 2 or labels.shape != scores.shape:
        raise ValueError(
            "scores and labels must both be [B, L], got "
            f"{tuple(scores.shape)} and {tuple(labels.shape)}"
        )
    if mask is not None and mask.shape != scores.shape:
        raise ValueError(f"mask must be [B, L] = {tuple(scores.shape)}, got {tuple(mask.shape)}")
    check_reduction(reduction)
    labels = labels.to(scores.dtype)
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    # Only an entry whose label exceeds its row's lowest (unmasked) label can play p; keeping the
    # columns that do so in some row makes the pair block [B, W, L] instead of [B, L, L]: for one
    # positive among k negatives W = 1, and the loss costs O(B·k), not O(B·k²).
    row_min = labels.masked_fill(~mask, float("inf")).amin(dim=1, keepdim=True)
    winners = ((labels > row_min) & mask).any(dim=0).nonzero().squeeze(1)
    s_p, y_p, m_p = scores[:, winners], labels[:, winners], mask[:, winners]
    pairs = (y_p.unsqueeze(2) > labels.unsqueeze(1)) & m_p.unsqueeze(2) & mask.unsqueeze(1)
    terms = F.softplus(scores.unsqueeze(1) - s_p.unsqueeze(2))  # [B, W, L]: s_n − s_p
    per_row = torch.where(pairs, terms, torch.zeros_like(terms)).sum(dim=(1, 2))
    if reduction == "sum":
        return per_row.sum()
    has_pair = pairs.flatten(1).any(dim=1)
    return per_row.sum() / has_pair.sum().clamp(min=1)


@dataclass(frozen=True, kw_only=True)
class ListwiseLoss(RankingLoss):
    """Pairwise logistic loss on each user's list ``[s⁺, s⁻_1, …, s⁻_k]``, labels ``[1, 0, …, 0]``.

    With one positive per list the pairs are ``(s⁺, s⁻_j)``, so the loss per user is
    ``Σ_j softplus(s⁻_j − s⁺)``: BPR summed over the user's ``k`` negatives (at ``k = 1``, BPR;
    with ``mean``, ``k`` times :class:`~sslrec.losses.pairwise.BPRLoss`, which averages over
    the ``B·k`` pairs).

    Attributes:
        reduction: ``mean`` over users (every list has ``k`` pairs) or ``sum``.
    """

    reduction: str = "mean"

    name: ClassVar[str] = "listwise"

    def __post_init__(self) -> None:
        check_reduction(self.reduction)

    def __call__(self, batch: RankingBatch) -> torch.Tensor:
        """``pos_scores [B]``, ``neg_scores [B]`` or ``[B, k]`` → scalar."""
        pos = batch.pos_scores.unsqueeze(1)
        neg = batch.neg_scores.reshape(pos.shape[0], -1)
        scores = torch.cat([pos, neg], dim=1)
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1.0
        return pairwise_logistic(scores, labels, reduction=self.reduction)
