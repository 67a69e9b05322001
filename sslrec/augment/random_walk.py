"""SGL-RW: edge dropout with an independently dropped graph for every layer."""

from __future__ import annotations

import torch

from sslrec.augment.edge_dropout import drop_edges


class RandomWalk:
    """SGL-RW augmenter: ``K`` independent edge-dropped graphs, layer ``k`` uses the ``k``-th.

    Args:
        ratio: ``ρ``, the fraction of interactions dropped in each layer's graph.
    """

    def __init__(self, ratio: float = 0.1) -> None:
        self.ratio = ratio

    def __call__(
        self, users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int, num_layers: int
    ) -> list[torch.Tensor]:
        return [drop_edges(users, items, n_users, n_items, self.ratio) for _ in range(num_layers)]
