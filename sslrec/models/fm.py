"""Factorization machines (Rendle, ICDM 2010) over user, item and side-feature fields.

A training pair ``(u, i)`` is the feature vector ``x`` with a one-hot user, a one-hot item and
the user's and item's side features (``sslrec.data.features``; binary multi-hot, the values
``x_j`` of the sparse matrices the factory passes). The model is Rendle's degree-2 FM::

    s(x) = w_0 + Σ_j w_j x_j + ½ Σ_f [(Σ_j v_jf x_j)² − Σ_j v_jf² x_j²]

computed in ``O(k · n_active)`` (the canonical reformulation, Rendle's Lemma 3.1).

For ``(user, item)`` pairs the sums split into a user part and an item part, and the score is
exactly an inner product of augmented vectors::

    s(u, i) = ⟨[U_u, c_u, 1], [I_i, 1, c_i]⟩,   U_u = Σ_{user-side j} v_j x_j,
    c_u = w_0 + Σ_{user-side j} w_j x_j + ½ (‖U_u‖² − Σ_{user-side j} ‖v_j‖² x_j²),

and ``I_i``, ``c_i`` likewise (without ``w_0``). Training uses the canonical formula; ranking
and ``embeddings.npz`` use the augmented vectors (``[U, k + 2]``, ``[I, k + 2]``), so the
inner-product fast path ranks FM and the exported vectors reproduce every score. Losses on
representations see the augmented vectors too.

Loss: BPR by default: the FM paper's ranking task optimises pairs of feature vectors with a
pairwise classification loss such as BPR (Rendle 2010, Sec. III-B). It ranks the item side
only: the user-side terms ``c_u`` cancel in ``s(u, i) − s(u, j)`` and in every user's ranking,
so BPR leaves ``w_0`` and the user biases at their initial 0 and trains the user-side factors
only through ``⟨U_u, I_i⟩`` (``c_u`` matters for pointwise losses such as ``loss=bce``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sslrec.data.sampling import Batch
from sslrec.evaluation.scoring import InnerProductScorer, Scorer
from sslrec.losses import BPRLoss, L2Reg, RankingBatch, RankingLoss, Term
from sslrec.models.base import Recommender


class FeatureBag(nn.Module):
    """Each row's feature list from a sparse CSR ``[R, F]`` matrix (``None``: no features), for
    pooling feature tables without a Python loop over rows.

    The index arrays are buffers (they follow the module's device), not parameters or state.
    """

    def __init__(self, matrix: torch.Tensor | None, n_rows: int) -> None:
        super().__init__()
        if matrix is None:
            indptr = torch.zeros(n_rows + 1, dtype=torch.int64)
            indices = torch.zeros(0, dtype=torch.int64)
            values = torch.zeros(0)
            self.n_features = 0
        else:
            if matrix.layout != torch.sparse_csr:
                matrix = matrix.to_sparse_csr()
            if matrix.shape[0] != n_rows:
                raise ValueError(f"features have {matrix.shape[0]} rows, expected {n_rows}")
            indptr = matrix.crow_indices().to(torch.int64)
            indices = matrix.col_indices().to(torch.int64)
            values = matrix.values().to(torch.float32)
            self.n_features = int(matrix.shape[1])
        self.register_buffer("indptr", indptr.cpu(), persistent=False)
        self.register_buffer("indices", indices.cpu(), persistent=False)
        self.register_buffer("values", values.cpu(), persistent=False)

    def _gather(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(features [n], values [n], segment [n])`` of the flat ``rows``' feature lists."""
        start = self.indptr[rows]
        count = self.indptr[rows + 1] - start
        total = int(count.sum())
        seg = torch.repeat_interleave(
            torch.arange(len(rows), device=rows.device), count, output_size=total
        )
        first = torch.cumsum(count, 0) - count  # where each row's run starts in the output
        pos = (start - first)[seg] + torch.arange(total, device=rows.device)
        return self.indices[pos], self.values[pos], seg

    def pool(self, weight: torch.Tensor, rows: torch.Tensor, power: int = 1) -> torch.Tensor:
        """``Σ_j x_j^power · weight_j`` over each row's features: ``rows`` ``[...]`` →
        ``[..., d]`` (``weight`` ``[F, d]``; zeros for a row without features)."""
        flat = rows.reshape(-1)
        feats, values, seg = self._gather(flat)
        rows_emb = F.embedding(feats, weight) * values.to(weight.dtype).pow(power).unsqueeze(-1)
        out = weight.new_zeros(len(flat), weight.shape[1]).index_add(0, seg, rows_emb)
        return out.view(*rows.shape, weight.shape[1])

    def mean(self, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The ``x``-weighted mean of each row's feature rows (zeros without features)."""
        x_sum = self.pool(weight.new_ones(self.n_features, 1), rows)
        return self.pool(weight, rows) / x_sum.clamp_min(1e-12)

    def forward(self, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self.pool(weight, rows)


class FM(Recommender):
    """A degree-2 factorization machine over one-hot user and item fields plus optional side
    features, trained with any ranking loss and ranked by augmented inner products.

    Args:
        n_users, n_items: see :class:`Recommender`.
        user_features, item_features: binary sparse CSR ``[U, F_u]`` / ``[I, F_i]`` (passed by
            the factory from the dataset's ``user_features.txt``/``item_features.txt``), or
            ``None``: the field is absent.
        embedding_dim: ``k``, the factor size.
        init_std: the factors' normal init std; biases start at 0. 0.01, chosen on lastfm's
            validation split (recall@20 0.228 after 60 epochs at lr 1e-3, against 0.153 with
            libFM's default ``init_stdev`` 0.1).
        loss: the ranking loss (BPR by default, see the module docstring).
        reg: L2 on the batch's one-hot user/item factor rows (``apply_to: ego``) or on the
            fields' summed factors ``U_u``, ``I_i`` (``propagated``); biases and side-feature
            factors are left to ``trainer.weight_decay``.
    """

    graph_inputs = ("features",)
    inner_product = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        user_features: torch.Tensor | None = None,
        item_features: torch.Tensor | None = None,
        embedding_dim: int = 64,
        init_std: float = 0.01,
        loss: RankingLoss = BPRLoss(),
        reg: L2Reg = L2Reg(),
    ) -> None:
        super().__init__(n_users, n_items)
        self.embedding_dim = embedding_dim
        self.ranking_loss = loss
        self.reg = reg
        self.user_bag = FeatureBag(user_features, n_users)
        self.item_bag = FeatureBag(item_features, n_items)
        self.global_bias = nn.Parameter(torch.zeros(()))
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.user_embedding = nn.Embedding(n_users, embedding_dim)
        self.item_embedding = nn.Embedding(n_items, embedding_dim)
        biases = [self.user_bias, self.item_bias]
        factors = [self.user_embedding, self.item_embedding]
        for side, bag in (("user", self.user_bag), ("item", self.item_bag)):
            if bag.n_features:
                bias = nn.Embedding(bag.n_features, 1)
                emb = nn.Embedding(bag.n_features, embedding_dim)
                setattr(self, f"{side}_feature_bias", bias)
                setattr(self, f"{side}_feature_embedding", emb)
                biases.append(bias)
                factors.append(emb)
        for table in biases:
            nn.init.zeros_(table.weight)
        for table in factors:
            nn.init.normal_(table.weight, std=init_std)

    def field(
        self, side: str, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One side's sums over its active features (the one-hot id and its side features):
        ``(Σ v_j x_j [..., k], Σ v_j² x_j² [..., k], Σ w_j x_j [...])`` for ``rows`` ``[...]``."""
        emb = getattr(self, f"{side}_embedding")(rows)
        total, sq = emb, emb.pow(2)
        lin = getattr(self, f"{side}_bias")(rows).squeeze(-1)
        bag: FeatureBag = getattr(self, f"{side}_bag")
        if bag.n_features:
            feat = getattr(self, f"{side}_feature_embedding").weight
            total = total + bag.pool(feat, rows)
            sq = sq + bag.pool(feat.pow(2), rows, power=2)
            lin = lin + bag.pool(getattr(self, f"{side}_feature_bias").weight, rows).squeeze(-1)
        return total, sq, lin

    def pair_scores(self, user_field, item_field) -> torch.Tensor:
        """The canonical FM formula on one user's and one item's fields (items may carry an
        extra ``k`` negatives dimension)."""
        (su, qu, lu), (si, qi, li) = user_field, item_field
        if si.dim() == su.dim() + 1:
            su, qu, lu = su.unsqueeze(1), qu.unsqueeze(1), lu.unsqueeze(1)
        s = su + si
        return self.global_bias + lu + li + 0.5 * (s.pow(2) - (qu + qi)).sum(-1)

    def augmented(self, side: str, fld) -> torch.Tensor:
        """``[U_u, c_u, 1]`` (``side="user"``) or ``[I_i, 1, c_i]`` from a side's field sums."""
        total, sq, lin = fld
        c = lin + 0.5 * (total.pow(2).sum(-1) - sq.sum(-1))
        one = torch.ones_like(c)
        if side == "user":
            return torch.cat([total, (c + self.global_bias).unsqueeze(-1), one.unsqueeze(-1)], -1)
        return torch.cat([total, one.unsqueeze(-1), c.unsqueeze(-1)], -1)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.pair_scores(self.field("user", users), self.field("item", items))

    def loss(self, batch: Batch) -> dict[str, Term]:
        """The ranking loss on FM scores (augmented vectors as representations), and ``reg``."""
        fu = self.field("user", batch.users)
        fp = self.field("item", batch.pos)
        fn = self.field("item", batch.neg)
        ranked = RankingBatch(
            pos_scores=self.pair_scores(fu, fp),
            neg_scores=self.pair_scores(fu, fn),
            user=self.augmented("user", fu),
            pos=self.augmented("item", fp),
            neg=self.augmented("item", fn),
            pos_log_q=batch.pos_log_q,
            neg_log_q=batch.neg_log_q,
        )
        terms = self.ranking_loss.terms(ranked)
        if self.reg.apply_to == "propagated":
            rows = (fu[0], fp[0], fn[0])
        else:
            rows = (
                self.user_embedding(batch.users),
                self.item_embedding(batch.pos),
                self.item_embedding(batch.neg),
            )
        terms["reg"] = Term(self.reg(*(rows if self.reg.include_negative else rows[:2])))
        return terms

    @torch.no_grad()
    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``([U, k + 2], [I, k + 2])`` augmented vectors: their inner product is the FM score."""
        device = self.user_embedding.weight.device
        users = torch.arange(self.n_users, device=device)
        items = torch.arange(self.n_items, device=device)
        return (
            self.augmented("user", self.field("user", users)),
            self.augmented("item", self.field("item", items)),
        )

    def scorer(self) -> Scorer:
        return InnerProductScorer(*self.embeddings())
