"""XSimGCL (Yu et al., TKDE 2023): one noisy propagation feeds BPR and cross-layer InfoNCE."""

from __future__ import annotations

from typing import Any

import torch

from sslrec.augment import EmbeddingAugmenter, UniformNoise
from sslrec.losses import InfoNCEHead
from sslrec.models.base import with_ssl
from sslrec.models.lightgcn import LightGCN, combine_layers


class XSimGCL(LightGCN):
    """``L = BPR(final) + λ · InfoNCE(final, layer l*) + reg`` from a single noisy forward pass.

    Training propagates once with ``noise`` after every layer; the final representation (mean
    of layers ``1..K`` by default) scores BPR and is contrasted with the noisy output of layer
    ``l*`` (``cl_layer``, 1-based). Ranking uses the clean propagation.

    Args:
        noise: embedding augmenter (default uniform, ``ε = 0.2``).
        ssl_weight: ``λ``.
        bpr_weight: weight of the BPR term (1; 0 trains on the contrastive loss only).
        cl_layer: ``l*`` in ``1..K``.
        head: InfoNCE head (official: ``in_batch``, ``mean``, τ = 0.15).
        **kwargs: :class:`LightGCN` arguments.
    """

    def __init__(
        self,
        noise: EmbeddingAugmenter | None = None,
        ssl_weight: float = 0.2,
        bpr_weight: float = 1.0,
        cl_layer: int = 1,
        head: InfoNCEHead | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("include_layer0", False)
        super().__init__(**kwargs)
        if not 1 <= cl_layer <= self.num_layers:
            raise ValueError(f"cl_layer must be in 1..{self.num_layers}, got {cl_layer}")
        self.noise = noise if noise is not None else UniformNoise(0.2)
        self.ssl_weight = ssl_weight
        self.bpr_weight = bpr_weight
        self.cl_layer = cl_layer
        self.head = head if head is not None else InfoNCEHead(0.15, "in_batch", "mean")

    def loss(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        layers = self.layers(perturb=self.noise)
        final = self.split(combine_layers(layers, self.weights))
        out = self.bpr_and_reg(*final, users, pos, neg)
        ssl = self.head(final, self.split(layers[self.cl_layer]), users, pos)
        return with_ssl(out, ssl, self.ssl_weight, self.bpr_weight)
