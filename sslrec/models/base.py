"""The interface every recommender implements, and the embedding models' shared objective.

A :class:`Recommender` is trained on :class:`~sslrec.data.Batch` es and returns its objective
as named, weighted terms (``{"bpr": Term(value, 1.0), "ssl": ..., "reg": ...}``); it ranks
through a :class:`~sslrec.evaluation.scoring.Scorer`. :class:`EmbeddingRecommender` is the
common case: users and items as embedding tables, scored by the inner product of the
representations :meth:`~EmbeddingRecommender.propagate` returns, trained with any ranking loss.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sslrec.data.sampling import Batch
from sslrec.devices import host_paths
from sslrec.evaluation.scoring import InnerProductScorer, Scorer
from sslrec.graph.rows import Rows, take
from sslrec.losses import BPRLoss, L2Reg, RankingBatch, RankingLoss, Term


class Recommender(nn.Module):
    """A model trained on (user, positive, negatives) batches and ranked by its own scores.

    Subclasses implement :meth:`loss`, :meth:`score`, :meth:`scorer` and :meth:`embeddings`.

    Args:
        n_users: number of users ``U``.
        n_items: number of items ``I``.
    """

    #: what the constructor needs from the training data besides sizes: ``adjacency`` (the
    #: normalised graph) and/or ``interactions`` (``train_users``/``train_items`` id tensors).
    graph_inputs: ClassVar[tuple[str, ...]] = ()
    #: whether ranking is the inner product of :meth:`embeddings` (then ``embeddings.npz``
    #: reproduces every score)
    inner_product: ClassVar[bool] = True

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items

    def start_epoch(self) -> None:
        """Called by the trainer before every epoch (SSL models redraw their views here)."""

    def loss(self, batch: Batch) -> dict[str, Term]:
        """The objective on one batch, as named terms with their weights (``losses.total``
        sums them)."""
        raise NotImplementedError

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Training-mode scores: ``users`` ``[B]``, ``items`` ``[B]`` or ``[B, k]`` → the shape
        of ``items``."""
        raise NotImplementedError

    def scorer(self) -> Scorer:
        """A no-grad snapshot for ranking (the ranker calls its ``full_scores`` per block)."""
        raise NotImplementedError

    @torch.no_grad()
    def full_scores(self, users: torch.Tensor) -> torch.Tensor:
        """``users`` ``[b]`` → ``[b, I]`` scores of every item; for one-off calls (the ranker
        takes one :meth:`scorer` per evaluation instead)."""
        return self.scorer().full_scores(users)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(users [U, d], items [I, d])`` saved in ``embeddings.npz``."""
        raise NotImplementedError


class EmbeddingRecommender(Recommender):
    """Users and items as ``d``-dimensional embedding tables, scored by the inner product of the
    representations :meth:`propagate` returns.

    Args:
        n_users, n_items: see :class:`Recommender`.
        embedding_dim: ``d``.
        loss: the ranking loss (``conf/loss/``; BPR by default).
        reg: L2 regularisation of the batch embeddings (``conf/model/reg/``).
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        embedding_dim: int = 64,
        loss: RankingLoss = BPRLoss(),
        reg: L2Reg = L2Reg(),
    ) -> None:
        super().__init__(n_users, n_items)
        if not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ValueError(f"model.embedding_dim must be an integer >= 1, got {embedding_dim!r}")
        self.embedding_dim = embedding_dim
        self.user_embedding = nn.Embedding(n_users, embedding_dim)
        self.item_embedding = nn.Embedding(n_items, embedding_dim)
        # Xavier-uniform as official LightGCN/SGL (SELFRec and RecBole do the same).
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        self.ranking_loss = loss
        self.reg = reg

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final representations ``(users [U, d], items [I, d])`` used for scoring."""
        raise NotImplementedError

    def ranked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The representations ranking uses, ``(users [U, d'], items [I, d'])``, whose inner
        product is the score: :meth:`propagate`'s (``d' = d``), L2-normalised row by row when
        the loss ranks by cosine (``loss=ccl``), or, when it ranks by distance
        (``loss=contrastive|triplet``), ``[u, 1]`` and ``[i, −½‖i‖²]`` (``d' = d + 1``): their
        inner product ``u·i − ½‖i‖² = −½‖u − i‖² + ½‖u‖²`` orders each user's items as
        ``−‖u − i‖²`` does, and keeps the one-matmul ranking."""
        users, items = self.propagate()
        loss = self.ranking_loss
        if loss.ranks_by_cosine:
            return F.normalize(users, dim=-1), F.normalize(items, dim=-1)
        if loss.ranks_by_distance:
            half_sq = 0.5 * items.pow(2).sum(-1, keepdim=True)
            return F.pad(users, (0, 1), value=1.0), torch.cat([items, -half_sq], dim=-1)
        return users, items

    @torch.no_grad()
    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self.ranked()
        return users.detach(), items.detach()

    def scorer(self) -> Scorer:
        return InnerProductScorer(*self.embeddings())

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        user_all, item_all = self.ranked()
        return _dot(F.embedding(users, user_all), F.embedding(items, item_all))

    def loss(self, batch: Batch) -> dict[str, Term]:
        """The ranking loss and L2 on one batch, scored by the propagated representations."""
        return self.ranking_terms(*self.propagate(), batch)

    def ranking_terms(
        self,
        user_all: torch.Tensor | Rows,
        item_all: torch.Tensor | Rows,
        batch: Batch,
        ego: tuple[torch.Tensor | Rows, torch.Tensor | Rows] | None = None,
    ) -> dict[str, Term]:
        """The ranking loss's terms on ``batch`` scored with ``user_all`` ``[U, d]`` and
        ``item_all`` ``[I, d]`` (or their :class:`~sslrec.graph.rows.Rows` that hold the
        batch's), then ``reg`` (an SSL model adds its term with :func:`with_ssl`); ``ego``:
        the embedding tables (or their rows) the L2 term reads, ``None``: the embeddings.
        """
        u = take(user_all, batch.users)
        p, n, pos_scores, neg_scores = _scores(u, item_all, batch.pos, batch.neg)
        ranked = RankingBatch(
            pos_scores=pos_scores,
            neg_scores=neg_scores,
            user=u,
            pos=p,
            neg=n,
            pos_log_q=batch.pos_log_q,
            neg_log_q=batch.neg_log_q,
        )
        terms = self.ranking_loss.terms(ranked)
        propagated = (u, p, n)
        reg = (
            self.reg_loss(batch, propagated)
            if ego is None
            else self.reg_loss(batch, propagated, ego)
        )
        terms["reg"] = Term(reg)
        return terms

    def reg_loss(
        self,
        batch: Batch,
        propagated: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        ego: tuple[torch.Tensor | Rows, torch.Tensor | Rows] | None = None,
    ) -> torch.Tensor:
        """The L2 term on the batch's ego (layer-0) rows (read from ``ego``, ``None``: the
        embeddings), or on its ``propagated`` rows."""
        if self.reg.apply_to == "propagated":
            rows = propagated
        elif ego is not None:
            rows = (take(ego[0], batch.users), take(ego[1], batch.pos), take(ego[1], batch.neg))
        else:
            rows = (
                self.user_embedding(batch.users),
                self.item_embedding(batch.pos),
                self.item_embedding(batch.neg),
            )
        return self.reg(*(rows if self.reg.include_negative else rows[:2]))


