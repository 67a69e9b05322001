"""SimpleX (Mao et al., CIKM 2021): a cosine two-tower model with a history-aware user tower,
trained with the cosine contrastive loss (CCL) over many negatives.

User tower (``SimpleX.py``, ``BehaviorAggregator``), for a user ``u`` with history ``H_u``:

    ``v_u = g · e_u + (1 − g) · W_v · agg(h_j : j ∈ H_u)``,   ``û = v_u / ‖v_u‖``

with ``e_u`` the user's embedding, ``h_j`` the history items' embeddings (the item table itself
when ``share_embedding``), ``W_v`` a bias-free ``d × d`` linear map and ``agg`` one of

* ``mean``: ``(1/|H_u|) Σ_j h_j`` (the published Yelp18 and Amazon-Books configs);
* ``user_attention``: ``Σ_j a_j h_j``, ``a = softmax_j(tanh(W_k h_j + b_k) · e_u)`` (Gowalla);
* ``self_attention``: the same with a learnt query ``w_q`` instead of ``e_u``.

Items: ``î = e_i / ‖e_i‖``. Training scores ``s(u, i) = dropout(û) · î`` (dropout on the
normalised user vector, training only); ranking is the cosine ``û · î`` (an inner product:
:meth:`embeddings` are ``û`` and ``î``). The loss is the model's ranking loss, CCL by default
(:class:`~sslrec.losses.CCLLoss`, ``loss=ccl``):
``(1 − s⁺) + w · mean_j max(0, s⁻_j − m)``, computed on these scores (see :meth:`rank_terms`),
plus ``reg = (λ/2) Σ_t ‖E_t‖²_F`` over the whole embedding tables. Nothing loops over users or
negatives in Python: the histories of a batch are one ``embedding_bag`` over a flat list, and
the ``k`` negatives' scores one matmul (:meth:`train_scores`).

Official code (reczoo/RecZoo ``matching/cf/SimpleX`` on reczoo/RecBox v0.0.4; notes section 3)
and the conventions here:

* History of a training row ``(u, i)``: the user's training items **minus** ``i``
  (``convert_*_m1.py``: ``history.remove(item)``; ``exclude_target``); at ranking time the full
  training history. A row longer than ``max_len`` keeps its last ``max_len`` items (``padding:
  pre``) in the data file's order, which sslrec's id-sorted matrix does not keep: here the
  ``max_history`` highest item ids (matters only for ``g < 1`` and users beyond the length).
* The attention's masked softmax (``masked_fill(mask, 0)`` then ``exp``) gives each padding slot
  of the ``[B, max_len]`` history weight ``exp(0) = 1`` in the denominator:
  ``a_j = exp(s_j) / (Σ_k exp(s_k) + (L − |H_u|))`` with ``L = max_len`` (the published Gowalla
  run pads to the longest training history, 810). ``attention_padding=true`` reproduces this;
  ``false`` is the plain softmax over the history.
* Negatives: ``num_negs`` per positive, uniform over all items, with replacement, **without**
  rejecting the user's positives (``ignore_pos_items: False``), drawn afresh every epoch:
  ``num_negatives=k`` draws them here (torch's generator, per batch), ignoring the trainer's;
  ``num_negatives=null`` uses the trainer's (``trainer.num_negatives``, which rejects positives).
* Regulariser: ``embedding_regularizer: λ`` adds ``(λ/2)‖E‖²_F`` of every embedding table (all
  rows, every batch, not divided by ``B``); ``W_v``, ``W_k`` are not regularised.
* Init: embeddings ``N(0, 1e-4²)``; linear layers ``xavier_normal_``, zero bias.
* Not modelled: ``enable_bias`` and ``attention_dropout`` (off in every published config);
  gradient clipping at norm 10 and learning-rate decay ×0.1 with a reload of the best checkpoint
  on every evaluation without improvement (the official trainer's, not the model's).

MF-CCL (the paper's ``MF`` with CCL) is exactly ``g = 1`` (``+experiment=mfccl_yelp2018``):
its user vector is ``dropout(ê_u)``; with ``g = 1`` the history branch is skipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslrec.data.sampling import Batch
from sslrec.devices import host_paths
from sslrec.evaluation.scoring import InnerProductScorer, Scorer
from sslrec.losses import CCLLoss, RankingBatch, RankingLoss, Term, ccl_loss
from sslrec.losses.normalize import unit_rows
from sslrec.models.base import Recommender

AGGREGATORS = ("mean", "user_attention", "self_attention")
#: users per block when :meth:`SimpleX.propagate` builds every user vector (bounds the
#: attention's ``[nnz, d]`` keys: 4096 lastfm-sized histories are ~2 MB)
USER_BLOCK = 4096
#: history slots per block there on an accelerator (:meth:`SimpleX.padded_history`): the
#: attention's ``[B, W, d]`` keys are then at most 1 GiB at d = 64, fp32
PADDED_SLOTS = 1 << 22


class SimpleX(Recommender):
    """SimpleX: ``û = normalise(g·e_u + (1 − g)·W_v·agg(history))``, ``î = normalise(e_i)``.

    Args:
        n_users, n_items: ``U``, ``I``.
        train_users, train_items: ``[E]`` int64 training interactions (the histories).
        embedding_dim: ``d``.
        gamma: ``g``, the weight of the user's own embedding (official code 0.5; Yelp18 1,
            Gowalla 0.8, Amazon-Books 0.5; not yet checked on lastfm).
        aggregator: ``mean``, ``user_attention`` or ``self_attention``.
        max_history: ``L``: the most history items per user (``null``: all); official Yelp18
            and Amazon-Books 500, Gowalla none (its padding length is the longest history).
        attention_padding: the official attention denominator's ``L − |H_u|`` padding slots of
            weight 1 (needs ``max_history``); ``false``: softmax over the history only.
        share_embedding: history items use the item table (Yelp18, Amazon-Books); ``false``:
            their own table (the Gowalla config).
        exclude_target: a training row's history leaves out its positive (official).
        dropout: dropout rate on the normalised user vector during training (``net_dropout``).
        num_negatives: ``k`` uniform negatives per positive drawn by the model, positives not
            rejected (official); ``null``: the trainer's negatives.
        embedding_reg: ``λ`` of ``(λ/2) Σ_t ‖E_t‖²_F`` over the embedding tables.
        init_std: standard deviation of the embeddings' normal init (official 1e-4).
        loss: the ranking loss (CCL: margin 0.9 and ``w = k`` by default, ``conf/loss/ccl.yaml``).
    """

    graph_inputs = ("interactions",)

    def __init__(
        self,
        n_users: int,
        n_items: int,
        train_users: torch.Tensor,
        train_items: torch.Tensor,
        embedding_dim: int = 64,
        gamma: float = 0.5,
        aggregator: str = "mean",
        max_history: int | None = None,
        attention_padding: bool = False,
        share_embedding: bool = True,
        exclude_target: bool = True,
        dropout: float = 0.1,
        num_negatives: int | None = 100,
        embedding_reg: float = 1e-8,
        init_std: float = 1e-4,
        loss: RankingLoss = CCLLoss(),  # noqa: B008 (frozen dataclass)
    ) -> None:
        super().__init__(n_users, n_items)
        _check(embedding_dim, gamma, aggregator, max_history, attention_padding, dropout)
        if num_negatives is not None and (not isinstance(num_negatives, int) or num_negatives < 1):
            raise ValueError(
                f"model.num_negatives must be an integer >= 1 or null, got {num_negatives!r}"
            )
        if embedding_reg < 0 or init_std <= 0:
            raise ValueError("model.embedding_reg must be >= 0 and model.init_std > 0")
        self.embedding_dim = embedding_dim
        self.gamma = float(gamma)
        self.aggregator = aggregator
        self.max_history = max_history
        self.attention_padding = attention_padding
        self.share_embedding = share_embedding
        self.exclude_target = exclude_target
        self.dropout = dropout
        self.num_negatives = num_negatives
        self.embedding_reg = embedding_reg
        self.ranking_loss = loss

        indptr, indices = _csr(train_users, train_items, n_users, n_items)
        self.register_buffer("indptr", indptr, persistent=False)  # [U+1]
        self.register_buffer("indices", indices, persistent=False)  # [E], sorted within rows
        #: the longest training history: the width of :meth:`padded_history`'s slots
        self.longest_history = int((indptr[1:] - indptr[:-1]).max()) if n_users else 0

        self.user_embedding = nn.Embedding(n_users, embedding_dim)
        self.item_embedding = nn.Embedding(n_items, embedding_dim)
        self.history_embedding = None if share_embedding else nn.Embedding(n_items, embedding_dim)
        for table in self.tables():
            nn.init.normal_(table, std=init_std)
        self.W_v = nn.Linear(embedding_dim, embedding_dim, bias=False)
        nn.init.xavier_normal_(self.W_v.weight)
        self.W_k: nn.Linear | None = None
        self.w_q: nn.Parameter | None = None
        if aggregator != "mean":
            self.W_k = nn.Linear(embedding_dim, embedding_dim)
            nn.init.xavier_normal_(self.W_k.weight)
            nn.init.zeros_(self.W_k.bias)
        if aggregator == "self_attention":
            self.w_q = nn.Parameter(nn.init.xavier_normal_(torch.empty(embedding_dim, 1)))

    # -- user tower --------------------------------------------------------------------------
    def tables(self) -> list[torch.Tensor]:
        """The embedding tables ``[U, d]``, ``[I, d]`` (and the history table ``[I, d]``)."""
        tables = [self.user_embedding.weight, self.item_embedding.weight]
        if self.history_embedding is not None:
            tables.append(self.history_embedding.weight)
        return tables

    def history_table(self) -> torch.Tensor:
        """``[I, d]``: the history items' embeddings (the item table when shared)."""
        source = self.item_embedding if self.history_embedding is None else self.history_embedding
        return source.weight

    def history(
        self, users: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The histories of ``users`` ``[B]`` as one flat list, grouped by user.

        Args:
            users: ``[B]`` user ids.
            targets: ``[B]`` positives to leave out of their row's history (training rows), or
                ``None`` for the full training histories (ranking).

        Returns:
            ``(items [n], rows [n], counts [B])``: the history items, the batch row each
            belongs to (non-decreasing), and each row's history length (at most
            ``max_history``; the last items in id order are kept).
        """
        start = self.indptr[users]
        degree = self.indptr[users + 1] - start
        rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), degree)
        offset = torch.arange(len(rows), device=users.device) - (degree.cumsum(0) - degree)[rows]
        items = self.indices[start[rows] + offset]
        if targets is not None and self.exclude_target:
            keep = items != targets[rows]
            items, rows = items[keep], rows[keep]
        counts = torch.bincount(rows, minlength=len(users))
        if self.max_history is not None:
            rank = torch.arange(len(rows), device=users.device) - (counts.cumsum(0) - counts)[rows]
            keep = rank >= counts[rows] - self.max_history
            items, rows = items[keep], rows[keep]
            counts = counts.clamp(max=self.max_history)
        return items, rows, counts

    def aggregate(
        self, uid_emb: torch.Tensor, users: torch.Tensor, targets: torch.Tensor | None
    ) -> torch.Tensor:
        """``W_v · agg(history)`` ``[B, d]`` for ``users`` ``[B]`` with embeddings ``uid_emb``
        ``[B, d]``: one ``embedding_bag`` over the flat histories, no loop over users."""
        if not host_paths(users.device):
            return self._aggregate_padded(uid_emb, users, targets)
        items, rows, counts = self.history(users, targets)
        table = self.history_table()
        offsets = counts.cumsum(0) - counts
        if self.aggregator == "mean":
            total = F.embedding_bag(items, table, offsets, mode="sum")
            # official: sum / (count + 1e-9); an empty history gives 0
            return self.W_v(total / counts.clamp(min=1).unsqueeze(1).to(total.dtype))
        assert self.W_k is not None
        keys = torch.tanh(self.W_k(F.embedding(items, table)))  # [n, d]
        if self.aggregator == "user_attention":
            logits = (keys * uid_emb[rows]).sum(-1)
        else:
            logits = (keys @ self.w_q).squeeze(-1)
        weights = _segment_softmax(logits, rows, counts, self.pad_slots(counts))
        pooled = F.embedding_bag(items, table, offsets, mode="sum", per_sample_weights=weights)
        return self.W_v(pooled)

    def padded_history(
        self, users: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The histories of :meth:`history` as ``[B, W]`` slots, without a size that depends
        on the data (on an accelerator the flat list's would sync the host every step).

        ``W`` is fixed by the training data: the longest history, or ``max_history`` (plus one
        slot for the target a training row leaves out). Each row holds its user's last ``W``
        items in id order, right-aligned; the slots before them, the target and any item past
        the last ``max_history`` are masked.

        Returns:
            ``(items [B, W], keep [B, W] bool)``: masked slots hold some valid item id.
        """
        width = self.history_width(targets is not None and self.exclude_target)
        start = self.indptr[users]
        degree = self.indptr[users + 1] - start
        pos = degree[:, None] - width + torch.arange(width, device=users.device)  # [B, W]
        keep = pos >= 0
        at = (start[:, None] + pos.clamp(min=0)).clamp(max=max(len(self.indices) - 1, 0))
        items = self.indices[at]
        if targets is not None and self.exclude_target:
            keep &= items != targets[:, None]
        if self.max_history is not None:
            kept_after = keep.flip(1).cumsum(1).flip(1)  # kept slots at or right of each slot
            keep &= kept_after <= self.max_history
        return items, keep

    def history_width(self, leaves_target: bool) -> int:
        """``W`` of :meth:`padded_history`: the longest training history, or ``max_history``
        (``+ 1`` if a target is left out) where that is shorter."""
        if self.max_history is None:
            return self.longest_history
        return min(self.longest_history, self.max_history + int(leaves_target))

    def _aggregate_padded(
        self, uid_emb: torch.Tensor, users: torch.Tensor, targets: torch.Tensor | None
    ) -> torch.Tensor:
        """:meth:`aggregate` on :meth:`padded_history`'s ``[B, W]`` slots: masked slots weigh
        0 in the same ``embedding_bag`` sums."""
        items, keep = self.padded_history(users, targets)
        table = self.history_table()
        counts = keep.sum(1)
        if self.aggregator == "mean":
            total = F.embedding_bag(
                items, table, mode="sum", per_sample_weights=keep.to(table.dtype)
            )
            return self.W_v(total / counts.clamp(min=1).unsqueeze(1).to(total.dtype))
        assert self.W_k is not None
        keys = torch.tanh(self.W_k(F.embedding(items, table)))  # [B, W, d]
        if self.aggregator == "user_attention":
            logits = (keys * uid_emb[:, None]).sum(-1)
        else:
            logits = (keys @ self.w_q).squeeze(-1)
        weights = _padded_softmax(logits, keep, self.pad_slots(counts))
        pooled = F.embedding_bag(items, table, mode="sum", per_sample_weights=weights)
        return self.W_v(pooled)

    def pad_slots(self, counts: torch.Tensor) -> torch.Tensor | None:
        """``[B]`` padding slots ``L − |H_u|`` each row's softmax counts, or ``None``."""
        if not self.attention_padding:
            return None
        assert self.max_history is not None
        return (self.max_history - counts).clamp(min=0)

    def user_vectors(
        self, users: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``v_u = g·e_u + (1 − g)·W_v·agg(H_u)``, ``[B, d]``, un-normalised (``targets``: see
        :meth:`history`). ``g = 1`` skips the history (its weight is 0)."""
        uid_emb = self.user_embedding(users)
        if self.gamma == 1:
            return uid_emb
        return self.gamma * uid_emb + (1 - self.gamma) * self.aggregate(uid_emb, users, targets)

    # -- scoring -----------------------------------------------------------------------------
    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Ranking representations ``(û [U, d], î [I, d])``: cosine = inner product."""
        users = torch.arange(self.n_users, device=self.indptr.device)
        block = USER_BLOCK
        if not host_paths(users.device):
            block = max(1, PADDED_SLOTS // max(1, self.history_width(False)))
        blocks = [self.user_vectors(b) for b in users.split(block)]
        return F.normalize(torch.cat(blocks), dim=-1), F.normalize(
            self.item_embedding.weight, dim=-1
        )

    @torch.no_grad()
    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate()

    def scorer(self) -> Scorer:
        return InnerProductScorer(*self.embeddings())

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Cosines ``û · î`` (no dropout) of ``users`` ``[B]`` with ``items`` ``[B]``/``[B, k]``."""
        u = F.normalize(self.user_vectors(users), dim=-1)
        return _dot(u, F.embedding(items, F.normalize(self.item_embedding.weight, dim=-1)))

    # -- objective ---------------------------------------------------------------------------
    def negatives(self, batch: Batch) -> torch.Tensor:
        """``[B, k]`` uniform negatives with replacement, positives not rejected (official), or
        the batch's own when ``num_negatives`` is null."""
        if self.num_negatives is None:
            return batch.neg
        shape = (len(batch.users), self.num_negatives)
        return torch.randint(0, self.n_items, shape, device=batch.users.device)

    def loss(self, batch: Batch) -> dict[str, Term]:
        """The ranking loss's terms on ``s = dropout(û) · î`` of the positive and the negatives,
        then ``reg``."""
        neg = self.negatives(batch)
        u = unit_rows(self.user_vectors(batch.users, batch.pos))
        u = F.dropout(u, self.dropout, self.training)  # after normalising, as the official code
        # normalising the table once costs I·d, less than the B·(k+1) gathered rows
        item_hat = unit_rows(self.item_embedding.weight)
        pos_scores, neg_scores = self.train_scores(u, item_hat, batch.pos, neg)
        terms = self.rank_terms(pos_scores, neg_scores, u, item_hat, batch.pos, neg)
        terms["reg"] = Term(self.reg_loss())
        return terms

    def train_scores(
        self, u: torch.Tensor, item_hat: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s⁺ [B], s⁻ [B] or [B, k])`` of ``u`` ``[B, d]`` with the rows of ``item_hat``.

        When ``I ≤ k·d`` the ``[B, I]`` block of every score is no larger than the ``[B, k, d]``
        negative rows a gather would copy, and one ``[B, d] @ [d, I]`` matmul with a gather of
        its ``k + 1`` scores per row is faster (~1.2-2× on one CPU thread at the lastfm, Yelp18
        and Gowalla shapes) and needs no ``[B, k, d]`` tensor forward or backward; otherwise
        the negatives' rows are gathered and scored by one batched matmul.
        """
        if neg.dim() == 2 and self.n_items <= neg.shape[1] * u.shape[1]:
            scores = u @ item_hat.t()  # [B, I]
            return scores.gather(1, pos.unsqueeze(1)).squeeze(1), scores.gather(1, neg)
        return _dot(u, F.embedding(pos, item_hat)), _dot(u, F.embedding(neg, item_hat))

    def rank_terms(
        self,
        pos_scores: torch.Tensor,
        neg_scores: torch.Tensor,
        u: torch.Tensor,
        item_hat: torch.Tensor,
        pos: torch.Tensor,
        neg: torch.Tensor,
    ) -> dict[str, Term]:
        """The ranking loss's terms. CCL reads the scores, as the official code: under dropout
        ``dropout(û) · î`` is not a cosine, and :class:`CCLLoss` would re-normalise the
        representations. Every other loss gets a :class:`RankingBatch` of these scores and,
        if it reads them, the representations ``u``, ``î⁺``, ``î⁻``."""
        loss = self.ranking_loss
        if isinstance(loss, CCLLoss):
            value = ccl_loss(
                pos_scores,
                neg_scores,
                margin=loss.margin,
                negative_weight=loss.negative_weight,
                reduction=loss.reduction,
            )
            return {loss.name: Term(value, loss.weight)}
        ranked = RankingBatch(pos_scores=pos_scores, neg_scores=neg_scores)
        if loss.needs_representations:
            ranked.user = u
            ranked.pos, ranked.neg = F.embedding(pos, item_hat), F.embedding(neg, item_hat)
        return loss.terms(ranked)

    def reg_loss(self) -> torch.Tensor:
        """``(λ/2) Σ_t ‖E_t‖²_F`` over the whole embedding tables (official
        ``embedding_regularizer``)."""
        if self.embedding_reg == 0:
            return self.user_embedding.weight.new_zeros(())
        return self.embedding_reg / 2 * sum(t.pow(2).sum() for t in self.tables())


def _segment_softmax(
    logits: torch.Tensor, rows: torch.Tensor, counts: torch.Tensor, pad: torch.Tensor | None
) -> torch.Tensor:
    """``[n]`` softmax of ``logits`` within each row (``rows`` ``[n]``, ``counts`` ``[B]``),
    with ``pad`` ``[B]`` extra slots of logit 0 per row in the denominator (or none).

    Shifted by ``m_b = max(0, max_j s_j)`` per row: the same value without overflow.
    """
    shift = logits.new_zeros(len(counts)).scatter_reduce(
        0, rows, logits.detach(), "amax", include_self=True
    )
    e = torch.exp(logits - shift[rows])
    den = torch.zeros_like(shift).index_add(0, rows, e)
    if pad is not None:
        den = den + pad.to(e.dtype) * torch.exp(-shift)
    return e / den[rows]


def _padded_softmax(
    logits: torch.Tensor, keep: torch.Tensor, pad: torch.Tensor | None
) -> torch.Tensor:
    """:func:`_segment_softmax` on ``[B, W]`` slots: ``logits`` of the slots in ``keep``, the
    others weigh 0 (a row with nothing kept and no ``pad``: all 0)."""
    shift = logits.detach().masked_fill(~keep, 0.0).amax(1).clamp(min=0)  # max(0, max_j s_j)
    # masked before the exp: a masked slot's exp can then neither overflow nor pass a gradient
    e = torch.exp((logits - shift[:, None]).masked_fill(~keep, float("-inf")))
    den = e.sum(1)
    if pad is not None:
        den = den + pad.to(e.dtype) * torch.exp(-shift)
    return e / torch.where(den > 0, den, 1.0)[:, None]


def _csr(
    users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(indptr [U+1], indices [E])`` of the interactions, items sorted within each user."""
    order = torch.argsort(users * n_items + items)
    indices = items[order]
    counts = torch.bincount(users, minlength=n_users)
    indptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return indptr, indices


def _check(
    embedding_dim: int,
    gamma: float,
    aggregator: str,
    max_history: int | None,
    attention_padding: bool,
    dropout: float,
) -> None:
    if not isinstance(embedding_dim, int) or embedding_dim < 1:
        raise ValueError(f"model.embedding_dim must be an integer >= 1, got {embedding_dim!r}")
    if not 0 <= gamma <= 1:
        raise ValueError(f"model.gamma must be in [0, 1], got {gamma}")
    if aggregator not in AGGREGATORS:
        raise ValueError(f"model.aggregator must be one of {AGGREGATORS}, got {aggregator!r}")
    if max_history is not None and (not isinstance(max_history, int) or max_history < 1):
        raise ValueError(f"model.max_history must be an integer >= 1 or null, got {max_history!r}")
    if attention_padding and (max_history is None or aggregator == "mean"):
        raise ValueError(
            "model.attention_padding needs an attention aggregator and model.max_history (the "
            "padded length L)"
        )
    if not 0 <= dropout < 1:
        raise ValueError(f"model.dropout must be in [0, 1), got {dropout}")


def _dot(u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """``u`` ``[B, d]`` · ``items`` ``[B, d]`` → ``[B]``, or ``[B, k, d]`` → ``[B, k]`` (one
    batched matmul for all ``k`` negatives)."""
    if items.dim() == 3:
        return torch.bmm(items, u.unsqueeze(-1)).squeeze(-1)
    return (u * items).sum(-1)
