"""The two kinds of augmenter, each a small base class.

* A :class:`GraphAugmenter` draws a perturbed graph view: a list of ``K`` normalised adjacencies,
  one per propagation layer (the same matrix ``K`` times unless the augmenter varies it per
  layer, like SGL's random walk). Views are rebuilt on the ids' device with torch ops.
* An :class:`EmbeddingAugmenter` perturbs the output of every propagation layer; the perturbed
  embedding is what the next layer propagates.

Both draw from torch's global generator, which the trainer seeds and checkpoints, so the same
seed gives the same views and a resumed run draws what the uninterrupted one would have. A
model names the kind it needs (:func:`require`), so ``model=sgl augmenter=noise`` stops with a
sentence rather than a ``TypeError`` deep in a forward pass.
"""

from __future__ import annotations

import torch


class GraphAugmenter:
    """Draws graph views (SGL's ED, ND, RW)."""

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
        raise NotImplementedError


class EmbeddingAugmenter:
    """Perturbs layer outputs (SimGCL's noise).

    ``additive`` says the perturbation is ``x + additive_noise(x)`` with a noise whose gradient
    with respect to ``x`` is zero, so the perturbed encoder's Jacobian is the clean one's and
    the encoder may run as one node with a Horner backward
    (:meth:`sslrec.models.lightgcn.LightGCN.encode`).
    """

    additive: bool = False
    #: whether :meth:`add_noise` takes ``at``: the noise of some rows of a layer
    noise_at_rows: bool = False

    def additive_noise(self, x: torch.Tensor) -> torch.Tensor:
        """The ``[N, d]`` noise an ``additive`` augmenter adds to ``x`` ``[N, d]``."""
        raise NotImplementedError

    def add_noise(
        self,
        x: torch.Tensor,
        out: torch.Tensor | None = None,
        at: tuple[torch.Tensor, int] | None = None,
    ) -> torch.Tensor:
        """``x + additive_noise(x)`` written into ``out`` (``None``: ``x``, in place), without
        autograd: what the one-node encoder calls after each layer. Augmenters override it
        where they can fuse the addition.

        ``at = (rows, n)``: ``x`` is ``[M, d]``, the rows ``rows`` of a layer of ``n`` rows,
        and gets those rows of the whole layer's noise (the same draws), where
        :attr:`noise_at_rows` says the augmenter can.
        """
        if at is not None:
            raise NotImplementedError(f"{type(self).__name__} does not add noise at rows")
        with torch.no_grad():
            noise = self.additive_noise(x)
            return x.add_(noise) if out is None else torch.add(x, noise, out=out)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Perturb one layer's output ``x`` ``[N, d]``; returns a new ``[N, d]`` tensor."""
        raise NotImplementedError


def require(augmenter: object, kind: type, model: str) -> None:
    """Refuse an augmenter of the wrong kind for ``model`` with a sentence saying which fit."""
    if not isinstance(augmenter, kind):
        graph = kind is GraphAugmenter
        need = (
            "a graph augmenter (augmenter=ed|nd|rw)"
            if graph
            else ("an embedding augmenter (augmenter=noise|gaussian)")
        )
        raise ValueError(f"model={model} needs {need}, got {type(augmenter).__name__}")
