"""MixGCF (Huang et al., KDD 2021): hard negatives synthesised by positive and hop mixing.

Official code: huangtinglin/MixGCF @ e659f4a (``modules/LightGCN.py``). LightGCN propagates
``[E^(0), ..., E^(L)]``; for each (user, positive) with ``M`` uniformly sampled candidates:

* positive mixing, per layer ``l``: ``ẽ_{m,l} = α_l e_{p,l} + (1 − α_l) e_{m,l}``, ``α_l ~ U(0, 1)``
  drawn per batch row and layer, shared by the ``M`` candidates;
* hop mixing: per layer, the candidate ``m*_l = argmax_m ⟨ū, ẽ_{m,l}⟩`` with ``ū`` the pooled
  (mean over layers) user representation; the synthetic negative is ``[ẽ_{m*_0,0}, ...,
  ẽ_{m*_L,L}]``, pooled like every other representation (mean over layers ``0..L``).

The ranking loss scores it as the batch's negative; gradients flow through the mixture into the
positive and the selected candidates (the argmax itself is not differentiated).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sslrec.data.sampling import Batch
from sslrec.losses import RankingBatch, Term
from sslrec.models.lightgcn import LightGCN


class MixGCF(LightGCN):
    """LightGCN trained against MixGCF's synthetic hard negatives.

    Batches must carry ``n_negs`` candidates per positive: ``batch.neg`` ``[B, n_negs]``
    (uniform, the user's training items rejected, as the official ``get_feed_dict``). The model
    declares it (:attr:`required_negatives`), so the trainer's sampler draws ``n_negs`` when
    ``trainer.num_negatives`` is left at 1.

    The ``reg`` term is the :class:`~sslrec.losses.L2Reg` of the layer-0 rows of the user, the
    positive and the synthetic negative's layer-0 vector ``α_0 e_p^(0) + (1 − α_0) e_{m*_0}^(0)``
    (official: ``λ ½(‖u⁰‖² + ‖p⁰‖² + ‖ñ⁰‖²) / B``, λ = 1e-4); with ``apply_to=propagated`` the
    pooled rows instead.

    Args:
        n_negs: ``M`` candidates per positive (official parser default and yelp2018: 64; 16
            here, a 4× cheaper step for small data, not yet checked on lastfm's validation
            split).
        **kwargs: the :class:`LightGCN` arguments (official: 3 layers, d = 64, mean over
            layers ``0..L``, BPR mean, the LightGCN reg).
    """

    def __init__(self, n_negs: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(n_negs, int) or n_negs < 1:
            raise ValueError(f"model.n_negs must be an integer >= 1, got {n_negs!r}")
        self.n_negs = n_negs

    @property
    def required_negatives(self) -> int:
        """What the trainer's sampler must draw per positive: the ``n_negs`` candidates."""
        return self.n_negs

    def check_candidates(self, neg: torch.Tensor) -> None:
        """Refuse a batch whose negatives are not ``[B, n_negs]``, with the remedy."""
        got = "[B] negatives (trainer.num_negatives=1)" if neg.dim() == 1 else None
        if neg.dim() == 2 and neg.shape[1] != self.n_negs:
            got = f"[B, {neg.shape[1]}] negatives (trainer.num_negatives={neg.shape[1]})"
        if got is not None:
            raise ValueError(
                f"model=mixgcf synthesises each negative from model.n_negs={self.n_negs} "
                f"candidates and needs batches of [B, {self.n_negs}] negatives, got {got}: "
                f"leave trainer.num_negatives at 1 or set it to {self.n_negs}"
            )

    def synthesize(
        self,
        user_pooled: torch.Tensor,
        pos_layers: torch.Tensor,
        item_layers: list[torch.Tensor],
        candidates: torch.Tensor,
    ) -> torch.Tensor:
        """The synthetic negatives' layers ``[B, L+1, d]``.

        Args:
            user_pooled: ``[B, d]`` pooled batch users ``ū``.
            pos_layers: ``[B, L+1, d]`` the positives' layers.
            item_layers: ``L+1`` tensors ``[I, d]``, every item's layers.
            candidates: ``[B, M]`` candidate item ids.
        """
        n_rows, n_layers = pos_layers.shape[:2]
        alpha = torch.rand(n_rows, 1, n_layers, 1, device=pos_layers.device)  # per row, layer
        with torch.no_grad():  # only the argmax of the scores is used (official .detach())
            # ⟨ū, α e_p + (1 − α) e_m⟩ = α ⟨ū, e_p⟩ + (1 − α) ⟨ū, e_m⟩: the [B, M, L+1, d]
            # mixtures are never built (memory-bound passes that dominated the step)
            a = alpha[:, :, :, 0]  # [B, 1, L+1]
            to_pos = (user_pooled.unsqueeze(1) * pos_layers).sum(-1).unsqueeze(1)  # [B, 1, L+1]
            user_col = user_pooled.unsqueeze(-1)  # [B, d, 1]
            gathered = (F.embedding(candidates, x) for x in item_layers)  # [B, M, d] each
            to_cand = torch.cat([torch.bmm(g, user_col) for g in gathered], dim=-1)
            scores = a * to_pos + (1 - a) * to_cand  # [B, M, L+1]
            chosen = candidates.gather(1, scores.argmax(dim=1))  # [B, L+1] item per layer
        # F.embedding, not indexing: its backward sums duplicate rows deterministically
        neg_layers = torch.stack(
            [F.embedding(chosen[:, k], x) for k, x in enumerate(item_layers)], dim=1
        )
        a = alpha.squeeze(1)  # [B, L+1, 1]
        return a * pos_layers + (1 - a) * neg_layers

    def loss(self, batch: Batch) -> dict[str, Term]:
        """The ranking terms with the synthetic negative, then ``reg``."""
        self.check_candidates(batch.neg)
        layers = self.layers()
        user_all, item_all = self.split(self.combine(layers))
        item_layers = [self.split(x)[1] for x in layers]
        u = F.embedding(batch.users, user_all)
        p = F.embedding(batch.pos, item_all)
        pos_layers = torch.stack([F.embedding(batch.pos, x) for x in item_layers], dim=1)
        synthetic = self.synthesize(u, pos_layers, item_layers, batch.neg)  # [B, L+1, d]
        n = self.combine(list(synthetic.unbind(1)))  # pooled like every representation
        ranked = RankingBatch(
            pos_scores=(u * p).sum(-1), neg_scores=(u * n).sum(-1), user=u, pos=p, neg=n
        )
        terms = self.ranking_loss.terms(ranked)
        if self.reg.apply_to == "propagated":
            rows = (u, p, n)
        else:
            ego = (self.user_embedding(batch.users), self.item_embedding(batch.pos))
            rows = (*ego, synthetic[:, 0])  # the mixed negative's layer-0 vector (official)
        terms["reg"] = Term(self.reg(*(rows if self.reg.include_negative else rows[:2])))
        return terms
