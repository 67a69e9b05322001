"""The normalised bipartite adjacency ``D^-α A D^-β`` as a torch CSR tensor.

``α = β = 1/2`` is LightGCN's symmetric ``D^-1/2 A D^-1/2``; LightGCN++ (Lee et al., RecSys
2024) uses ``α = 0.6``, ``β = −0.1``, which is not symmetric: its transpose is ``D^-β A D^-α``
(``A`` is symmetric), the same sparsity pattern with the exponents swapped.
"""

from __future__ import annotations

import warnings

import torch


def _inverse_degree_power(deg: torch.Tensor, exponent: float) -> torch.Tensor:
    """``deg^-exponent`` with 0 for nodes of degree 0 (no ``inf``, and no ``0^0.1 = 0`` trap)."""
    out = deg.pow(-exponent)
    out[deg == 0] = 0.0
    return out


#: below this size the indices are stored as int32: MKL (the CPU product) takes 32-bit indices
#: and would convert 64-bit ones on every product, and cuSPARSE prefers them
INT32_LIMIT = 2**31 - 1


def _csr(crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    if n < INT32_LIMIT and cols.numel() < INT32_LIMIT:
        crow, cols = crow.to(torch.int32), cols.to(torch.int32)
    with warnings.catch_warnings():  # torch flags sparse CSR as beta on every construction
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values, size=(n, n), check_invariants=False)


def normalized_adjacency(
    users: torch.Tensor,
    items: torch.Tensor,
    n_users: int,
    n_items: int,
    alpha: float = 0.5,
    beta: float = 0.5,
) -> torch.Tensor:
    """Build ``Â = D^-α A D^-β`` of the user-item bipartite graph, on the ids' device.

    ``A = [[0, R], [Rᵀ, 0]]`` has users at rows ``0..n_users-1`` and items after them; ``D`` is
    its degree matrix, so ``Â_ij = d_i^-α d_j^-β`` for every edge (``α`` on the receiving row
    ``i``, ``β`` on the source column ``j``: LightGCN++'s ``d_mat_left · A · d_mat_right``).
    Nodes of degree 0 keep an all-zero row and column (no ``inf``).

    Args:
        users: ``[E]`` int64 user ids of unique interactions.
        items: ``[E]`` int64 item ids, aligned with ``users``.
        n_users: number of users ``U``.
        n_items: number of items ``I``.
        alpha, beta: the exponents (``1/2, 1/2``: symmetric, LightGCN).

    Returns:
        ``[U+I, U+I]`` float32 sparse CSR tensor with ``2E`` stored values (int32 indices
        below 2³¹ nodes and values); symmetric when ``α = β``.
    """
    n = n_users + n_items
    rows = torch.cat([users, items + n_users])
    cols = torch.cat([items + n_users, users])
    deg = torch.bincount(rows, minlength=n).to(torch.float32)
    order = torch.argsort(rows * n + cols)
    rows, cols = rows[order], cols[order]
    if alpha == beta:  # one power: α = β = 1/2 is bit-identical to the original symmetric code
        dinv = _inverse_degree_power(deg, alpha)
        values = dinv[rows] * dinv[cols]
    else:
        values = _inverse_degree_power(deg, alpha)[rows] * _inverse_degree_power(deg, beta)[cols]
    crow = torch.zeros(n + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    return _csr(crow, cols, values, n)


def reweighted_adjacency(adjacency: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """``D^-α A D^-β`` on the sparsity pattern of ``adjacency`` (any normalisation of ``A``).

    The degree of a node is its number of stored entries (``A`` is binary, with unique edges
    and no self loops, as :func:`normalized_adjacency` builds it). The pattern of a symmetric
    ``A`` is symmetric, so ``reweighted_adjacency(adj, β, α)`` is the transpose of
    ``reweighted_adjacency(adj, α, β)``.

    Args:
        adjacency: ``[N, N]`` sparse CSR tensor.
        alpha, beta: the exponents on the row and on the column degree.

    Returns:
        ``[N, N]`` sparse CSR tensor, ``adjacency``'s pattern, dtype and device.
    """
    if adjacency.layout != torch.sparse_csr:
        raise ValueError(f"expected a sparse CSR adjacency, got {adjacency.layout}")
    crow, cols = adjacency.crow_indices(), adjacency.col_indices()
    n = adjacency.shape[0]
    deg = (crow[1:] - crow[:-1]).to(adjacency.dtype)
    rows = torch.repeat_interleave(torch.arange(n, device=crow.device), crow[1:] - crow[:-1])
    values = _inverse_degree_power(deg, alpha)[rows] * _inverse_degree_power(deg, beta)[cols]
    return _csr(crow, cols, values, n)
