"""Sampled softmax cross-entropy of the positive among its sampled negatives, and N-pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from sslrec.losses.base import RankingBatch, RankingLoss, check_reduction, reduce


def candidates(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """``[B, 1 + k]``: ``pos`` ``[B]`` in column 0, then ``neg`` ``[B]`` or ``[B, k]``."""
    if pos.dim() != 1 or neg.dim() not in (1, 2) or neg.shape[0] != pos.shape[0]:
        raise ValueError(
            f"pos must be [B] and neg [B] or [B, k], got {tuple(pos.shape)} and {tuple(neg.shape)}"
        )
    return torch.cat([pos.unsqueeze(1), neg.reshape(pos.shape[0], -1)], dim=1)


def sampled_softmax(
    pos: torch.Tensor,
    neg: torch.Tensor,
    temperature: float = 1.0,
    pos_log_q: torch.Tensor | None = None,
    neg_log_q: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """``−log( exp(z⁺) / (exp(z⁺) + Σ_j exp(z⁻_j)) )`` with logits ``z = s/τ − log q``.

    The cross-entropy of the positive among ``N = 1 + k`` candidates. ``log q`` is subtracted
    from every candidate, the positive included (TF ``sampled_softmax_loss``, its default
    ``subtract_log_q=True``; Yi et al., RecSys 2019, correct the temperature-scaled logit the
    same way), so that the sampled softmax estimates the full softmax under a non-uniform
    proposal ``q``. Computed as ``logsumexp(z) − z⁺``, stable at any score.

    Args:
        pos: ``[B]`` positive scores ``s⁺``.
        neg: ``[B]`` or ``[B, k]`` negative scores ``s⁻``.
        temperature: ``τ > 0``.
        pos_log_q, neg_log_q: log-probabilities of the items under the sampler, shaped like
            ``pos`` and ``neg``; both or neither (``None``: no correction).
        reduction: ``mean`` or ``sum`` over the ``B`` users.

    Returns:
        scalar tensor.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = candidates(pos, neg) / temperature  # [B, 1 + k], the positive first
    if (pos_log_q is None) != (neg_log_q is None):
        raise ValueError("pos_log_q and neg_log_q must be given together")
    if pos_log_q is not None and neg_log_q is not None:
        logits = logits - candidates(pos_log_q, neg_log_q)
    return reduce(torch.logsumexp(logits, dim=1) - logits[:, 0], reduction)


@dataclass(frozen=True, kw_only=True)
class SoftmaxLoss(RankingLoss):
    """Sampled softmax: ``−log softmax([s⁺, s⁻_1..k] / τ − log q)₀`` per user.

    Attributes:
        temperature: ``τ`` (1.0: the plain softmax over the scores).
        log_q_correction: subtract each item's sampling log-probability from its logit. Needs
            ``batch.pos_log_q``/``neg_log_q`` (``trainer.negative_sampling=popularity``); under
            uniform sampling ``log q`` is one constant for every item and cancels in the softmax.
        reduction: ``mean`` or ``sum`` over users.
    """

    temperature: float = 1.0
    log_q_correction: bool = False
    reduction: str = "mean"

    name: ClassVar[str] = "softmax"

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"softmax temperature must be > 0, got {self.temperature}")
        check_reduction(self.reduction)

    def __call__(self, batch: RankingBatch) -> torch.Tensor:
        """``pos_scores [B]``, ``neg_scores [B]`` or ``[B, k]`` (and log q) → scalar."""
        pos_log_q = neg_log_q = None
        if self.log_q_correction:
            if batch.pos_log_q is None or batch.neg_log_q is None:
                raise ValueError(
                    "loss=softmax with log_q_correction=true subtracts each item's log-probability "
                    "under the negative sampler, but this batch has none: use "
                    "trainer.negative_sampling=popularity (under uniform sampling log q is the "
                    "same constant for every item and the correction cancels), or set "
                    "loss.log_q_correction=false"
                )
            pos_log_q, neg_log_q = batch.pos_log_q, batch.neg_log_q
        return sampled_softmax(
            batch.pos_scores,
            batch.neg_scores,
            temperature=self.temperature,
            pos_log_q=pos_log_q,
            neg_log_q=neg_log_q,
            reduction=self.reduction,
        )


@dataclass(frozen=True, kw_only=True)
class NPairLoss(RankingLoss):
    """N-pair loss (Sohn, NeurIPS 2016): ``log(1 + Σ_j exp(s⁻_j − s⁺))`` per user.

    It is :func:`sampled_softmax` at ``τ = 1`` without correction, exactly:
    ``logsumexp([s⁺, s⁻]) − s⁺ = log(e^{s⁺} + Σ_j e^{s⁻_j}) − s⁺ = log(1 + Σ_j e^{s⁻_j − s⁺})``;
    at ``k = 1`` it is BPR, ``softplus(s⁻ − s⁺)``.

    Variants with an offset. Tutorials write the InfoNCE loss over ``N = 1 + k`` candidates and
    the bound ``I(u; i) ≥ log N − L`` (van den Oord et al., 2018), and some average instead of
    sum over the ``N − 1 = k`` negatives: ``L_avg = log((1/k) Σ_j e^{s⁻_j − s⁺})
    = log Σ_j e^{s⁻_j − s⁺} − log k``, which drops the positive from the denominator and shifts
    by the constant ``log k`` (same gradient as ``log Σ_j e^{s⁻_j − s⁺}``). The two forms meet as
    ``L = softplus(L_avg + log k)``. Verified in ``tests/test_ranking_losses.py`` (float64, to
    1e-12): ``L`` equals the softmax loss at ``τ = 1`` and the direct expression, equals
    ``softplus(L_avg + log k)`` and BPR at ``k = 1``, is ``log N`` at equal scores (so the
    estimate ``log N − L`` is 0 there) and is ``≥ 0`` (so the estimate never exceeds ``log N``).
    The bound itself is a statement about expectations and is cited, not tested.

    Attributes:
        reduction: ``mean`` or ``sum`` over users.
    """

    reduction: str = "mean"

    name: ClassVar[str] = "npair"

    def __post_init__(self) -> None:
        check_reduction(self.reduction)

    def __call__(self, batch: RankingBatch) -> torch.Tensor:
        """``pos_scores [B]``, ``neg_scores [B]`` or ``[B, k]`` → scalar."""
        return sampled_softmax(batch.pos_scores, batch.neg_scores, reduction=self.reduction)
