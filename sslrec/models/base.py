"""The interface every recommender implements, and the BPR objective they share."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sslrec.losses import L2Reg, bpr_loss


def with_ssl(
    out: dict[str, torch.Tensor], ssl: torch.Tensor, ssl_weight: float, bpr_weight: float = 1.0
) -> dict[str, torch.Tensor]:
    """Add the contrastive term to ``bpr_and_reg``'s output:
    ``total = bpr_weight · BPR + ssl_weight · SSL + reg`` (``bpr_weight=0``: "CL only", the
    SimGCL paper's ablation that trains on the contrastive loss alone)."""
    out["ssl"] = ssl
    out["total"] = bpr_weight * out["bpr"] + ssl_weight * ssl + out["reg"]
    return out


class Recommender(nn.Module):
    """A model that scores users against items by the inner product of their representations.

    Subclasses implement :meth:`propagate`; the BPR objective, regularisation and ranking
    representations follow from it. ``loss`` returns named components so that the trainer can
    log each and optimise ``total``.

    Args:
        n_users: number of users ``U``.
        n_items: number of items ``I``.
        embedding_dim: ``d``.
        reg: L2 regularisation of the batch embeddings.
        bpr_reduction: ``mean`` or ``sum`` over the batch.
    """

    #: what the constructor needs from the training data besides sizes: ``adjacency`` (the
    #: normalised graph) and/or ``interactions`` (``train_users``/``train_items`` id tensors).
    graph_inputs: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        n_users: int,
        n_items: int,
        embedding_dim: int = 64,
        reg: L2Reg | None = None,
        bpr_reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.embedding_dim = embedding_dim
        self.user_embedding = nn.Embedding(n_users, embedding_dim)
        self.item_embedding = nn.Embedding(n_items, embedding_dim)
        # Xavier-uniform as official LightGCN/SGL (SELFRec and RecBole do the same).
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        self.reg = reg if reg is not None else L2Reg()
        self.bpr_reduction = bpr_reduction

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final representations ``(users [U, d], items [I, d])`` used for scoring."""
        raise NotImplementedError

    @torch.no_grad()
    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(users [U, d], items [I, d])`` for ranking, detached from the graph."""
        users, items = self.propagate()
        return users.detach(), items.detach()

    def start_epoch(self) -> None:
        """Called by the trainer before every epoch (SSL models redraw their views here)."""

    def loss(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """BPR + L2 on one batch.

        Args:
            users, pos, neg: ``[B]`` int64 ids.

        Returns:
            ``{"bpr", "reg", "total"}`` scalar tensors.
        """
        user_all, item_all = self.propagate()
        return self.bpr_and_reg(user_all, item_all, users, pos, neg)

    def bpr_and_reg(
        self,
        user_all: torch.Tensor,
        item_all: torch.Tensor,
        users: torch.Tensor,
        pos: torch.Tensor,
        neg: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """BPR and L2 of a batch scored with ``user_all`` ``[U, d]`` and ``item_all`` ``[I, d]``."""
        # F.embedding, not user_all[users]: indexing's CPU backward (index_put_ with
        # accumulate) sums duplicate rows in a thread-dependent order; this one is deterministic.
        u = F.embedding(users, user_all)
        p, n = F.embedding(pos, item_all), F.embedding(neg, item_all)
        bpr = bpr_loss((u * p).sum(-1), (u * n).sum(-1), self.bpr_reduction)
        reg = self.reg_loss(users, pos, neg, (u, p, n))
        return {"bpr": bpr, "reg": reg, "total": bpr + reg}

    def reg_loss(
        self,
        users: torch.Tensor,
        pos: torch.Tensor,
        neg: torch.Tensor,
        propagated: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """The L2 term on the ego (layer-0) rows of the batch, or on ``propagated`` rows."""
        if self.reg.apply_to == "propagated":
            rows = propagated
        else:
            rows = (self.user_embedding(users), self.item_embedding(pos), self.item_embedding(neg))
        return self.reg(*(rows if self.reg.include_negative else rows[:2]))