def with_ssl(terms: dict[str, Term], ssl: torch.Tensor, weight: float) -> dict[str, Term]:
    """``terms`` with ``ssl`` (weight ``λ``) between the ranking terms and ``reg``: the order of
    the sum ``ranking + λ · ssl + reg``."""
    reg = terms.pop("reg")
    terms["ssl"] = Term(ssl, weight)
    terms["reg"] = reg
    return terms


#: the most ids whose gather CUDA differentiates in one kernel: past 3,072 its
#: ``embedding_dense_backward`` sorts the ids and sums segments (~20 launches of cub's radix
#: sort, scans and segment kernels; ``aten/src/ATen/native/cuda/Embedding.cu``)
SMALL_GATHER_IDS = 3072


def _scores(
    u: torch.Tensor,
    item_all: torch.Tensor | Rows,
    pos: torch.Tensor,
    neg: torch.Tensor,
    join: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The rows of ``pos`` ``[B]`` and ``neg`` ``[B]`` (or ``[B, k]``) in ``item_all`` and their
    scores against ``u`` ``[B, d]``: ``(p [B, d], n [B, d] or [B, k, d], pos_scores [B],
    neg_scores [B] or [B, k])``.

    On an accelerator the scores come from one batched product, the backward from two, and
    the items from one gather of their ids side by side (``join``), or from two when joining
    them would move the gather's backward off CUDA's one-kernel path for up to
    :data:`SMALL_GATHER_IDS` ids while each part stays on it (``join=None`` decides so; a batch
    of 2,048 with one negative each: two). A step on an accelerator is bound by its launches:
    on the tiny graph a LightGCN step dispatches 61 operations this way, 68 with two gathers,
    products and sums. The host keeps two gathers, products and sums, bit for bit as before;
    the forms agree to float rounding (tested)."""
    if host_paths(u.device):
        p, n = take(item_all, pos), take(item_all, neg)
        return p, n, (u * p).sum(-1), _dot(u, n)
    many = neg.dim() == 2
    negs = neg if many else neg.unsqueeze(1)  # [B, k]
    b, k = negs.shape
    if join is None:
        join = b * (1 + k) <= SMALL_GATHER_IDS or b * k > SMALL_GATHER_IDS
    if join:
        items = take(item_all, torch.cat((pos.unsqueeze(1), negs), 1))  # [B, 1 + k, d]
        # unbind's backward is one stack; two selects' are two zero-filled copies
        p, n = items.unbind(1) if not many else (items[:, 0], items[:, 1:])
    else:
        p, n = take(item_all, pos), take(item_all, neg)
        items = torch.cat((p.unsqueeze(1), n), 1) if many else torch.stack((p, n), 1)
    scores = torch.bmm(items, u.unsqueeze(-1)).squeeze(-1)  # [B, 1 + k]
    if not many:
        pos_scores, neg_scores = scores.unbind(1)
        return p, n, pos_scores, neg_scores
    pos_scores, neg_scores = scores.split((1, k), 1)
    return p, n, pos_scores.squeeze(1), neg_scores


def _dot(u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """``u`` ``[B, d]`` · ``items`` ``[B, d]`` → ``[B]``, or ``[B, k, d]`` → ``[B, k]``."""
    if items.dim() == 3:
        return torch.bmm(items, u.unsqueeze(-1)).squeeze(-1)
    return (u * items).sum(-1)
