"""Slow, obvious reference implementations that the fast paths are tested against."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


def dense_normalized_adjacency(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int
) -> np.ndarray:
    """``D^-1/2 A D^-1/2`` built densely in float64, zero-degree rows left at 0."""
    n = n_users + n_items
    a = np.zeros((n, n))
    for u, i in zip(users, items, strict=True):
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    deg = a.sum(1)
    dinv = np.zeros(n)
    dinv[deg > 0] = deg[deg > 0] ** -0.5
    return dinv[:, None] * a * dinv[None, :]


def edge_list_propagate(
    users: torch.Tensor, items: torch.Tensor, n_users: int, x: torch.Tensor
) -> torch.Tensor:
    """One LightGCN layer by message passing over the edge list: ``out_v = Σ x_w / √(d_v d_w)``."""
    src = torch.cat([users, items + n_users])
    dst = torch.cat([items + n_users, users])
    deg = torch.bincount(dst, minlength=x.shape[0]).to(x.dtype)
    norm = (deg[src] * deg[dst]).rsqrt()
    out = torch.zeros_like(x)
    return out.index_add(0, dst, x[src] * norm[:, None])


def random_graph(
    n_users: int, n_items: int, density: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Unique random (user, item) pairs; some users/items may be isolated."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    u, i = np.nonzero(mask)
    return u.astype(np.int64), i.astype(np.int64)


def triples(sampler) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(users, pos, neg)`` of each batch of one epoch of ``sampler``."""
    return ((b.users, b.pos, b.neg) for b in sampler.epoch())
