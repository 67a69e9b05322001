"""The symmetric-normalised bipartite adjacency ``D^-1/2 A D^-1/2`` as a torch CSR tensor."""

from __future__ import annotations

import warnings

import torch


def normalized_adjacency(
    users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int
) -> torch.Tensor:
    """Build ``Â = D^-1/2 A D^-1/2`` of the user-item bipartite graph, on the ids' device.

    ``A = [[0, R], [Rᵀ, 0]]`` has users at rows ``0..n_users-1`` and items after them; ``D`` is
    its degree matrix. Nodes of degree 0 keep an all-zero row and column (no ``inf``).

    Args:
        users: ``[E]`` int64 user ids of unique interactions.
        items: ``[E]`` int64 item ids, aligned with ``users``.
        n_users: number of users ``U``.
        n_items: number of items ``I``.

    Returns:
        ``[U+I, U+I]`` float32 sparse CSR tensor with ``2E`` stored values, symmetric.
    """
    n = n_users + n_items
    rows = torch.cat([users, items + n_users])
    cols = torch.cat([items + n_users, users])
    deg = torch.bincount(rows, minlength=n).to(torch.float32)
    dinv = deg.pow(-0.5)
    dinv[deg == 0] = 0.0
    order = torch.argsort(rows * n + cols)
    rows, cols = rows[order], cols[order]
    values = dinv[rows] * dinv[cols]
    crow = torch.zeros(n + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    with warnings.catch_warnings():  # torch flags sparse CSR as beta on every construction
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values, size=(n, n), check_invariants=False)
