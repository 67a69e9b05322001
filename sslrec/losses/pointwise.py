"""Pointwise binary cross-entropy (NeuMF's objective) and its mix with a ranking loss."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from sslrec.losses.base import RankingBatch, RankingLoss, Term, check_reduction
from sslrec.losses.pairwise import BPRLoss


def bce_loss(pos: torch.Tensor, neg: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``Σ −log σ(z⁺) + Σ −log(1 − σ(z⁻))`` = ``Σ softplus(−z⁺) + Σ softplus(z⁻)``.

    Binary cross-entropy with logits: each positive is an instance with label 1 and each
    sampled negative one with label 0 (official NeuMF: Keras ``binary_crossentropy`` over the
    instances, each positive followed by its ``k`` negatives, averaged over all of them).

    Args:
        pos: ``[B]`` logits ``z⁺`` of the positives.
        neg: ``[B]`` or ``[B, k]`` logits ``z⁻`` of the negatives.
        reduction: ``mean`` over all ``B + B·k`` instances, or ``sum``.

    Returns:
        scalar tensor.
    """
    check_reduction(reduction)
    total = F.softplus(-pos).sum() + F.softplus(neg).sum()
    return total if reduction == "sum" else total / (pos.numel() + neg.numel())


@dataclass(frozen=True, kw_only=True)
class BCELoss(RankingLoss):
    """Pointwise BCE on ``batch.logits()``: the model's CTR head if it has one, else the scores.

    Attributes:
        reduction: ``mean`` over all ``B + B·k`` logits (official NeuMF) or ``sum``.
    """

    reduction: str = "mean"

    name: ClassVar[str] = "bce"

    def __post_init__(self) -> None:
        check_reduction(self.reduction)

    def __call__(self, batch: RankingBatch) -> torch.Tensor:
        """``pos [B]``, ``neg [B]`` or ``[B, k]`` logits → scalar."""
        return bce_loss(*batch.logits(), reduction=self.reduction)


def _weighted_sum(terms: dict[str, Term]) -> torch.Tensor | float:
    """``Σ weight · value`` over the terms of nonzero weight (0 when there are none)."""
    out: torch.Tensor | float = 0.0
    for term in terms.values():
        if term.weight != 0:
            out = out + (term.value if term.weight == 1 else term.weight * term.value)
    return out


@dataclass(frozen=True, kw_only=True)
class JointLoss(RankingLoss):
    """``α · ranking + (1 − α) · BCE``: a ranking loss mixed with pointwise BCE.

    ``terms()`` keeps each part under its own name: the ranking loss's terms with their weights
    multiplied by ``α`` (e.g. ``bpr``, or ``align`` and ``uniform``) and the BCE's multiplied by
    ``1 − α`` (``bce``); ``weight`` multiplies all of them. At ``α = 1`` the total is the ranking
    loss, at ``α = 0`` the BCE, exactly (weight-0 terms are still logged, not added).

    Attributes:
        ranking: the ranking loss (default BPR).
        bce: the pointwise loss, on the model's CTR-head logits where it has them.
        alpha: ``α ∈ [0, 1]``, the ranking share.
    """

    ranking: RankingLoss = field(default_factory=BPRLoss)
    bce: BCELoss = field(default_factory=BCELoss)
    alpha: float = 0.5

    name: ClassVar[str] = "joint"

    def __post_init__(self) -> None:
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"joint alpha must be in [0, 1], got {self.alpha}")

    @property
    def needs_representations(self) -> bool:  # type: ignore[override]
        """Whether the ranking loss reads representations (BCE never does)."""
        return self.ranking.needs_representations

    def __call__(self, batch: RankingBatch) -> torch.Tensor:
        """``α · ranking + (1 − α) · bce`` (each its own weighted terms), a scalar."""
        out = self.alpha * _weighted_sum(self.ranking.terms(batch)) if self.alpha != 0 else 0.0
        if self.alpha != 1:
            out = out + (1 - self.alpha) * _weighted_sum(self.bce.terms(batch))
        return out  # type: ignore[return-value]

    def terms(self, batch: RankingBatch) -> dict[str, Term]:
        """The ranking loss's terms scaled by ``α``, then ``bce`` scaled by ``1 − α``."""
        out = {
            name: Term(term.value, term.weight * self.alpha * self.weight)
            for name, term in self.ranking.terms(batch).items()
        }
        for name, term in self.bce.terms(batch).items():
            if name in out:
                raise ValueError(
                    f"loss=joint: the ranking loss already logs a term {name!r}; "
                    "pick a ranking loss other than bce"
                )
            out[name] = Term(term.value, term.weight * (1 - self.alpha) * self.weight)
        return out
