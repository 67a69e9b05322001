"""LightGCL (Cai et al., ICLR 2023): contrast the graph view with a low-rank SVD view.

The SVD view replaces the normalised interaction matrix ``R̃ = D_u^-1/2 R D_i^-1/2`` ``[U, I]``
by its rank-``q`` reconstruction ``Û Ŝ V̂ᵀ`` (``torch.svd_lowrank``, computed once), applied as
``(Û Ŝ)(V̂ᵀ E)``: ``O((U + I) q d)`` per layer, never the dense ``[U, I]`` matrix.

Two settings of the official repository (HKUDS/LightGCL @ 5590453), ``setting=``:

* ``code`` (the repository's current ``model.py``, the default): no activation, no residual,
  ``E = Σ_{l=0..L} E^(l)`` and ``G = Σ_{l=0..L} G^(l)`` (layer 0 included, ``G^(0) = E^(0)``),
  InfoNCE of the summed views with raw dot products, all users/items as negatives, the
  positive logit clamped to ``[−5, 5]``, means over the batch.
* ``paper`` (``old_setting/``, the ICLR-submission code; the architecture the paper describes):
  LeakyReLU(0.5) on both views, residual ``E^(l) = Z^(l) + E^(l-1)``, per-layer cosine InfoNCE
  between ``Z^(l)`` and ``W_l·G^(l)`` with in-batch negatives and a random 50% anchor mask,
  summed; the SVD of the raw (unnormalised) ``R``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sslrec.data.sampling import Batch
from sslrec.devices import host_paths
from sslrec.graph import symmetric_spmm
from sslrec.graph.rows import Rows
from sslrec.graph.spmm import transposed_spmm
from sslrec.losses import BPRLoss, L2Reg, RankingLoss, Term
from sslrec.losses.infonce import first_occurrence
from sslrec.losses.normalize import unit_rows
from sslrec.losses.tiled import tiled_logsumexp
from sslrec.models.base import with_ssl
from sslrec.models.lightgcn import LightGCN

SETTINGS = ("code", "paper")
#: official ``torch.log(Σ exp(·) + 1e-8)``: the 1e-8 is kept, as ``logaddexp(lse, log 1e-8)``
_LOG_EPS = math.log(1e-8)
#: official code clamps the positive logit (after ``/τ``) to this range
_POS_CLAMP = 5.0


def transpose_order(adjacency: torch.Tensor) -> torch.Tensor:
    """``[nnz]`` index ``t`` with ``values[t]`` the values of ``adjacencyᵀ`` in the CSR order of
    ``adjacency`` (whose sparsity pattern is symmetric): entry ``k = (r, c)`` ↦ entry ``(c, r)``.
    """
    crow, col = adjacency.crow_indices(), adjacency.col_indices()
    n = adjacency.shape[0]
    row = torch.repeat_interleave(torch.arange(n, device=col.device), crow.diff())
    keys = row * n + col  # sorted: CSR order
    return torch.searchsorted(keys, col * n + row)


def interaction_block(adjacency: torch.Tensor, n_users: int, raw: bool) -> torch.Tensor:
    """The ``[U, I]`` user-item block of the ``[U+I, U+I]`` adjacency as sparse COO: ``R̃``
    (its normalised values) or, with ``raw``, the binary ``R``."""
    coo = adjacency.to_sparse_coo().coalesce()
    rows, cols = coo.indices()
    upper = rows < n_users
    values = coo.values()[upper]
    if raw:
        values = torch.ones_like(values)
    n_items = adjacency.shape[0] - n_users
    idx = torch.stack([rows[upper], cols[upper] - n_users])
    return torch.sparse_coo_tensor(
        idx, values, (n_users, n_items), check_invariants=True
    ).coalesce()


class LightGCL(LightGCN):
    """``L = ranking(E) + λ₁ · L_cl(G, E) + λ₂ · Σ_θ ‖θ‖²``.

    Propagation, layer ``l = 1..L`` (``E^(0) = G^(0)`` the ego tables, ``[U+I, d]``):

    * graph view ``Z^(l) = [R̃ E_i^(l-1); R̃ᵀ E_u^(l-1)]`` (``edge_dropout`` on ``R̃``'s values,
      rescaled by ``1/(1−p)``, fresh and independent per layer and per side, not renormalised);
    * SVD view ``G^(l) = [ÛŜ (V̂ᵀ E_i^(l-1)); V̂Ŝ (Ûᵀ E_u^(l-1))]`` — it propagates the graph
      view's previous layer, not its own;
    * ``code``: ``E^(l) = Z^(l)``; ``paper``: ``Z, G ← LeakyReLU_0.5(Z, G)``,
      ``E^(l) = Z^(l) + E^(l-1)``;
    * ``E = Σ_l w_l E^(l)``, ``G = Σ_l w_l G^(l)`` (``w = 1``: the official sum).

    ``code`` CL (``ssl``; anchors ``b`` = batch users, and positives then negatives as items)::

        mean_b [log(Σ_j exp(G_b·E_j / τ) + 1e-8)] − mean_b [clamp(G_b·E_b / τ, −5, 5)]

    per side, summed; ``j`` runs over all users (items). The log-sum-exp is the tiled kernel
    (:func:`~sslrec.losses.tiled.tiled_logsumexp`): no ``[B, N]`` block is built.

    ``paper`` CL: ``Σ_l Σ_b m_b · −log(exp(s_bb/τ) / (Σ_j exp(s_bj/τ) + 1e-8) + 1e-8)`` with
    ``s_bj = ẑ_b · (ĝ_j W_l)``, ``ẑ, ĝ`` the L2-normalised ``Z^(l)``, ``G^(l)`` rows, ``b, j``
    over the batch's distinct users (distinct positive and negative items), ``m_b ~
    Bernoulli(0.5)`` drawn per layer and side.

    Args:
        n_users, n_items, adjacency, embedding_dim: see :class:`LightGCN` (``d`` 64: official
            code; the paper's ``old_setting`` uses 32).
        num_layers: ``L`` (official ``gnn_layer`` 2).
        setting: ``code`` or ``paper`` (module docstring).
        ssl_weight: ``λ₁``: 0.05, chosen on lastfm's validation split (seed 1: Recall@20
            0.2563 against 0.2423 at the official code's 0.2, which ``+experiment=lightgcl_*``
            keep; ``old_setting`` 1e-7).
        temperature: ``τ`` (official code 0.2; ``old_setting`` 0.5).
        reg_weight: ``λ₂``: ``λ₂ Σ ‖θ‖²_F`` over every parameter, whole tables, not divided by
            ``B`` (official code 1e-7; ``old_setting``'s Adam weight decay 1e-4 is ``λ₂ = 5e-5``).
        svd_rank: ``q`` of ``torch.svd_lowrank`` (official 5).
        svd_seed: seeds the randomised SVD (official: unseeded), so a run is reproducible.
        edge_dropout: ``p`` on ``R̃``'s values in training (official code 0.0; ``old_setting``
            0.25).
        include_layer0, layer_weights: the layer weights ``w``; ``None``: 1 for every layer
            (``include_layer0=False``: 0 for layer 0), the official sum.
        loss: the ranking loss (official code: BPR, mean; the paper's ``L_r`` is the hinge,
            ``loss=hinge``).
        reg: an optional batch-row :class:`L2Reg` added to the ``reg`` term (official: none).
    """

    graph_inputs = ("adjacency",)

    def __init__(
        self,
        n_users: int,
        n_items: int,
        adjacency: torch.Tensor,
        embedding_dim: int = 64,
        num_layers: int = 2,
        setting: str = "code",
        ssl_weight: float = 0.05,
        temperature: float = 0.2,
        reg_weight: float = 1e-7,
        svd_rank: int = 5,
        svd_seed: int = 0,
        edge_dropout: float = 0.0,
        include_layer0: bool = True,
        layer_weights: Sequence[float] | None = None,
        loss: RankingLoss = BPRLoss(),
        reg: L2Reg | None = None,
        **kwargs: Any,
    ) -> None:
        if setting not in SETTINGS:
            raise ValueError(f"model.setting must be 'code' or 'paper', got {setting!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"model.num_layers must be an integer >= 1, got {num_layers!r}")
        if layer_weights is None:  # the official sum over layers 0..L
            layer_weights = [float(include_layer0)] + [1.0] * num_layers
        super().__init__(
            n_users=n_users,
            n_items=n_items,
            adjacency=adjacency,
            embedding_dim=embedding_dim,
            num_layers=num_layers,
            layer_weights=layer_weights,
            loss=loss,
            reg=L2Reg() if reg is None else reg,  # used only when given (reg_loss)
            **kwargs,
        )
        if self.reweighted or self.layer_norm:  # its own graph and SVD layers ignore them
            raise ValueError(
                "model=lightgcl propagates its own graph and SVD views: the LightGCN++ options "
                "model.norm_alpha/norm_beta/layer_norm do not apply (leave 0.5/0.5/false)"
            )
        if not temperature > 0:
            raise ValueError(f"model.temperature must be > 0, got {temperature}")
        if not 0.0 <= edge_dropout < 1.0:
            raise ValueError(f"model.edge_dropout must be in [0, 1), got {edge_dropout}")
        if not isinstance(svd_rank, int) or not 1 <= svd_rank <= min(n_users, n_items):
            raise ValueError(
                f"model.svd_rank must be an integer in 1..min(users, items) = "
                f"{min(n_users, n_items)}, got {svd_rank!r}"
            )
        self.setting = setting
        self.ssl_weight = ssl_weight
        self.temperature = temperature
        self.reg_weight = reg_weight
        self.edge_dropout = edge_dropout
        self.batch_reg = reg
        self.register_buffer("transpose_index", transpose_order(adjacency), persistent=False)
        if setting == "paper":  # old_setting's W_contrastive: one learned d x d map per layer
            self.contrast_maps = nn.ParameterList(
                nn.Parameter(nn.init.xavier_uniform_(torch.empty(embedding_dim, embedding_dim)))
                for _ in range(num_layers)
            )
        us, vs = self._svd(
            interaction_block(adjacency, n_users, raw=setting == "paper"), svd_rank, svd_seed
        )
        # G_u = (U S)(Vᵀ E_i), G_i = (V S)(Uᵀ E_u): the official u_mul_s, vt, v_mul_s, ut
        self.register_buffer("u_mul_s", us[0], persistent=False)
        self.register_buffer("vt", vs[1], persistent=False)
        self.register_buffer("v_mul_s", vs[0], persistent=False)
        self.register_buffer("ut", us[1], persistent=False)

    @staticmethod
    def _svd(
        matrix: torch.Tensor, q: int, seed: int
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """``((Û Ŝ [U, q], Ûᵀ [q, U]), (V̂ Ŝ [I, q], V̂ᵀ [q, I]))`` of the rank-``q``
        randomised SVD (``niter`` 2, torch's default as official), seeded without touching
        the global generator's stream."""
        devices = [matrix.device] if matrix.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            u, s, v = torch.svd_lowrank(matrix, q=q)
        return (u * s, u.t().contiguous()), (v * s, v.t().contiguous())

    # ----------------------------------------------------------------------------------------
    # propagation
    # ----------------------------------------------------------------------------------------

    def _graph_layer(self, x: torch.Tensor, dropout: bool) -> torch.Tensor:
        """``Z = [R̃ x_i; R̃ᵀ x_u]`` ``[U+I, d]``, with fresh edge dropout in training."""
        if not (dropout and self.edge_dropout > 0):
            return symmetric_spmm(self.adjacency, x)
        # one independent mask per stored value: the (u, i) and (i, u) entries are the user-
        # and item-side copies, dropped independently as the official two sparse_dropout calls
        values = F.dropout(self.adjacency.values(), p=self.edge_dropout)
        crow, col = self.adjacency.crow_indices(), self.adjacency.col_indices()
        shape = self.adjacency.shape
        adj = torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)
        adj_t = torch.sparse_csr_tensor(
            crow, col, values[self.transpose_index], shape, check_invariants=False
        )
        return transposed_spmm(adj, adj_t, x)

    def _svd_layer(self, x: torch.Tensor) -> torch.Tensor:
        """``G = [ÛŜ (V̂ᵀ x_i); V̂Ŝ (Ûᵀ x_u)]`` ``[U+I, d]``."""
        x_u, x_i = self.split(x)
        return torch.cat([self.u_mul_s @ (self.vt @ x_i), self.v_mul_s @ (self.ut @ x_u)])

    def views(
        self, training: bool = True
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """``(E layers, G layers, Z layers)``, ``L + 1`` tensors ``[U+I, d]`` each (index 0:
        the ego tables; ``Z`` and ``G`` are the activated layer outputs in ``paper``).
        ``training`` applies edge dropout; without it the SVD view is not computed."""
        x = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        e_layers, g_layers, z_layers = [x], [x], [x]
        for _ in range(self.num_layers):
            z = self._graph_layer(x, dropout=training)
            g = self._svd_layer(x) if training else None
            if self.setting == "paper":
                z = F.leaky_relu(z, 0.5)
                g = None if g is None else F.leaky_relu(g, 0.5)
                x = z + x
            else:
                x = z
            e_layers.append(x)
            z_layers.append(z)
            if g is not None:
                g_layers.append(g)
        return e_layers, g_layers, z_layers

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Scoring representations: ``E`` without edge dropout (official scores with the
        embeddings cached from the last training forward)."""
        return self.split(self.combine(self.views(training=False)[0]))

    # ----------------------------------------------------------------------------------------
    # objective
    # ----------------------------------------------------------------------------------------

    def loss(self, batch: Batch) -> dict[str, Term]:
        """The ranking terms on ``E``, ``ssl`` (weight ``λ₁``) and ``reg``."""
        e_layers, g_layers, z_layers = self.views(training=True)
        e = self.combine(e_layers)
        terms = self.ranking_terms(*self.split(e), batch)
        items = torch.cat([batch.pos, batch.neg.reshape(-1)])  # official iids = [pos, neg]
        if self.setting == "code":
            ssl = self.code_cl(self.combine(g_layers), e, batch.users, items)
        else:
            ssl = self.paper_cl(z_layers, g_layers, batch.users, items)
        return with_ssl(terms, ssl, self.ssl_weight)

    def code_cl(
        self, g: torch.Tensor, e: torch.Tensor, users: torch.Tensor, items: torch.Tensor
    ) -> torch.Tensor:
        """The current code's CL of the summed views ``g``, ``e`` ``[U+I, d]`` on ``users``
        ``[B]`` and ``items`` ``[B']`` (duplicates kept, as official)."""
        (g_u, g_i), (e_u, e_i) = self.split(g), self.split(e)
        return self._code_side(g_u, e_u, users) + self._code_side(g_i, e_i, items)

    def _code_side(self, g: torch.Tensor, e: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """``mean_b [log(Σ_j exp(g_b·e_j/τ) + 1e-8) − clamp(g_b·e_b/τ, ±5)]`` over ``ids``."""
        n_anchors = ids.shape[0]
        weight = None
        if host_paths(ids.device):
            # Each distinct id once, weighted by its count: the same mean at a fraction of the
            # B·N·d work (lastfm batches repeat ~40% of their ids). Not on accelerators, where
            # torch.unique's data-dependent size would sync with the host.
            ids, counts = torch.unique(ids, return_counts=True)
            weight = counts.to(g.dtype) / n_anchors
        a = F.embedding(ids, g) / self.temperature  # [B, d]: 1/τ folded into the anchors
        # [B] log Σ_j exp(a·e_j) over all N rows, no [B, N] block; the weights let its CPU
        # path sum ∂/∂e for this loss in the forward instead of recomputing it in the backward
        lse = tiled_logsumexp(a, e, weights=weight)
        neg = torch.logaddexp(lse, torch.full_like(lse, _LOG_EPS))
        pos = (a * F.embedding(ids, e)).sum(-1).clamp(-_POS_CLAMP, _POS_CLAMP)
        per_anchor = neg - pos
        return per_anchor.mean() if weight is None else (per_anchor * weight).sum()

    def paper_cl(
        self,
        z_layers: list[torch.Tensor],
        g_layers: list[torch.Tensor],
        users: torch.Tensor,
        items: torch.Tensor,
    ) -> torch.Tensor:
        """``old_setting``'s CL summed over layers ``1..L`` and both sides; duplicate ids are
        masked out (as anchors and as candidates), so the value is the official set-of-ids one
        with shapes that do not depend on the data (no host sync)."""
        keep_u, keep_i = first_occurrence(users), first_occurrence(items)
        total = z_layers[0].new_zeros(())
        for layer in range(1, self.num_layers + 1):
            w = self.contrast_maps[layer - 1]
            (z_u, z_i), (g_u, g_i) = self.split(z_layers[layer]), self.split(g_layers[layer])
            total = total + self._paper_side(z_u, g_u, w, users, keep_u)
            total = total + self._paper_side(z_i, g_i, w, items, keep_i)
        return total

    def _paper_side(
        self,
        z: torch.Tensor,
        g: torch.Tensor,
        w: torch.Tensor,
        ids: torch.Tensor,
        keep: torch.Tensor,
    ) -> torch.Tensor:
        mask = torch.rand(ids.shape[0], device=ids.device) > 0.5  # official 50% anchor dropout
        zb = unit_rows(F.embedding(ids, z))
        hb = unit_rows(F.embedding(ids, g)) @ w
        pos = torch.exp((zb * hb).sum(1) / self.temperature)
        logits = (zb @ hb.t() / self.temperature).masked_fill(~keep[None, :], float("-inf"))
        neg = torch.exp(logits).sum(1)
        loss = -torch.log(pos / (neg + 1e-8) + 1e-8)
        return (loss * (mask & keep)).sum()

    def reg_loss(
        self,
        batch: Batch,
        propagated: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        ego: tuple[torch.Tensor | Rows, torch.Tensor | Rows] | None = None,
    ) -> torch.Tensor:
        """``λ₂ Σ_θ ‖θ‖²_F`` over every parameter (official ``param.norm(2).square()``), plus
        the optional batch-row ``reg``."""
        out = self.reg_weight * sum(p.pow(2).sum() for p in self.parameters())
        if self.batch_reg is not None:
            out = out + super().reg_loss(batch, propagated, ego)
        return out
