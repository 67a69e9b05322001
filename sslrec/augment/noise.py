"""SimGCL's uniform noise (Yu et al., SIGIR 2022), and a Gaussian variant."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class UniformNoise:
    """``e ← e + ε · sign(e) ⊙ normalize(Δ)``, ``Δ ~ U(0, 1)^d`` per row.

    The row-wise L2 normalisation makes ``‖noise‖ = ε`` per row, and ``sign(e) ⊙ Δ`` keeps the
    noise in the hyperoctant of ``e`` (official SimGCL/XSimGCL code).

    Args:
        eps: ``ε``, the noise magnitude.
        distribution: ``uniform`` (the paper) or ``gaussian`` (``Δ ~ N(0, I)``, no sign, still
            of norm ``ε``: a common ablation).
    """

    def __init__(self, eps: float = 0.1, distribution: str = "uniform") -> None:
        if distribution not in ("uniform", "gaussian"):
            raise ValueError(
                f"noise distribution must be uniform or gaussian, got {distribution!r}"
            )
        self.eps = eps
        self.distribution = distribution

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[N, d]`` → ``[N, d]``."""
        if self.distribution == "uniform":
            noise = torch.sign(x) * F.normalize(torch.rand_like(x), dim=-1)
        else:
            noise = F.normalize(torch.randn_like(x), dim=-1)
        return x + self.eps * noise
