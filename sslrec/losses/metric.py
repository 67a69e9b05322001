"""Metric-learning losses on user and item representations, in Euclidean distance.

The user is the anchor, its positive item should lie near it and its sampled negatives far from
it (Collaborative Metric Learning, Hsieh et al., WWW 2017). Scores are not read: these losses
need a model with representations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from sslrec.losses.base import RankingBatch, RankingLoss, check_reduction, reduce


def squared_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``‖x − y‖²`` over the last dimension (broadcasting); smooth everywhere, unlike ``‖·‖``."""
    return (x - y).pow(2).sum(-1)


def safe_norm(squared: torch.Tensor) -> torch.Tensor:
    """``√squared``, exactly, with gradient 0 rather than NaN where ``squared = 0``.

    ``d√s/ds = 1/(2√s)`` is infinite at 0 and the chain rule then multiplies it by the zero
    gradient of ``s`` at coincident points (``0 · ∞ = NaN``). Masking the input of the root as
    well as its output keeps both passes finite; at ``d = 0`` the direction is undefined and the
    gradient taken is 0.
    """
    positive = squared > 0
    root = torch.sqrt(torch.where(positive, squared, torch.ones_like(squared)))
    return torch.where(positive, root, torch.zeros_like(squared))


def _unsqueeze_items(user: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor):
    """``user``, ``pos`` ``[B, d]`` shaped to broadcast against ``neg`` ``[B, d]``/``[B, k, d]``."""
    if neg.dim() == user.dim() + 1:
        return user.unsqueeze(1), pos.unsqueeze(1)
    return user, pos


