"""What the ranker asks of a model: scores of user blocks against every item.

A model hands the ranker a :class:`Scorer` (``Recommender.scorer()``), a no-grad snapshot of
whatever it needs (propagated embeddings, precomputed tower outputs), so that propagation runs
once per evaluation, not once per block of users.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from sslrec.gemm import onednn_linear, onednn_products


@runtime_checkable
class Scorer(Protocol):
    """Scores for ranking.

    Attributes:
        n_items: ``I``.
        device: where the scores are computed.
        block_users: the most users per ``full_scores`` call that keeps one score block within
            the model's memory budget (``None``: the evaluator's ``batch_size`` decides).
    """

    n_items: int
    device: torch.device
    block_users: int | None

    def full_scores(self, users: torch.Tensor) -> torch.Tensor:
        """``users`` ``[b]`` int64 → ``[b, I]`` scores of every item (higher ranks first)."""
        ...

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``users`` ``[B]`` and ``items`` ``[B]`` or ``[B, k]`` → scores of the same shape as
        ``items``."""
        ...


class InnerProductScorer:
    """``s(u, i) = ⟨e_u, e_i⟩``: one ``[b, d] @ [d, I]`` matmul per block of users.

    Args:
        user_emb: ``[U, d]`` user representations.
        item_emb: ``[I, d]`` item representations (transposed once, here).
        compute_dtype: ``None`` scores in the embeddings' dtype (exact); ``torch.bfloat16``
            multiplies bfloat16 copies (tensor cores on a GPU; scores rounded to bfloat16's 8
            significant bits, so near-ties may swap: ``eval.precision=bf16`` trades exactness
            for speed and says so).
    """

    block_users = None

    def __init__(
        self,
        user_emb: torch.Tensor,
        item_emb: torch.Tensor,
        compute_dtype: torch.dtype | None = None,
    ) -> None:
        self.user_emb = user_emb
        self.item_emb = item_emb
        self.compute_dtype = compute_dtype
        item_t = item_emb.t().contiguous()
        self.item_t = item_t if compute_dtype is None else item_t.to(compute_dtype)
        self.n_items = item_emb.shape[0]
        self.device = item_emb.device

    def full_scores(self, users: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``[b, I]`` scores; ``out`` (``[b, I]``, contiguous, exact dtype only) is reused
        instead of a fresh block, whose first touch costs a page fault per 4 KiB."""
        u = self.user_emb[users]
        if self.compute_dtype is None:
            if onednn_products(u, u.shape[0] * self.n_items * u.shape[1]):
                return onednn_linear(u, self.item_emb)  # MKL's slow road on AMD: sslrec.gemm
            return u @ self.item_t if out is None else torch.mm(u, self.item_t, out=out)
        return (u.to(self.compute_dtype) @ self.item_t).float()

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        u = self.user_emb[users]
        i = self.item_emb[items]
        return (u.unsqueeze(1) * i).sum(-1) if items.dim() == 2 else (u * i).sum(-1)
