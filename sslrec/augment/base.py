"""The two kinds of augmenter behind one small interface each.

* A :class:`GraphAugmenter` draws a perturbed graph view: a list of ``K`` normalised adjacencies,
  one per propagation layer (the same matrix ``K`` times unless the augmenter varies it per
  layer, like SGL's random walk). Views are rebuilt on the ids' device with torch ops.
* An :class:`EmbeddingAugmenter` perturbs the output of every propagation layer; the perturbed
  embedding is what the next layer propagates.

Both draw from torch's global generator, which the trainer seeds and checkpoints, so the same
seed gives the same views and a resumed run draws what the uninterrupted one would have.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class GraphAugmenter(Protocol):
    def __call__(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        n_users: int,
        n_items: int,
        num_layers: int,
    ) -> list[torch.Tensor]:
        """Draw one view.

        Args:
            users, items: ``[E]`` int64 ids of the raw training interactions.
            n_users, n_items: node counts ``U`` and ``I``.
            num_layers: ``K``.

        Returns:
            ``K`` sparse ``[U+I, U+I]`` normalised adjacencies, one per layer.
        """
        ...


@runtime_checkable
class EmbeddingAugmenter(Protocol):
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Perturb one layer's output ``x`` ``[N, d]``; returns a new ``[N, d]`` tensor."""
        ...
