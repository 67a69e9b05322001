"""NCL (Lin et al., WWW 2022): LightGCN + structure- and prototype-contrastive terms.

Official code: RUCAIBox/NCL (``ncl.py``, ``trainer.py``, ``properties/*.yaml``, on RecBole
1.0.0); ``docs/zoo/ncl.md`` lists the conventions and where they come from.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

from sslrec.data.sampling import Batch
from sslrec.losses import L2Reg, Term, info_nce
from sslrec.losses.normalize import unit_rows
from sslrec.losses.tiled import tiled_logsumexp
from sslrec.models.base import with_ssl
from sslrec.models.kmeans import kmeans
from sslrec.models.lightgcn import LightGCN

log = logging.getLogger(__name__)

#: NCL's regulariser (RecBole 1.0.0 ``EmbLoss``): ``λ (‖U⁰‖ + ‖P⁰‖ + ‖N⁰‖) / B``, unsquared
#: Frobenius norms of the batch's layer-0 user, positive and negative rows
NCL_REG = L2Reg(squared=False)


class NCL(LightGCN):
    """``L = BPR + reg + ssl_reg · (L_S^U + α L_S^I) + proto_reg · (L_P^U + L_P^I)``.

    The encoder propagates ``max(K, 2h)`` layers (``h`` = ``hyper_layers``); BPR and ranking
    use the mean of layers ``0..K`` (official ``ncl.py``: ``embeddings_list[:n_layers+1]``).

    Structure term, per batch row ``b`` (user ``u_b``; the item side uses the positive item
    ``i_b`` and all items):

        ``L_S^U = Σ_b −log( exp(ẑ_b^(2h) · ẑ_b^(0) / τ) / Σ_{v ∈ U} exp(ẑ_b^(2h) · ẑ_v^(0) / τ) )``

    with ``ẑ_b`` the L2-normalised embeddings of ``u_b``, all users as negatives (the positive
    included in the denominator), batch ids as given (duplicates kept) and a SUM over the batch.

    Prototype term (ProtoNCE), with ``c_j`` the L2-normalised k-means centroids of the layer-0
    user embeddings and ``c(u)`` the one ``u`` is assigned to:

        ``L_P^U = Σ_b −log( exp(ẑ_b^(0) · c(u_b) / τ) / Σ_j exp(ẑ_b^(0) · c_j / τ) )``

    k-means (:func:`~sslrec.models.kmeans.kmeans`, faiss' defaults, Euclidean on the raw
    layer-0 tables) is redone at the start of every epoch from ``warm_up`` on; the prototype
    term is 0 (logged as such) during the first ``warm_up`` epochs (official ``trainer.py``:
    ``if epoch_idx < warm_up_step: losses = losses[:-1]``). The epoch count is a buffer, so a
    resumed run continues it; the clustering draws from torch's global generator, which the
    trainer seeds and checkpoints, so a resumed run redraws the same clusters.

    Shapes: embeddings ``[U+I, d]``; batch ``users``/``pos`` ``[B]``; centroids ``[k, d]``.

    Args:
        ssl_temp: ``τ`` of both terms (official default 0.1; yelp 0.05).
        ssl_reg: weight of the structure term (official default 1e-7; yelp 1e-6).
        alpha: ``α``, the item structure term's share (official default 1; yelp 1.5).
        proto_reg: weight of the prototype term (official default 8e-8; yelp 1e-7).
        hyper_layers: ``h``; the structure anchor is layer ``2h`` (official default 1).
        num_clusters: ``k`` for users and for items each, clamped to their counts: 100, chosen
            on lastfm's validation split (official default 1000, yelp 2000; on lastfm the two
            validation curves agree to 3 decimals, 100 is the cheaper; ``docs/zoo/ncl.md``).
        warm_up: epochs without the prototype term (official ``warm_up_step`` 20).
        reg: NCL's unsquared L2 on the ego rows (:data:`NCL_REG`).
        **kwargs: the other :class:`LightGCN` arguments (``num_layers`` ``K`` = 3 as official).
    """

    def __init__(
        self,
        ssl_temp: float = 0.1,
        ssl_reg: float = 1e-7,
        alpha: float = 1.0,
        proto_reg: float = 8e-8,
        hyper_layers: int = 1,
        num_clusters: int = 100,
        warm_up: int = 20,
        reg: L2Reg = NCL_REG,
        **kwargs: Any,
    ) -> None:
        super().__init__(reg=reg, **kwargs)
        if not ssl_temp > 0:
            raise ValueError(f"model.ssl_temp must be > 0, got {ssl_temp}")
        if not isinstance(hyper_layers, int) or hyper_layers < 1:
            raise ValueError(f"model.hyper_layers must be an integer >= 1, got {hyper_layers!r}")
        if not isinstance(num_clusters, int) or num_clusters < 1:
            raise ValueError(f"model.num_clusters must be an integer >= 1, got {num_clusters!r}")
        if not isinstance(warm_up, int) or warm_up < 0:
            raise ValueError(f"model.warm_up must be an integer >= 0, got {warm_up!r}")
        self.ssl_temp = ssl_temp
        self.ssl_reg = ssl_reg
        self.alpha = alpha
        self.proto_reg = proto_reg
        self.hyper_layers = hyper_layers
        self.num_clusters = num_clusters
        self.warm_up = warm_up
        if num_clusters > min(self.n_users, self.n_items):
            log.warning(
                "model.num_clusters=%d exceeds the users (%d) or items (%d): that side gets "
                "one cluster per node",
                num_clusters,
                self.n_users,
                self.n_items,
            )
        # epochs started (start_epoch calls): checkpointed with the state dict, so a resumed
        # run continues the warm-up count
        self.register_buffer("epochs_started", torch.zeros((), dtype=torch.int64))
        self._epoch = 0  # its host copy: reading the buffer per batch would sync a GPU
        # E-step results, redrawn every epoch (not checkpointed: the resume redraws them)
        self.user_centroids: torch.Tensor | None = None  # [k_u, d], unit rows
        self.user_clusters: torch.Tensor | None = None  # [U] int64
        self.item_centroids: torch.Tensor | None = None
        self.item_clusters: torch.Tensor | None = None

    @property
    def depth(self) -> int:
        """Propagations: ``max(K, 2h)``."""
        return max(self.num_layers, 2 * self.hyper_layers)

    def proto_active(self) -> bool:
        """Whether the current epoch (1-based, ``start_epoch`` calls) is past ``warm_up``."""
        return self._epoch > self.warm_up

    def start_epoch(self) -> None:
        """Count the epoch; past the warm-up, redo k-means on the layer-0 tables (E-step)."""
        self.epochs_started += 1
        self._epoch = int(self.epochs_started)  # once per epoch
        if self.proto_active():
            self.e_step()

    def e_step(self) -> None:
        """k-means of the raw layer-0 user and item tables; centroids L2-normalised after."""
        for side, table in (("user", self.user_embedding), ("item", self.item_embedding)):
            result = kmeans(table.weight.detach(), self.num_clusters)
            setattr(self, f"{side}_centroids", F.normalize(result.centroids, dim=1))
            setattr(self, f"{side}_clusters", result.assignments)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._epoch = int(self.epochs_started)  # the host copy follows a resume

    def loss(self, batch: Batch) -> dict[str, Term]:
        """``bpr``, ``ssl`` (``L_S^U + α L_S^I``, weight ``ssl_reg``), ``proto``
        (``L_P^U + L_P^I``, weight ``proto_reg``; 0 during the warm-up) and ``reg``; the final
        and context layers at the batch's nodes only (:meth:`LightGCN.encode` with ``rows``),
        the ego layer whole (every node is a negative)."""
        rows = self.node_rows(batch.users, batch.pos, batch.neg)
        ego_reg = self.reg.apply_to == "ego"
        final, (ego, context, *tables) = self.encode(
            depth=self.depth, taps=(0, 2 * self.hyper_layers), rows=rows, ego=ego_reg
        )
        terms = self.ranking_terms(*final, batch, tables[0] if tables else None)
        ssl = self.structure_loss(ego, context, batch)
        terms = with_ssl(terms, ssl, self.ssl_reg)
        reg = terms.pop("reg")
        terms["proto"] = Term(self.prototype_loss(ego, batch), self.proto_reg)
        terms["reg"] = reg
        return terms

    def structure_loss(
        self,
        ego: tuple[torch.Tensor, torch.Tensor],
        context: tuple[torch.Tensor, torch.Tensor],
        batch: Batch,
    ) -> torch.Tensor:
        """``L_S^U + α L_S^I``: ``context`` (layer ``2h``, ``(users, items)``) anchors against
        ``ego`` (layer 0), all nodes of the side as negatives, summed (the fused tiled
        logsumexp)."""
        (ego_u, ego_i), (ctx_u, ctx_i) = ego, context
        kw = {"temperature": self.ssl_temp, "negatives": "all", "reduction": "sum"}
        users = info_nce(ctx_u, ego_u, batch.users, **kw)
        return users + self.alpha * info_nce(ctx_i, ego_i, batch.pos, **kw)

    def prototype_loss(self, ego: tuple[torch.Tensor, torch.Tensor], batch: Batch) -> torch.Tensor:
        """``L_P^U + L_P^I`` on the batch's users and positive items (0 during the warm-up);
        ``ego`` = layer 0 as ``(users, items)``."""
        ego_u, ego_i = ego
        if not self.proto_active():
            return ego_u.new_zeros(())
        if self.user_centroids is None:  # loss() before any start_epoch past the warm-up
            self.e_step()
        return self._proto_nce(ego_u, batch.users, self.user_centroids, self.user_clusters) + (
            self._proto_nce(ego_i, batch.pos, self.item_centroids, self.item_clusters)
        )

    def _proto_nce(
        self,
        table: torch.Tensor,
        ids: torch.Tensor,
        centroids: torch.Tensor,
        clusters: torch.Tensor,
    ) -> torch.Tensor:
        """``Σ_b logsumexp_j(ẑ_b · c_j / τ) − ẑ_b · c(b) / τ`` with ``ẑ_b`` the normalised
        ``table`` rows of ``ids`` ``[B]`` and ``centroids`` ``[k, d]`` (unit rows, constant)."""
        anchors = unit_rows(F.embedding(ids, table)) / self.ssl_temp
        positives = centroids.index_select(0, clusters.index_select(0, ids))
        lse = tiled_logsumexp(anchors, centroids)
        return (lse - (anchors * positives).sum(-1)).sum()
