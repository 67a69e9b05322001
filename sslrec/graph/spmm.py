"""Sparse × dense products for propagation over a normalised adjacency.

torch's own autograd for ``csr @ dense`` builds ``Âᵀ`` in the backward pass, which costs several
times the forward on the CPU. For a symmetric ``Â``, ``∂L/∂X = Âᵀ G = Â G``: the backward is one
more product with the same matrix (:func:`symmetric_spmm`). A non-symmetric ``Â`` (LightGCN++'s
``D^-α A D^-β``, ``α ≠ β``) has its transpose built once, next to it, and the backward is a
product with that (:func:`transposed_spmm`). The product itself is ``csr @ x`` on every device:
with torch 2.13 on the CPU it beats the ``spmm_reduce`` kernel (``torch.sparse.mm(csr, x,
"sum")``, the faster one under torch 2.5) at one and two threads once its output is neither
zero-filled nor copied (:func:`spmm`; ``experiments/bench_propagation.py`` times the variants).
"""

from __future__ import annotations

import torch

from sslrec.devices import host_paths


def spmm(adj: torch.Tensor, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``[N, M] sparse CSR @ [M, d] dense -> [N, d]``, into ``out`` (``[N, d]``, not ``x``) if
    given (CPU only: a reused buffer is written without a page fault per 4 KiB).

    On the CPU the product is written into an uninitialised ``[N, d]`` by ``addmm_`` with
    ``β = 0`` (MKL then writes every entry without reading it: NaN-safe, tested): ``adj @ x``
    zero-fills a result and copies it once more before the same MKL call, which doubles the
    time of a gowalla product (``experiments/bench_propagation.py``). Values are identical.
    Elsewhere, and where autograd would have to record the product, ``adj @ x``.
    """
    if (
        host_paths(adj.device)
        and adj.layout is torch.sparse_csr
        and x.dtype == adj.dtype
        and x.dim() == 2
        and not (x.requires_grad and torch.is_grad_enabled())
    ):
        if out is None:
            out = x.new_empty(adj.shape[0], x.shape[1])
        return out.addmm_(adj, x, beta=0)
    return adj @ x


class _SymmetricSpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.adj = adj
        return spmm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:  # type: ignore[override]
        return None, spmm(ctx.adj, grad)


class _TransposedSpMM(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx, adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor
    ) -> torch.Tensor:
        ctx.adj_t = adj_t
        return spmm(adj, x)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx, grad: torch.Tensor
    ) -> tuple[None, None, torch.Tensor]:
        return None, None, spmm(ctx.adj_t, grad)


def symmetric_spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``Â X`` with a backward of ``Â G``; valid only because ``Â`` is symmetric.

    Args:
        adj: ``[N, N]`` symmetric sparse CSR (or COO) tensor; no gradient flows to its values.
        x: ``[N, d]`` dense tensor.

    Returns:
        ``[N, d]`` dense tensor.
    """
    return _SymmetricSpMM.apply(adj, x)


def transposed_spmm(adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``Â X`` for any ``Â``, with a backward of ``Âᵀ G`` from the given transpose.

    Args:
        adj: ``[N, N]`` sparse CSR (or COO) tensor; no gradient flows to its values.
        adj_t: ``[N, N]`` its transpose ``Âᵀ``, same layout (built once by the caller).
        x: ``[N, d]`` dense tensor.

    Returns:
        ``[N, d]`` dense tensor.
    """
    return _TransposedSpMM.apply(adj, adj_t, x)
