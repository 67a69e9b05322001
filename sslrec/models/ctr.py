"""Joint ranking + CTR: a ranking encoder (MF or LightGCN) and a CTR head on its representations.

``RankCTR`` (``model=joint``) trains two scores of a (user, item) pair at once:

* the **ranking score** ``⟨e_u, e_i⟩`` of the encoder, :class:`~sslrec.models.MF` or
  :class:`~sslrec.models.LightGCN` (reused as a submodule, with its own ``reg``), and
* the **CTR logit** of a head, a ReLU MLP over ``[e_u, f_u, e_i, f_i]``: the encoder's
  representations and the mean of the user's (item's) side-feature embeddings
  (``sslrec.data.features``; left out for a side without features).

``loss=joint`` (the default) is ``α · ranking loss`` on the encoder's scores plus
``(1 − α) · BCE`` on the head's logits, which reach the loss as ``RankingBatch.pos_logits`` /
``neg_logits``; the head's gradient also flows into the shared encoder (multi-task learning).
Any other loss works: a ranking loss alone trains the encoder only, ``loss=bce`` the head (and
through it the encoder).

Ranking (``rank_by``): by the encoder's inner product (default; the inner-product fast path and
an exact ``embeddings.npz``), or by the CTR head through the split-first-layer
:class:`~sslrec.models.neumf.TowerScorer` (then ``results.json`` says ``"scoring": "model"`` and
``embeddings.npz`` still holds the encoder's representations).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sslrec.data.sampling import Batch
from sslrec.evaluation.scoring import Scorer
from sslrec.losses import JointLoss, L2Reg, RankingBatch, RankingLoss, Term
from sslrec.models.base import EmbeddingRecommender, Recommender, _dot
from sslrec.models.fm import FeatureBag
from sslrec.models.lightgcn import LightGCN
from sslrec.models.mf import MF
from sslrec.models.neumf import EVAL_MEMORY_MB, TowerScorer

ENCODERS = ("mf", "lightgcn")
RANK_BY = ("encoder", "ctr")


class RankCTR(Recommender):
    """A ranking encoder with a CTR head, trained jointly (see the module docstring).

    Args:
        n_users, n_items: see :class:`Recommender`.
        adjacency: the normalised training graph (``encoder=lightgcn`` only).
        user_features, item_features: binary sparse CSR ``[U, F_u]`` / ``[I, F_i]`` side
            features, or ``None``.
        encoder: ``mf`` or ``lightgcn``.
        embedding_dim: ``d`` of the encoder and of the side-feature embeddings.
        num_layers: LightGCN's ``K`` (``encoder=lightgcn``).
        hidden: the CTR head's ReLU layer widths (a linear output layer follows).
        rank_by: ``encoder`` (inner product) or ``ctr`` (the head's logits).
        loss: the objective (``JointLoss``: α · ranking + (1 − α) · BCE on the head).
        reg: the encoder's L2 on the batch's embedding rows (``conf/model/reg/``).
        eval_memory_mb: memory budget of one block of CTR scores (``rank_by=ctr``).
    """

    graph_inputs = ("adjacency", "features")

    def __init__(
        self,
        n_users: int,
        n_items: int,
        adjacency: torch.Tensor | None = None,
        user_features: torch.Tensor | None = None,
        item_features: torch.Tensor | None = None,
        encoder: str = "mf",
        embedding_dim: int = 64,
        num_layers: int = 3,
        hidden: Sequence[int] = [64, 32],  # noqa: B006 (never mutated)
        rank_by: str = "encoder",
        loss: RankingLoss = JointLoss(),  # noqa: B008 (frozen dataclass)
        reg: L2Reg = L2Reg(),
        eval_memory_mb: float = EVAL_MEMORY_MB,
    ) -> None:
        super().__init__(n_users, n_items)
        if encoder not in ENCODERS:
            raise ValueError(f"model.encoder must be one of {ENCODERS}, got {encoder!r}")
        if rank_by not in RANK_BY:
            raise ValueError(f"model.rank_by must be one of {RANK_BY}, got {rank_by!r}")
        hidden = [int(h) for h in hidden]
        if not hidden or min(hidden) < 1:
            raise ValueError(f"model.hidden needs at least one positive width, got {hidden}")
        self.encoder_name = encoder
        self.rank_by = rank_by
        self.inner_product = rank_by == "encoder"  # type: ignore[misc]
        self.ranking_loss = loss
        self.eval_memory_mb = eval_memory_mb
        self.encoder: EmbeddingRecommender
        if encoder == "lightgcn":
            if adjacency is None:
                raise ValueError("model.encoder=lightgcn needs the training graph (adjacency)")
            self.encoder = LightGCN(
                n_users, n_items, adjacency, embedding_dim, num_layers, loss=loss, reg=reg
            )
        else:
            self.encoder = MF(n_users, n_items, embedding_dim, loss=loss, reg=reg)
        self.user_bag = FeatureBag(user_features, n_users)
        self.item_bag = FeatureBag(item_features, n_items)
        self.user_in = embedding_dim
        self.item_in = embedding_dim
        for side, bag in (("user", self.user_bag), ("item", self.item_bag)):
            if bag.n_features:
                table = nn.Embedding(bag.n_features, embedding_dim)
                nn.init.xavier_uniform_(table.weight)
                setattr(self, f"{side}_feature_embedding", table)
                setattr(self, f"{side}_in", embedding_dim * 2)
        widths = [self.user_in + self.item_in, *hidden]
        self.head = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:], strict=False))
        self.head_out = nn.Linear(widths[-1], 1)

    # -- the two scores ------------------------------------------------------------------
    def _side_input(self, side: str, reps: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``[e, f]`` of ``rows``: representations ``reps`` ``[..., d]`` and, when the side has
        features, the mean of their embeddings."""
        bag: FeatureBag = getattr(self, f"{side}_bag")
        if not bag.n_features:
            return reps
        table = getattr(self, f"{side}_feature_embedding").weight
        return torch.cat([reps, bag.mean(table, rows)], -1)

    def ctr_logits(
        self, u: torch.Tensor, i: torch.Tensor, users: torch.Tensor, items: torch.Tensor
    ) -> torch.Tensor:
        """The head's logits: ``u`` ``[B, d]`` user and ``i`` ``[B, (k,) d]`` item
        representations of ``users`` ``[B]`` and ``items`` ``[B]`` or ``[B, k]``."""
        xu = self._side_input("user", u, users)
        xi = self._side_input("item", i, items)
        if items.dim() == 2:
            xu = xu.unsqueeze(1).expand(-1, items.shape[1], -1)
        x = torch.cat([xu, xi], -1)
        for lin in self.head:
            x = F.relu(lin(x))
        return self.head_out(x).squeeze(-1)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        user_all, item_all = self.encoder.propagate()
        u, i = F.embedding(users, user_all), F.embedding(items, item_all)
        if self.rank_by == "ctr":
            return self.ctr_logits(u, i, users, items)
        return _dot(u, i)

    def loss(self, batch: Batch) -> dict[str, Term]:
        """The loss's terms on the encoder's scores and the head's logits, then ``reg``."""
        user_all, item_all = self.encoder.propagate()
        u = F.embedding(batch.users, user_all)
        p, n = F.embedding(batch.pos, item_all), F.embedding(batch.neg, item_all)
        ranked = RankingBatch(
            pos_scores=(u * p).sum(-1),
            neg_scores=_dot(u, n),
            user=u,
            pos=p,
            neg=n,
            pos_logits=self.ctr_logits(u, p, batch.users, batch.pos),
            neg_logits=self.ctr_logits(u, n, batch.users, batch.neg),
            pos_log_q=batch.pos_log_q,
            neg_log_q=batch.neg_log_q,
        )
        terms = self.ranking_loss.terms(ranked)
        terms["reg"] = Term(self.encoder.reg_loss(batch, (u, p, n)))
        return terms

    # -- ranking -------------------------------------------------------------------------
    @torch.no_grad()
    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's representations (the ranking ones under ``rank_by=encoder``)."""
        return self.encoder.embeddings()

    @torch.no_grad()
    def scorer(self) -> Scorer:
        if self.rank_by == "encoder":
            return self.encoder.scorer()
        user_all, item_all = self.encoder.embeddings()
        device = user_all.device
        xu = self._side_input("user", user_all, torch.arange(self.n_users, device=device))
        xi = self._side_input("item", item_all, torch.arange(self.n_items, device=device))
        first = self.head[0]
        return TowerScorer(
            user_first=xu @ first.weight[:, : self.user_in].t(),
            item_first=torch.addmm(first.bias, xi, first.weight[:, self.user_in :].t()),
            hidden=[(lin.weight, lin.bias) for lin in self.head[1:]],
            out_weight=self.head_out.weight[0],
            out_bias=self.head_out.bias[0],
            memory_mb=self.eval_memory_mb,
        )
