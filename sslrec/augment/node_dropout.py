"""SGL-ND: node dropout, one graph without the dropped users and items, shared by all layers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslrec.augment.base import GraphAugmenter
from sslrec.augment.edge_dropout import check_ratio
from sslrec.graph import normalized_adjacency


@dataclass(frozen=True)
class NodeDropout(GraphAugmenter):
    """Drop ``⌊ρ·U⌋`` users and ``⌊ρ·I⌋`` items (uniformly, without replacement): their rows and
    columns of ``R`` are zeroed, i.e. every interaction touching them is removed, and the rest
    is re-normalised (official SGL: ``diag(m_u) R diag(m_i)``).

    Attributes:
        ratio: ``ρ`` in ``[0, 1)``.
    """

    ratio: float = 0.1

    def __post_init__(self) -> None:
        check_ratio(self.ratio, "node dropout")

    def __call__(
        self, users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int, num_layers: int
    ) -> list[torch.Tensor]:
        device = users.device
        dropped_users = torch.zeros(n_users, dtype=torch.bool, device=device)
        dropped_users[torch.randperm(n_users, device=device)[: int(n_users * self.ratio)]] = True
        dropped_items = torch.zeros(n_items, dtype=torch.bool, device=device)
        dropped_items[torch.randperm(n_items, device=device)[: int(n_items * self.ratio)]] = True
        keep = ~(dropped_users[users] | dropped_items[items])
        adj = normalized_adjacency(users[keep], items[keep], n_users, n_items)
        return [adj] * num_layers
