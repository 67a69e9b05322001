"""XSimGCL (Yu et al., TKDE 2023): one noisy propagation feeds BPR and cross-layer InfoNCE."""

from __future__ import annotations

from typing import Any

from sslrec.augment import EmbeddingAugmenter, UniformNoise
from sslrec.augment.base import require
from sslrec.data.sampling import Batch
from sslrec.losses import InfoNCEHead, L2Reg, Term
from sslrec.models.base import with_ssl
from sslrec.models.lightgcn import LightGCN
from sslrec.models.simgcl import SELFREC_REG


class XSimGCL(LightGCN):
    """``L = ranking(final) + λ · InfoNCE(final, layer l*) + reg`` from one noisy forward pass.

    Training propagates once with ``noise`` after every layer; the final representation (mean
    of layers ``1..K`` by default) scores the ranking loss and is contrasted with the noisy
    output of layer ``l*`` (``cl_layer``, 1-based). Ranking uses the clean propagation.

    Args:
        noise: embedding augmenter (uniform, ``ε = 0.1``; the paper's yelp2018 ``ε = 0.2`` is
            in ``+experiment=xsimgcl_yelp2018``).
        ssl_weight: ``λ`` (0.05, chosen on lastfm's validation split; the paper's yelp2018 0.2
            is in the experiment config).
        cl_layer: ``l*`` in ``1..K``.
        head: InfoNCE head (official: ``in_batch``, ``mean``, τ = 0.15).
        include_layer0, reg: as :class:`LightGCN`, with SELFRec's choices as defaults.
        **kwargs: the other :class:`LightGCN` arguments.
    """

    def __init__(
        self,
        noise: EmbeddingAugmenter = UniformNoise(0.1),
        ssl_weight: float = 0.05,
        cl_layer: int = 1,
        head: InfoNCEHead = InfoNCEHead(0.15, "in_batch", "mean"),
        include_layer0: bool = False,
        reg: L2Reg = SELFREC_REG,
        **kwargs: Any,
    ) -> None:
        super().__init__(include_layer0=include_layer0, reg=reg, **kwargs)
        require(noise, EmbeddingAugmenter, "xsimgcl")
        if not 1 <= cl_layer <= self.num_layers:
            raise ValueError(f"cl_layer must be in 1..{self.num_layers}, got {cl_layer}")
        self.noise = noise
        self.ssl_weight = ssl_weight
        self.cl_layer = cl_layer
        self.head = head

    def loss(self, batch: Batch) -> dict[str, Term]:
        """The ranking terms, ``ssl`` and ``reg``; with in-batch negatives (official) the
        encoder runs for the batch's nodes only (:meth:`LightGCN.encode` with ``rows``)."""
        rows = None
        if self.head.negatives == "in_batch":  # `all` reads every row of layer l*
            rows = self.node_rows(batch.users, batch.pos, batch.neg)
        final, (cl,) = self.encode(perturb=self.noise, taps=(self.cl_layer,), rows=rows)
        terms = self.ranking_terms(*final, batch)
        ssl = self.head(final, cl, batch.users, batch.pos)
        return with_ssl(terms, ssl, self.ssl_weight)
