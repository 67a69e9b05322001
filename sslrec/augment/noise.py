"""SimGCL's uniform noise (Yu et al., SIGIR 2022), and a Gaussian variant."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sslrec.augment.base import EmbeddingAugmenter


@dataclass(frozen=True)
class UniformNoise(EmbeddingAugmenter):
    """``e ← e + ε · sign(e) ⊙ normalize(Δ)``, ``Δ ~ U(0, 1)^d`` per row.

    The row-wise L2 normalisation makes ``‖noise‖ = ε`` per row, and ``sign(e) ⊙ Δ`` keeps the
    noise in the hyperoctant of ``e`` (official SimGCL/XSimGCL code).

    Attributes:
        eps: ``ε ≥ 0``, the noise magnitude.
        distribution: ``uniform`` (the paper) or ``gaussian`` (``Δ ~ N(0, I)``, no sign, still
            of norm ``ε``: a common ablation).
    """

    eps: float = 0.1
    distribution: str = "uniform"

    def __post_init__(self) -> None:
        if self.distribution not in ("uniform", "gaussian"):
            raise ValueError(
                f"noise distribution must be uniform or gaussian, got {self.distribution!r}"
            )
        if self.eps < 0:
            raise ValueError(f"noise eps must be >= 0, got {self.eps}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[N, d]`` → ``[N, d]``.

        The noise is built without autograd, in place: its gradient is zero (``sign`` is flat),
        so ``x + noise`` passes the gradient through unchanged, with no backward passes over
        ``[N, d]`` for the noise's own operations. Values equal the plain expression's.
        """
        with torch.no_grad():
            if self.distribution == "uniform":
                noise = F.normalize(torch.rand_like(x), dim=-1).mul_(torch.sign(x))
            else:
                noise = F.normalize(torch.randn_like(x), dim=-1)
            noise.mul_(self.eps)
        return x + noise
