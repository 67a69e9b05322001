"""Top-K ranking metrics over a binary hit matrix, one function per metric.

Every function takes

* ``hits``: ``[n, K_max]`` float tensor, ``hits[u, r] = 1`` when the item a model ranked at
  position ``r + 1`` for user ``u`` is relevant (in the user's held-out set), else 0;
* ``n_relevant``: ``[n]`` float tensor, ``|T_u|`` the size of the user's held-out set (≥ 1);
* ``k``: the cut-off, ``k <= K_max``;

and returns ``[n]`` per-user values; the reported figure is their mean over evaluated users.
"""

from __future__ import annotations

import torch


def _discounts(k: int, device: torch.device) -> torch.Tensor:
    """``[k]``: ``1 / log2(r + 1)`` for ranks ``r = 1..k``."""
    return 1.0 / torch.log2(torch.arange(2, k + 2, device=device, dtype=torch.float64))


def recall(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """Recall@k = ``|top-k ∩ T_u| / |T_u|``."""
    return hits[:, :k].sum(1) / n_relevant


def precision(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """Precision@k = ``|top-k ∩ T_u| / k``."""
    return hits[:, :k].sum(1) / k


def ndcg(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """NDCG@k with binary relevance.

    ``DCG = Σ_{r=1..k} rel_r / log2(r + 1)``; ``IDCG = Σ_{r=1..min(|T_u|, k)} 1 / log2(r + 1)``
    (the DCG of a ranking with all relevant items first); NDCG = DCG / IDCG.
    """
    disc = _discounts(k, hits.device)
    dcg = (hits[:, :k].to(torch.float64) * disc).sum(1)
    ideal = torch.cumsum(disc, 0)[(n_relevant.clamp(max=k) - 1).long()]
    return (dcg / ideal).to(hits.dtype)


def hit_rate(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """HitRate@k = 1 if at least one relevant item is in the top k, else 0 (user level)."""
    return (hits[:, :k].sum(1) > 0).to(hits.dtype)


def mrr(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """MRR@k = ``1 / rank`` of the first relevant item within the top k, 0 if there is none."""
    ranks = torch.arange(1, k + 1, device=hits.device, dtype=hits.dtype)
    return (hits[:, :k] / ranks).max(1).values


def average_precision(hits: torch.Tensor, n_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """AP@k = ``Σ_{r=1..k} Precision@r · rel_r / min(|T_u|, k)``; MAP@k is its mean.

    The normaliser ``min(|T_u|, k)`` makes a perfect top-k score 1 (RecBole's convention).
    """
    h = hits[:, :k]
    ranks = torch.arange(1, k + 1, device=hits.device, dtype=hits.dtype)
    prec_at_r = torch.cumsum(h, 1) / ranks
    return (prec_at_r * h).sum(1) / n_relevant.clamp(max=k)


METRICS = {
    "recall": recall,
    "ndcg": ndcg,
    "precision": precision,
    "hit_rate": hit_rate,
    "mrr": mrr,
    "map": average_precision,
}
