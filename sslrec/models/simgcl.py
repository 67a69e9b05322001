"""SimGCL (Yu et al., SIGIR 2022): contrast two noise-perturbed propagations."""

from __future__ import annotations

from typing import Any

from sslrec.augment import EmbeddingAugmenter, UniformNoise
from sslrec.augment.base import require
from sslrec.data.sampling import Batch
from sslrec.losses import InfoNCEHead, L2Reg, Term
from sslrec.models.base import with_ssl
from sslrec.models.lightgcn import LightGCN

#: SELFRec's SimGCL/XSimGCL regulariser: ``λ · (‖U‖ + ‖P‖) / B`` on the propagated user and
#: positive rows (unsquared norms, no negative rows)
SELFREC_REG = L2Reg(squared=False, apply_to="propagated", include_negative=False)


class SimGCL(LightGCN):
    """``L = ranking(clean) + λ · (InfoNCE_user + InfoNCE_item)(noisy 1, noisy 2) + reg``.

    Each noisy encoder adds ``noise`` to the output of every layer and propagates it onward;
    final representations average layers ``1..K`` (``include_layer0=False``, the paper's choice,
    for the clean encoder too).

    Args:
        noise: the embedding augmenter (uniform noise, ``ε = 0.1``).
        ssl_weight: ``λ`` (0.1, chosen on lastfm's validation split; the paper's yelp2018 value
            0.5 is in ``+experiment=simgcl_yelp2018``).
        head: InfoNCE head (official: ``in_batch`` unique ids, ``mean``, τ = 0.2).
        fused: propagate the clean and both noisy encoders as one wide ``[N, 3d]`` matrix
            (:meth:`LightGCN.encode_views`, ``wide``): one sparse product per layer instead of
            three. Off by default: on the CPU the wide products leave the caches and the step
            is ~1.5× slower (``experiments/bench_epoch.py --variants simgcl simgcl-fused``).
            Without it the three encoders run one after another and share their first
            product ``Â E^(0)`` (``shared``: 14 sparse products a step instead of 18, the same
            values and draws as three separate encoders).
        include_layer0, reg: as :class:`LightGCN`, with SELFRec's choices as defaults.
        **kwargs: the other :class:`LightGCN` arguments.
    """

    def __init__(
        self,
        noise: EmbeddingAugmenter = UniformNoise(0.1),
        ssl_weight: float = 0.1,
        head: InfoNCEHead = InfoNCEHead(0.2, "in_batch", "mean"),
        fused: bool = False,
        include_layer0: bool = False,
        reg: L2Reg = SELFREC_REG,
        **kwargs: Any,
    ) -> None:
        super().__init__(include_layer0=include_layer0, reg=reg, **kwargs)
        require(noise, EmbeddingAugmenter, "simgcl")
        self.fused = fused
        self.noise = noise
        self.ssl_weight = ssl_weight
        self.head = head

    def loss(self, batch: Batch) -> dict[str, Term]:
        """The ranking terms, ``ssl`` and ``reg``; with in-batch negatives (official) every view
        runs for the batch's nodes only (:meth:`LightGCN.encode_views` with ``rows``)."""
        perturbs = [None, self.noise, self.noise]
        rows = None
        if self.head.negatives == "in_batch":  # `all` reads every row of view 2
            rows = self.node_rows(batch.users, batch.pos, batch.neg)
        layout = "wide" if self.fused else "shared"
        clean, noisy1, noisy2 = self.encode_views(perturbs, layout, rows)
        terms = self.ranking_terms(*clean, batch)
        ssl = self.head(noisy1, noisy2, batch.users, batch.pos)
        return with_ssl(terms, ssl, self.ssl_weight)
