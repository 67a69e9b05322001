"""SimGCL (Yu et al., SIGIR 2022): contrast two noise-perturbed propagations."""

from __future__ import annotations

from typing import Any

import torch

from sslrec.augment import EmbeddingAugmenter, UniformNoise
from sslrec.losses import InfoNCEHead
from sslrec.models.base import with_ssl
from sslrec.models.lightgcn import LightGCN, combine_layers


class SimGCL(LightGCN):
    """``L = BPR(clean) + λ · (InfoNCE_user + InfoNCE_item)(noisy 1, noisy 2) + reg``.

    Each noisy encoder adds ``noise`` to the output of every layer and propagates it onward;
    final representations average layers ``1..K`` (``include_layer0=False``, the paper's choice,
    for the clean encoder too).

    Args:
        noise: the embedding augmenter (default: uniform noise, ``ε = 0.1``).
        ssl_weight: ``λ``.
        bpr_weight: weight of the BPR term (1; 0 trains on the contrastive loss only).
        head: InfoNCE head (official: ``in_batch`` unique ids, ``mean``, τ = 0.2).
        fused: propagate the clean and both noisy encoders as one wide matrix
            (:meth:`LightGCN.layers_of_views`); ``experiments/bench_epoch.py`` measures both.
        **kwargs: :class:`LightGCN` arguments.
    """

    def __init__(
        self,
        noise: EmbeddingAugmenter | None = None,
        ssl_weight: float = 0.5,
        bpr_weight: float = 1.0,
        head: InfoNCEHead | None = None,
        fused: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("include_layer0", False)
        super().__init__(**kwargs)
        self.fused = fused
        self.noise = noise if noise is not None else UniformNoise(0.1)
        self.ssl_weight = ssl_weight
        self.bpr_weight = bpr_weight
        self.head = head if head is not None else InfoNCEHead(0.2, "in_batch", "mean")

    def loss(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        views = self.layers_of_views([None, self.noise, self.noise], self.fused)
        clean, noisy1, noisy2 = (self.split(combine_layers(v, self.weights)) for v in views)
        out = self.bpr_and_reg(*clean, users, pos, neg)
        ssl = self.head(noisy1, noisy2, users, pos)
        return with_ssl(out, ssl, self.ssl_weight, self.bpr_weight)
