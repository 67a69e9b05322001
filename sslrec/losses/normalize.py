"""Row-wise L2 normalisation whose backward takes half the kernels on an accelerator."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sslrec.devices import host_paths

#: ``F.normalize``'s default: the smallest norm divided by
EPS = 1e-12


class _UnitRows(torch.autograd.Function):
    """``y = x / max(‖x‖, ε)`` along the last dimension, with the gradient in closed form:
    ``∂L/∂x = (g − y · ⟨g, y⟩) / max(‖x‖, ε)``, the ``⟨g, y⟩`` term only where ``‖x‖ ≥ ε``
    (below, the divisor is the constant ``ε``; at ``ε`` exactly ``clamp_min`` passes the
    gradient, as in ``F.normalize``'s autograd)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        divisor = norm.clamp_min(eps)
        y = x / divisor  # as F.normalize: the same values, bit for bit
        ctx.save_for_backward(y, divisor, norm >= eps)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        y, divisor, passes = ctx.saved_tensors
        dot = (grad * y).sum(-1, keepdim=True).mul_(passes)
        return torch.addcmul(grad, y, dot, value=-1).div_(divisor), None


def unit_rows(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``F.normalize(x, dim=-1)``: ``x`` ``[..., d]`` → rows of unit L2 norm (a row of norm
    below ``eps`` is divided by ``eps``).

    On an accelerator its backward is one autograd node of six kernels instead of autograd's
    dozen through the norm, the clamp and the division (an accelerator's step is bound by its
    launches: ``experiments/bench_host_overhead.py``); the values are ``F.normalize``'s, the
    gradients equal to float rounding (tested). The host keeps ``F.normalize``, whose rounding
    earlier results were computed with.
    """
    if host_paths(x.device):
        return F.normalize(x, dim=-1, eps=eps)
    return _UnitRows.apply(x, eps)
