"""SGL (Wu et al., SIGIR 2021): LightGCN + InfoNCE between two augmented graph views."""

from __future__ import annotations

from typing import Any

import torch

from sslrec.augment import GraphAugmenter
from sslrec.losses import InfoNCEHead
from sslrec.models.base import with_ssl
from sslrec.models.lightgcn import LightGCN, combine_layers


class SGL(LightGCN):
    """``L = BPR(clean) + λ · (InfoNCE_user + InfoNCE_item)(view 1, view 2) + reg``.

    Two views are drawn by ``augmenter`` (ED, ND or RW) from the raw training interactions,
    once per epoch (official SGL) or per batch; the main BPR task uses the unaugmented graph.

    Args:
        train_users, train_items: ``[E]`` int64 training interactions the views are drawn from.
        augmenter: draws a view (``K`` adjacencies).
        ssl_weight: ``λ``.
        bpr_weight: weight of the BPR term (1; 0 trains on the contrastive loss only).
        head: the InfoNCE head (official SGL: ``all`` negatives, ``sum``, τ = 0.2).
        regenerate: ``epoch`` or ``batch``.
        **kwargs: :class:`LightGCN` arguments.
    """

    graph_inputs = ("adjacency", "interactions")

    def __init__(
        self,
        train_users: torch.Tensor,
        train_items: torch.Tensor,
        augmenter: GraphAugmenter,
        ssl_weight: float = 0.1,
        bpr_weight: float = 1.0,
        head: InfoNCEHead | None = None,
        regenerate: str = "epoch",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if regenerate not in ("epoch", "batch"):
            raise ValueError(f"regenerate must be 'epoch' or 'batch', got {regenerate!r}")
        self.register_buffer("train_users", train_users, persistent=False)
        self.register_buffer("train_items", train_items, persistent=False)
        self.augmenter = augmenter
        self.ssl_weight = ssl_weight
        self.bpr_weight = bpr_weight
        self.head = head if head is not None else InfoNCEHead()
        self.regenerate = regenerate
        self.views: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    def draw_view(self) -> list[torch.Tensor]:
        return self.augmenter(
            self.train_users, self.train_items, self.n_users, self.n_items, self.num_layers
        )

    def start_epoch(self) -> None:
        if self.regenerate == "epoch":
            self.views = (self.draw_view(), self.draw_view())

    def loss(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``{"bpr", "ssl", "reg", "total"}``; ``ssl`` is the unweighted InfoNCE sum."""
        out = super().loss(users, pos, neg)
        if self.regenerate == "batch" or self.views is None:
            self.views = (self.draw_view(), self.draw_view())
        v1, v2 = (self.split(combine_layers(self.layers(v), self.weights)) for v in self.views)
        ssl = self.head(v1, v2, users, pos)
        return with_ssl(out, ssl, self.ssl_weight, self.bpr_weight)
