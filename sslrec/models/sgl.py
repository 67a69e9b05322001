"""SGL (Wu et al., SIGIR 2021): LightGCN + InfoNCE between two augmented graph views."""

from __future__ import annotations

from typing import Any

import torch

from sslrec.augment import GraphAugmenter
from sslrec.augment.base import require
from sslrec.data.sampling import Batch
from sslrec.losses import BPRLoss, InfoNCEHead, L2Reg, RankingLoss, Term
from sslrec.models.base import with_ssl
from sslrec.models.lightgcn import LightGCN


class SGL(LightGCN):
    """``L = ranking(clean) + λ · (InfoNCE_user + InfoNCE_item)(view 1, view 2) + reg``.

    Two views are drawn by ``augmenter`` (ED, ND or RW) from the raw training interactions,
    once per epoch (official SGL) or per batch; the ranking loss uses the unaugmented graph.
    Defaults are official SGL-Torch: BPR, InfoNCE and L2 all summed over the batch.

    Args:
        train_users, train_items: ``[E]`` int64 training interactions the views are drawn from.
        augmenter: draws a view (``K`` adjacencies).
        ssl_weight: ``λ``.
        head: the InfoNCE head (official SGL: ``all`` negatives, ``sum``, τ = 0.2).
        regenerate: ``epoch`` or ``batch``.
        loss, reg: as :class:`LightGCN`, with SGL-Torch's sums as defaults.
        **kwargs: the other :class:`LightGCN` arguments.
    """

    graph_inputs = ("adjacency", "interactions")

    def __init__(
        self,
        train_users: torch.Tensor,
        train_items: torch.Tensor,
        augmenter: GraphAugmenter,
        ssl_weight: float = 0.1,
        head: InfoNCEHead = InfoNCEHead(0.2, "all", "sum"),
        regenerate: str = "epoch",
        loss: RankingLoss = BPRLoss(reduction="sum"),
        reg: L2Reg = L2Reg(reduction="sum"),
        **kwargs: Any,
    ) -> None:
        super().__init__(loss=loss, reg=reg, **kwargs)
        require(augmenter, GraphAugmenter, "sgl")
        if regenerate not in ("epoch", "batch"):
            raise ValueError(f"regenerate must be 'epoch' or 'batch', got {regenerate!r}")
        self.register_buffer("train_users", train_users, persistent=False)
        self.register_buffer("train_items", train_items, persistent=False)
        self.augmenter = augmenter
        self.ssl_weight = ssl_weight
        self.head = head
        self.regenerate = regenerate
        self.views: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    def draw_view(self) -> list[torch.Tensor]:
        return self.augmenter(
            self.train_users, self.train_items, self.n_users, self.n_items, self.num_layers
        )

    def start_epoch(self) -> None:
        if self.regenerate == "epoch":
            self.views = (self.draw_view(), self.draw_view())

    def loss(self, batch: Batch) -> dict[str, Term]:
        """The ranking terms, ``ssl`` (the unweighted InfoNCE sum, weight ``λ``) and ``reg``.

        The clean encoder runs for the batch's nodes and view 1 for the anchors only (view 2
        gives every node as a negative): :meth:`LightGCN.encode` with ``rows``.
        """
        rows = self.node_rows(batch.users, batch.pos, batch.neg)
        terms = self.ranking_terms(*self.encode(rows=rows)[0], batch)
        if self.regenerate == "batch" or self.views is None:
            self.views = (self.draw_view(), self.draw_view())
        anchors = self.node_rows(batch.users, batch.pos)
        v1 = self.encode(self.views[0], rows=anchors)[0]
        v2 = self.encode(self.views[1])[0]
        ssl = self.head(v1, v2, batch.users, batch.pos)
        return with_ssl(terms, ssl, self.ssl_weight)