def contrastive_loss(
    user: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    margin: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """``(1/N) Σ_pairs [ y·d² + (1 − y)·max(m − d, 0)² ]``, ``d = ‖user − item‖₂``.

    Hadsell, Chopra & LeCun (CVPR 2006), without their ½. Each (user, positive) pair has
    ``y = 1`` and each (user, negative) pair ``y = 0``; ``N = B + B·k``. The positive term uses
    ``d²`` directly; the negative term needs ``d`` itself, taken with :func:`safe_norm`.

    Args:
        user: ``[B, d]`` user representations.
        pos: ``[B, d]`` positive-item representations.
        neg: ``[B, d]`` or ``[B, k, d]`` negative-item representations.
        margin: ``m``, the distance beyond which a negative costs nothing.
        reduction: ``mean`` divides by ``N`` (all pairs); ``sum`` does not.

    Returns:
        scalar tensor.
    """
    user_n, _ = _unsqueeze_items(user, pos, neg)
    pos_term = squared_distance(user, pos)  # [B]
    neg_term = (margin - safe_norm(squared_distance(user_n, neg))).clamp(min=0).pow(2)
    total = pos_term.sum() + neg_term.sum()
    check_reduction(reduction)
    return total if reduction == "sum" else total / (pos_term.numel() + neg_term.numel())


def standard_triplet(
    a: torch.Tensor,
    p: torch.Tensor,
    n: torch.Tensor,
    margin: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """``max(0, ‖a − p‖² − ‖a − n‖² + m)`` per triplet (Schroff et al., FaceNet, CVPR 2015).

    Args:
        a: ``[B, d]`` anchors (users).
        p: ``[B, d]`` positives.
        n: ``[B, d]`` or ``[B, k, d]`` negatives: one triplet per negative.
        margin: ``m``.
        reduction: ``mean`` over the ``B·k`` triplets, or ``sum``.

    Returns:
        scalar tensor.
    """
    a, p = _unsqueeze_items(a, p, n)
    loss = squared_distance(a, p) - squared_distance(a, n) + margin
    return reduce(loss.clamp(min=0), reduction)


def symmetric_triplet(
    a: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    label: torch.Tensor | int,
    margin: float = 1.0,
    clamp: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """The symmetric triplet form taught in some tutorials, for either labelling.

    ``label = 1``: ``x`` is the positive ``p``, ``y`` the negative ``n``:
    ``2‖p − a‖² − ‖p − n‖² − ‖a − n‖² + m``.
    ``label = 0``: ``y`` is the positive, ``x`` the negative:
    ``2‖n − a‖² − ‖n − p‖² − ‖a − p‖² + m`` with ``p = x``, ``n = y``, i.e. the same expression
    with the roles of ``x`` and ``y`` swapped. Unlike the standard form it also pushes the
    negative away from the positive (``‖p − n‖²``), not only from the anchor.

    Args:
        a: ``[B, d]`` anchors.
        x, y: ``[B, d]`` or ``[B, k, d]`` (``x`` may be ``[B, d]`` against ``y`` ``[B, k, d]``).
        label: ``1`` or ``0``, a scalar or a tensor broadcasting against the triplets ``[B(, k)]``.
        margin: ``m``.
        clamp: take ``max(0, ·)``. Unclamped (the tutorial form) the loss is unbounded below:
            on unnormalised representations minimising it pushes negatives away without limit.
        reduction: ``mean`` over the triplets, or ``sum``.

    Returns:
        scalar tensor.
    """
    label = torch.as_tensor(label, device=a.device)
    if not bool(((label == 0) | (label == 1)).all()):
        raise ValueError(f"label must be 0 or 1, got {label.unique().tolist()}")
    label = label.to(torch.bool)
    if max(x.dim(), y.dim()) == a.dim() + 1:  # k negatives per anchor: [B, 1, d] against [B, k, d]
        a, x, y = (t.unsqueeze(1) if t.dim() == a.dim() else t for t in (a, x, y))
        if label.dim() == 1:
            label = label.unsqueeze(1)
    d_ax, d_ay, d_xy = squared_distance(a, x), squared_distance(a, y), squared_distance(x, y)
    loss = torch.where(label, 2 * d_ax - d_xy - d_ay, 2 * d_ay - d_xy - d_ax) + margin
    return reduce(loss.clamp(min=0) if clamp else loss, reduction)


@dataclass(frozen=True, kw_only=True)
class ContrastiveLoss(RankingLoss):
    """Contrastive loss: pull (user, positive) together, push (user, negative) beyond ``m``.

    ``(1/N) Σ y·d² + (1 − y)·max(m − d, 0)²`` over the ``N = B + B·k`` pairs (see
    :func:`contrastive_loss`).

    Attributes:
        margin: ``m`` (Hadsell et al. 2006 use 1 as their example margin).
        reduction: ``mean`` over all pairs, or ``sum``.
    """

    margin: float = 1.0
    reduction: str = "mean"

    name: ClassVar[str] = "contrastive"
    needs_representations: ClassVar[bool] = True
    ranks_by_distance: ClassVar[bool] = True  # it trains distances: rank by −‖u − i‖²

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError(f"contrastive margin must be >= 0, got {self.margin}")
        check_reduction(self.reduction)

    def __call__(self, batch: RankingBatch) -> torch.Tensor:
        """``user [B, d]``, ``pos [B, d]``, ``neg [B, d]`` or ``[B, k, d]`` → scalar."""
        user, pos, neg = batch.representations(self.name)
        return contrastive_loss(user, pos, neg, margin=self.margin, reduction=self.reduction)


@dataclass(frozen=True, kw_only=True)
class TripletLoss(RankingLoss):
    """Triplet loss on (user, positive, negative), squared Euclidean distances.

    ``standard``: ``max(0, ‖a − p‖² − ‖a − n‖² + m)`` (:func:`standard_triplet`; CML's hinge
    without its rank weight). ``symmetric``: :func:`symmetric_triplet` with label 1,
    ``2‖p − a‖² − ‖p − n‖² − ‖a − n‖² + m``.

    Attributes:
        margin: ``m``. 1.0, as :class:`ContrastiveLoss`; CML's official code uses 1.5 (1.9 in
            its example) with every embedding clipped to the unit ball, where squared
            distances are at most 4; here representations are not clipped, so ``m`` sets the
            scale of the embedding together with the regulariser.
        form: ``standard`` or ``symmetric``.
        clamp: ``max(0, ·)`` on the symmetric form. Default true: the standard form is always
            clamped (so ``form=standard`` requires it), and the unclamped symmetric form is
            unbounded below. ``form=symmetric clamp=false`` is the tutorial form exactly.
        reduction: ``mean`` over the ``B·k`` triplets, or ``sum``.
    """

    margin: float = 1.0
    form: str = "standard"
    clamp: bool = True
    reduction: str = "mean"

    name: ClassVar[str] = "triplet"
    needs_representations: ClassVar[bool] = True
    ranks_by_distance: ClassVar[bool] = True  # it trains distances: rank by −‖u − i‖²

    def __post_init__(self) -> None:
        if self.form not in ("standard", "symmetric"):
            raise ValueError(f"triplet form must be 'standard' or 'symmetric', got {self.form!r}")
        if self.form == "standard" and not self.clamp:
            raise ValueError(
                "triplet clamp must be true for form=standard (the standard triplet loss is "
                "always clamped at 0); clamp=false applies to form=symmetric only"
            )
        check_reduction(self.reduction)

    def __call__(self, batch: RankingBatch) -> torch.Tensor:
        """``user [B, d]``, ``pos [B, d]``, ``neg [B, d]`` or ``[B, k, d]`` → scalar."""
        user, pos, neg = batch.representations(self.name)
        if self.form == "standard":
            return standard_triplet(user, pos, neg, margin=self.margin, reduction=self.reduction)
        return symmetric_triplet(
            user, pos, neg, 1, margin=self.margin, clamp=self.clamp, reduction=self.reduction
        )
