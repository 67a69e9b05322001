"""SGL-ND: node dropout, one graph without the dropped users and items, shared by all layers."""

from __future__ import annotations

import torch

from sslrec.graph import normalized_adjacency


class NodeDropout:
    """Drop ``⌊ρ·U⌋`` users and ``⌊ρ·I⌋`` items (uniformly, without replacement): their rows and
    columns of ``R`` are zeroed, i.e. every interaction touching them is removed, and the rest
    is re-normalised (official SGL: ``diag(m_u) R diag(m_i)``).

    Args:
        ratio: ``ρ``.
    """

    def __init__(self, ratio: float = 0.1) -> None:
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"node dropout ratio must be in [0, 1), got {ratio}")
        self.ratio = ratio

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
