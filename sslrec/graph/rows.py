"""Some rows of a sparse CSR matrix, and their transpose, for an encoder's last layer.

A training step reads the final representations at its batch's nodes only (~8% of gowalla's
70,839 nodes, holding ~16% of its edges). The last layer's product is then needed at those rows
only, ``Â[R, :] X``, and the first product of the backward takes a gradient that is zero outside
them, ``Âᵀ[:, R] G_R = (Â[R, :])ᵀ G_R``. Both keep every row's stored entries in their order, so
every sum is the full product's, term for term (the skipped terms are exact zeros).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from scipy.sparse import csr_array

from sslrec.devices import host_paths


class Rows:
    """Some rows of a ``[N, d]`` node table: ``values[j]`` is row ``ids[j]``.

    What an encoder returns when a training step reads only its batch's nodes; :func:`take`
    reads it as it reads a whole table.

    Args:
        values: ``[M, d]``.
        ids: ``[M]`` sorted, distinct int64 row ids, on ``values``' device.
    """

    __slots__ = ("values", "ids", "_where")

    def __init__(self, values: torch.Tensor, ids: torch.Tensor) -> None:
        if values.shape[:1] != ids.shape:
            raise ValueError(f"{ids.shape[0]} ids for {values.shape[0]} rows")
        self.values, self.ids = values, ids
        self._where: torch.Tensor | None = None  # row id -> position in values (-1: absent)

    def take(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` (any shape ``S``, each among :attr:`ids`) → ``[*S, d]``; a missing id
        raises (it would otherwise read another row)."""
        if self._where is None:
            size = int(self.ids[-1]) + 1 if self.ids.numel() else 0
            self._where = torch.full((size,), -1, dtype=torch.int64, device=self.ids.device)
            self._where[self.ids] = torch.arange(self.ids.shape[0], device=self.ids.device)
        size = self._where.shape[0]
        flat = ids.reshape(-1)
        if size == 0:
            pos = flat.new_full(flat.shape, -1)
        else:
            pos = self._where[flat.clamp(0, size - 1)]
        bad = (pos < 0) | (flat < 0) | (flat >= size)
        if bool(bad.any()):
            missing = flat[bad][:5].tolist()
            raise IndexError(f"rows {missing} are not among the {self.ids.shape[0]} rows held")
        return F.embedding(pos.view(ids.shape), self.values)


def take(table: torch.Tensor | Rows, ids: torch.Tensor) -> torch.Tensor:
    """``table``'s rows ``ids`` (any shape ``S``) → ``[*S, d]``, from a whole ``[N, d]`` table
    or from :class:`Rows`.

    ``F.embedding``, not ``table[ids]``: indexing's CPU backward (``index_put_`` with accumulate)
    sums duplicate rows in a thread-dependent order; this one is deterministic.
    """
    return table.take(ids) if isinstance(table, Rows) else F.embedding(ids, table)


def _csr(crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]):
    with warnings.catch_warnings():  # torch flags sparse CSR as beta on every construction
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values, size=shape, check_invariants=False)


#: the largest share of a matrix's stored entries that rows may hold for a product at those rows
#: (and its transpose) to be worth it: the rows' product, the transpose and the gathers cost
#: more than the whole layer above ~60% (one LightGCN step, forward + backward, 3 layers, at
#: 1 thread: 0.64 of the whole encoder's time at gowalla's 16%, 0.76 at 43%, 1.00 at 61%, 1.21
#: at 79%; lastfm 0.90 at 49%, 1.16 at 70%; ``experiments/bench_rows.py``)
MAX_SHARE = 0.5


def worth_restricting(adj: torch.Tensor, rows: torch.Tensor) -> bool:
    """Whether ``rows`` hold at most :data:`MAX_SHARE` of ``adj``'s stored entries (CSR)."""
    if adj.layout is not torch.sparse_csr or adj._nnz() == 0:
        return False
    crow = adj.crow_indices()
    held = crow.index_select(0, rows + 1) - crow.index_select(0, rows)
    return float(held.sum()) <= MAX_SHARE * adj._nnz()


def row_subset(adj: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``adj[rows, :]`` as a CSR tensor.

    Args:
        adj: ``[N, M]`` sparse CSR tensor.
        rows: ``[R]`` int64 row ids (any order; sorted for :func:`transposed`).

    Returns:
        ``[R, M]`` sparse CSR tensor with ``adj``'s index dtype, each row's entries in ``adj``'s
        order.
    """
    crow, cols, values = adj.crow_indices(), adj.col_indices(), adj.values()
    starts = crow.index_select(0, rows).long()
    counts = crow.index_select(0, rows + 1).long() - starts
    sub_crow = torch.zeros(rows.shape[0] + 1, dtype=torch.int64, device=adj.device)
    torch.cumsum(counts, 0, out=sub_crow[1:])
    nnz = int(sub_crow[-1])
    # entry e of row r sits at starts[r] + (e - sub_crow[r]) in adj
    shift = torch.repeat_interleave(starts - sub_crow[:-1], counts, output_size=nnz)
    where = torch.arange(nnz, device=adj.device).add_(shift)
    return _csr(
        sub_crow.to(crow.dtype),
        cols.index_select(0, where),
        values.index_select(0, where),
        (rows.shape[0], adj.shape[1]),
    )


def transposed(sub: torch.Tensor) -> torch.Tensor:
    """``subᵀ`` as a CSR tensor, each row's entries in ascending column order (as a CSR
    ``Âᵀ`` stores them: the product then sums in the same order).

    On the CPU scipy's one-pass counting transpose (``csr_array.tocsc``, no copy in or out:
    ~4x faster than a sort of the entries on gowalla's batches); elsewhere a stable sort.

    Args:
        sub: ``[R, M]`` sparse CSR tensor.

    Returns:
        ``[M, R]`` sparse CSR tensor.
    """
    crow, cols, values = sub.crow_indices(), sub.col_indices(), sub.values()
    n_rows, n_cols = sub.shape
    if host_paths(sub.device):
        t = csr_array(
            (values.numpy(), cols.numpy(), crow.numpy()), shape=(n_rows, n_cols), copy=False
        ).tocsc()
        t_crow, t_cols, t_values = (torch.from_numpy(a) for a in (t.indptr, t.indices, t.data))
        return _csr(t_crow.to(crow.dtype), t_cols.to(cols.dtype), t_values, (n_cols, n_rows))
    return _sorted_transpose(sub)


def _sorted_transpose(sub: torch.Tensor) -> torch.Tensor:
    """:func:`transposed` on any device: a stable sort by column keeps each column's entries in
    row order."""
    crow, cols, values = sub.crow_indices(), sub.col_indices(), sub.values()
    n_rows, n_cols = sub.shape
    order = torch.sort(cols, stable=True)[1]
    row_of = torch.repeat_interleave(
        torch.arange(n_rows, dtype=crow.dtype, device=sub.device),
        crow[1:] - crow[:-1],
        output_size=cols.shape[0],
    )
    t_crow = torch.zeros(n_cols + 1, dtype=torch.int64, device=sub.device)
    torch.cumsum(torch.bincount(cols, minlength=n_cols), 0, out=t_crow[1:])
    return _csr(
        t_crow.to(crow.dtype),
        row_of.index_select(0, order),
        values.index_select(0, order),
        (n_cols, n_rows),
    )
