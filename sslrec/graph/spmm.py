"""Sparse × dense products for propagation over a symmetric normalised adjacency.

torch's own autograd for ``csr @ dense`` builds ``Âᵀ`` in the backward pass, which costs several
times the forward on the CPU. ``Â`` is symmetric, so ``∂L/∂X = Âᵀ G = Â G``: the backward is one
more product with the same matrix. On the CPU, ``torch.sparse.mm(csr, x, "sum")`` dispatches to
the parallel ``spmm_reduce`` kernel, about twice as fast as ``csr @ x`` (measured by
``experiments/bench_propagation.py``); on other devices the plain product is used.
"""

from __future__ import annotations

import torch


def spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``[N, N] sparse @ [N, d] dense -> [N, d]`` with the fastest kernel for the device."""
    if adj.layout == torch.sparse_csr and adj.device.type == "cpu":
        return torch.sparse.mm(adj, x, "sum")
    return adj @ x


class _SymmetricSpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.adj = adj
        return spmm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:  # type: ignore[override]
        return None, spmm(ctx.adj, grad)


def symmetric_spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``Â X`` with a backward of ``Â G``; valid only because ``Â`` is symmetric.

    Args:
        adj: ``[N, N]`` symmetric sparse CSR (or COO) tensor; no gradient flows to its values.
        x: ``[N, d]`` dense tensor.

    Returns:
        ``[N, d]`` dense tensor.
    """
    return _SymmetricSpMM.apply(adj, x)
