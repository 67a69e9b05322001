"""SGL-RW: edge dropout with an independently dropped graph for every layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslrec.augment.base import GraphAugmenter
from sslrec.augment.edge_dropout import check_ratio, drop_edges


@dataclass(frozen=True)
class RandomWalk(GraphAugmenter):
    """SGL-RW augmenter: ``K`` independent edge-dropped graphs, layer ``k`` uses the ``k``-th.

    Attributes:
        ratio: ``ρ`` in ``[0, 1)``, the fraction of interactions dropped in each layer's graph.
    """

    ratio: float = 0.1

    def __post_init__(self) -> None:
        check_ratio(self.ratio, "random walk")

    def __call__(
        self, users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int, num_layers: int
    ) -> list[torch.Tensor]:
        return [drop_edges(users, items, n_users, n_items, self.ratio) for _ in range(num_layers)]
