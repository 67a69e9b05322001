"""SGL-ED: edge dropout (Wu et al., SIGIR 2021), one dropped graph shared by all layers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sslrec.augment.base import GraphAugmenter
from sslrec.graph import normalized_adjacency


def check_ratio(ratio: float, what: str) -> None:
    """A dropout ratio must lie in ``[0, 1)``: 1 would drop the whole graph."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"{what} ratio must be in [0, 1), got {ratio}")


def drop_edges(
    users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int, ratio: float
) -> torch.Tensor:
    """Keep exactly ``int(E · (1 − ratio))`` interactions, drawn without replacement.

    Both directions of a kept interaction stay together; the kept graph is re-normalised
    ``D^-1/2 A D^-1/2`` (zero degree → 0), with no ``1/(1 − ratio)`` rescaling (official SGL).

    Args:
        users, items: ``[E]`` int64 ids of the training interactions.
        n_users, n_items: node counts.
        ratio: dropout ratio ``ρ`` in ``[0, 1)``.

    Returns:
        ``[U+I, U+I]`` sparse CSR normalised adjacency of the kept graph.
    """
    check_ratio(ratio, "edge dropout")
    n_keep = int(users.numel() * (1.0 - ratio))
    keep = torch.randperm(users.numel(), device=users.device)[:n_keep]
    return normalized_adjacency(users[keep], items[keep], n_users, n_items)


@dataclass(frozen=True)
class EdgeDropout(GraphAugmenter):
    """SGL-ED augmenter: one edge-dropped graph, used by every layer.

    Attributes:
        ratio: ``ρ`` in ``[0, 1)``, the fraction of interactions dropped.
    """

    ratio: float = 0.1

    def __post_init__(self) -> None:
        check_ratio(self.ratio, "edge dropout")

    def __call__(
        self, users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int, num_layers: int
    ) -> list[torch.Tensor]:
        adj = drop_edges(users, items, n_users, n_items, self.ratio)
        return [adj] * num_layers
