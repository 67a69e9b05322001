"""LightGCN (He et al., SIGIR 2020) over a fixed normalised adjacency."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from sslrec.graph import symmetric_spmm
from sslrec.losses import BPRLoss, L2Reg, RankingLoss
from sslrec.models.base import EmbeddingRecommender


def combine_layers(
    layers: Sequence[torch.Tensor], weights: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    """``Σ_k w_k E^(k)`` over ``layers`` (each ``[N, d]``) with ``weights`` ``[K+1]``.

    Layers of weight 0 (layer 0 in SimGCL/XSimGCL) are skipped. Models pass their weights as
    host floats (:meth:`LightGCN.combine`): reading a device tensor would sync with a GPU.
    """
    ws = weights.tolist() if isinstance(weights, torch.Tensor) else list(weights)
    terms = [w * e for w, e in zip(ws, layers, strict=True) if w != 0]
    return sum(terms[1:], terms[0]) if terms else torch.zeros_like(layers[0])


def layer_mean_weights(
    num_layers: int, include_layer0: bool = True, weights: Sequence[float] | None = None
) -> torch.Tensor:
    """``[K+1]`` weights of layers ``0..K`` in the final representation.

    ``weights`` given explicitly win; otherwise a uniform mean over layers ``0..K``
    (``include_layer0``, LightGCN/SGL) or over ``1..K`` (SimGCL/XSimGCL).
    """
    if weights is not None:
        if len(weights) != num_layers + 1:
            raise ValueError(f"layer_weights needs {num_layers + 1} values, got {len(weights)}")
        return torch.tensor(list(weights), dtype=torch.float32)
    if num_layers == 0 and not include_layer0:
        raise ValueError("num_layers=0 needs include_layer0=true")
    w = torch.full((num_layers + 1,), 1.0)
    if not include_layer0:
        w[0] = 0.0
    return w / w.sum()


class LightGCN(EmbeddingRecommender):
    """LightGCN: ``E^(k+1) = Â E^(k)``, final ``E = Σ_k w_k E^(k)``.

    Args:
        n_users, n_items, embedding_dim, loss, reg: see :class:`EmbeddingRecommender`.
        adjacency: ``[U+I, U+I]`` symmetric normalised adjacency (sparse CSR).
        num_layers: ``K``.
        include_layer0: whether the mean includes the ego embeddings ``E^(0)``.
        layer_weights: explicit ``[K+1]`` weights (overrides ``include_layer0``).
    """

    graph_inputs = ("adjacency",)

    def __init__(
        self,
        n_users: int,
        n_items: int,
        adjacency: torch.Tensor,
        embedding_dim: int = 64,
        num_layers: int = 3,
        include_layer0: bool = True,
        layer_weights: Sequence[float] | None = None,
        loss: RankingLoss = BPRLoss(),
        reg: L2Reg = L2Reg(),
    ) -> None:
        super().__init__(n_users, n_items, embedding_dim, loss, reg)
        if not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"model.num_layers must be an integer >= 0, got {num_layers!r}")
        self.num_layers = num_layers
        weights = layer_mean_weights(num_layers, include_layer0, layer_weights)
        self.register_buffer("weights", weights, persistent=False)
        self.host_weights = weights.tolist()  # floats on the host: combining never syncs a GPU
        self.adjacency = adjacency

    def _apply(self, fn, recurse=True):  # keep the sparse adjacency on the module's device
        super()._apply(fn, recurse)
        self.adjacency = fn(self.adjacency)
        return self

    def layers(
        self,
        adjacency: torch.Tensor | Sequence[torch.Tensor] | None = None,
        perturb: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        """``[E^(0), ..., E^(K)]``, each ``[U+I, d]``.

        Args:
            adjacency: one ``[U+I, U+I]`` matrix for every layer, or ``K`` matrices (layer ``k``
                uses the ``k``-th); ``None`` uses the training graph.
            perturb: applied to each layer's output before the next layer propagates it.
        """
        adjs = adjacency if isinstance(adjacency, Sequence) else [adjacency] * self.num_layers
        x = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        out = [x]
        for adj in adjs:
            x = symmetric_spmm(self.adjacency if adj is None else adj, x)
            if perturb is not None:
                x = perturb(x)
            out.append(x)
        return out

    def layers_of_views(
        self, perturbs: Sequence[Callable[[torch.Tensor], torch.Tensor] | None], fused: bool
    ) -> list[list[torch.Tensor]]:
        """``layers(perturb=p)`` for each ``p`` of ``perturbs``, over the training graph.

        With ``fused``, the ``V`` views propagate as one ``[N, V·d]`` matrix, one sparse product
        per layer (``Â[E₁|E₂|E₃] = [ÂE₁|ÂE₂|ÂE₃]``), and each view's slice is perturbed after
        every layer. The results equal the separate propagations; random perturbations are
        drawn layer by layer instead of view by view, so the draws pair up differently.
        """
        if not fused:
            return [self.layers(perturb=p) for p in perturbs]
        x0 = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        outs = [[x0] for _ in perturbs]
        x = x0.repeat(1, len(perturbs))
        for _ in range(self.num_layers):
            parts = symmetric_spmm(self.adjacency, x).split(self.embedding_dim, dim=1)
            parts = [
                part if p is None else p(part) for p, part in zip(perturbs, parts, strict=True)
            ]
            for out, part in zip(outs, parts, strict=True):
                out.append(part)
            x = torch.cat(parts, dim=1)
        return outs

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[U+I, d]`` → ``([U, d], [I, d])``."""
        return x[: self.n_users], x[self.n_users :]

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(self.combine(self.layers()))

    def combine(self, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        """The final representation ``Σ_k w_k E^(k)`` of ``layers`` (each ``[U+I, d]``)."""
        return combine_layers(layers, self.host_weights)
