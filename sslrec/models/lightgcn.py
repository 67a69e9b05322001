"""LightGCN (He et al., SIGIR 2020) over a fixed normalised adjacency, with LightGCN++'s encoder
options (Lee et al., RecSys 2024): ``D^-α A D^-β`` normalisation, L2-normalised layer inputs and
``γ``-weighted layer 0."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from sslrec.data.sampling import Batch
from sslrec.devices import host_paths
from sslrec.graph.adjacency import reweighted_adjacency
from sslrec.graph.layer_sum import layer_sum, layer_sum_views
from sslrec.graph.rows import Rows, worth_restricting
from sslrec.graph.spmm import symmetric_spmm, transposed_spmm
from sslrec.losses import BPRLoss, L2Reg, RankingLoss, Term
from sslrec.models.base import EmbeddingRecommender

#: LightGCN++'s ``+1e-12`` in ``x / (‖x‖ + ε)`` (code/model.py, ``computer``)
LAYER_NORM_EPS = 1e-12


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


def _additive_noise(
    perturb: Callable[[torch.Tensor], torch.Tensor] | None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """The ``add_noise(x, out)`` of an additive perturbation (``None`` for none)."""
    return None if perturb is None else perturb.add_noise  # type: ignore[attr-defined]


def layer_mean_weights(
    num_layers: int,
    include_layer0: bool = True,
    weights: Sequence[float] | None = None,
    gamma: float | None = None,
) -> torch.Tensor:
    """``[K+1]`` weights of layers ``0..K`` in the final representation.

    ``weights`` given explicitly win; ``gamma`` gives LightGCN++'s ``γ·E⁰ + (1 − γ)·mean(E¹..E^K)``;
    otherwise a uniform mean over layers ``0..K`` (``include_layer0``, LightGCN/SGL) or over
    ``1..K`` (SimGCL/XSimGCL).
    """
    if weights is not None and gamma is not None:
        raise ValueError("give layer_weights or gamma, not both")
    if weights is not None:
        if len(weights) != num_layers + 1:
            raise ValueError(f"layer_weights needs {num_layers + 1} values, got {len(weights)}")
        return torch.tensor(list(weights), dtype=torch.float32)
    if gamma is not None:
        if num_layers < 1:
            raise ValueError("gamma weighs layer 0 against the mean of layers 1..K: needs K >= 1")
        if not math.isfinite(gamma):
            raise ValueError(f"gamma must be finite, got {gamma}")
        # float64: the host floats models combine with are then exactly γ and (1 − γ)/K
        return torch.tensor(
            [gamma] + [(1.0 - gamma) / num_layers] * num_layers, dtype=torch.float64
        )
    if num_layers == 0 and not include_layer0:
        raise ValueError("num_layers=0 needs include_layer0=true")
    w = torch.full((num_layers + 1,), 1.0)
    if not include_layer0:
        w[0] = 0.0
    return w / w.sum()


def normalize_rows(x: torch.Tensor, eps: float = LAYER_NORM_EPS) -> torch.Tensor:
    """``x / (‖x‖₂ + ε)`` row by row (``[N, d]``), LightGCN++'s layer-input normalisation."""
    return x / (torch.linalg.vector_norm(x, dim=-1, keepdim=True) + eps)


class LightGCN(EmbeddingRecommender):
    """LightGCN: ``E^(k+1) = Â E^(k)``, final ``E = Σ_k w_k E^(k)``.

    With the LightGCN++ options: ``Â = D^-α A D^-β`` (``α`` on the receiving node's degree),
    ``E^(k+1) = Â (E^(k) / ‖E^(k)‖)`` row-wise, and ``E = γ E^(0) + (1 − γ) mean(E^(1..K))``
    with the raw ``E^(0)``. The defaults (``1/2, 1/2``, no normalisation, ``γ`` unset) are
    LightGCN, bit for bit; ``model=lightgcnpp`` sets the paper's values. SimGCL, XSimGCL and NCL
    inherit the options.

    Args:
        n_users, n_items, embedding_dim, loss, reg: see :class:`EmbeddingRecommender`.
        adjacency: ``[U+I, U+I]`` symmetric normalised adjacency (sparse CSR); with
            ``(norm_alpha, norm_beta) ≠ (1/2, 1/2)`` only its sparsity pattern is used.
        num_layers: ``K``.
        include_layer0: whether the mean includes the ego embeddings ``E^(0)``.
        layer_weights: explicit ``[K+1]`` weights (overrides ``include_layer0``).
        norm_alpha: ``α``, the exponent on the receiving (row) node's degree (LightGCN++: 0.6).
        norm_beta: ``β``, the exponent on the source (column) node's degree (LightGCN++: −0.1).
            With ``α ≠ β``, ``Â`` is not symmetric: its transpose ``D^-β A D^-α`` is built once
            for the backward pass.
        layer_norm: L2-normalise every layer's input rows, ``E^(0)`` included (LightGCN++).
        gamma: ``γ``; ``None`` keeps the layer mean of ``include_layer0``/``layer_weights``.
        init_std: ``None``: Xavier-uniform embeddings (official LightGCN, SGL, SELFRec); a float:
            ``N(0, init_std²)`` (LightGCN-PyTorch and LightGCN++'s ``code/``: 0.1).
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
        norm_alpha: float = 0.5,
        norm_beta: float = 0.5,
        layer_norm: bool = False,
        gamma: float | None = None,
        init_std: float | None = None,
        loss: RankingLoss = BPRLoss(),
        reg: L2Reg = L2Reg(),
    ) -> None:
        super().__init__(n_users, n_items, embedding_dim, loss, reg)
        if not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"model.num_layers must be an integer >= 0, got {num_layers!r}")
        if init_std is not None:
            if not init_std > 0:
                raise ValueError(f"model.init_std must be > 0 or null, got {init_std}")
            nn.init.normal_(self.user_embedding.weight, std=init_std)
            nn.init.normal_(self.item_embedding.weight, std=init_std)
        self.num_layers = num_layers
        weights = layer_mean_weights(num_layers, include_layer0, layer_weights, gamma)
        self.register_buffer("weights", weights, persistent=False)
        self.host_weights = weights.tolist()  # floats on the host: combining never syncs a GPU
        self.norm_alpha, self.norm_beta = float(norm_alpha), float(norm_beta)
        self.layer_norm = layer_norm
        self.gamma = gamma
        #: whether the training graph is not LightGCN's D^-1/2 A D^-1/2
        self.reweighted = (self.norm_alpha, self.norm_beta) != (0.5, 0.5)
        self.adjacency_t: torch.Tensor | None = None  # Âᵀ, only where Â is not symmetric
        if self.reweighted:
            pattern = adjacency
            if pattern.layout != torch.sparse_csr:
                pattern = pattern.to_sparse_csr()
            adjacency = reweighted_adjacency(pattern, self.norm_alpha, self.norm_beta)
            if self.norm_alpha != self.norm_beta:
                self.adjacency_t = reweighted_adjacency(pattern, self.norm_beta, self.norm_alpha)
        self.adjacency = adjacency

    def _apply(self, fn, recurse=True):  # keep the sparse adjacency on the module's device
        super()._apply(fn, recurse)
        self.adjacency = fn(self.adjacency)
        if self.adjacency_t is not None:
            self.adjacency_t = fn(self.adjacency_t)
        return self

    def propagate_once(
        self, x: torch.Tensor, adjacency: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One layer ``Â x`` (``x`` ``[N, d]`` or ``[N, V·d]``, already normalised if asked)
        over ``adjacency`` (``None``: the training graph, with its transpose for the backward
        where it is not symmetric)."""
        if adjacency is not None:
            return symmetric_spmm(adjacency, x)
        if self.adjacency_t is not None:
            return transposed_spmm(self.adjacency, self.adjacency_t, x)
        return symmetric_spmm(self.adjacency, x)

    def layer_input(self, x: torch.Tensor, views: int = 1) -> torch.Tensor:
        """What the next layer propagates: ``x`` itself, or with ``layer_norm`` its rows
        L2-normalised (per view's ``d`` columns when ``views`` are side by side)."""
        if not self.layer_norm:
            return x
        if views == 1:
            return normalize_rows(x)
        n = x.shape[0]
        return normalize_rows(x.view(n, views, self.embedding_dim)).view(n, -1)

    def _refuse_explicit_graph(self, adjacency: object) -> None:
        """Explicit graphs (SGL's views) are ``D^-1/2 A D^-1/2``: refused when ``norm_alpha`` or
        ``norm_beta`` reweight the training graph, which would mix two normalisations."""
        if adjacency is not None and self.reweighted:
            raise ValueError(
                "norm_alpha/norm_beta reweight the training graph only; explicit adjacencies "
                "(SGL's augmented views) are D^-1/2 A D^-1/2. Use norm_alpha=norm_beta=0.5 here."
            )

    def layers(
        self,
        adjacency: torch.Tensor | Sequence[torch.Tensor] | None = None,
        perturb: Callable[[torch.Tensor], torch.Tensor] | None = None,
        depth: int | None = None,
    ) -> list[torch.Tensor]:
        """``[E^(0), ..., E^(K)]``, each ``[U+I, d]``.

        Args:
            adjacency: one ``[U+I, U+I]`` symmetric matrix for every layer, or ``K`` matrices
                (layer ``k`` uses the ``k``-th); ``None`` uses the training graph. Explicit
                graphs (SGL's views) are ``D^-1/2 A D^-1/2``: refused with ``norm_alpha`` or
                ``norm_beta`` set, which would mix two normalisations.
            perturb: applied to each layer's output before the next layer propagates it.
            depth: propagations over the training graph (default ``K``; NCL needs
                ``max(K, 2·hyper_layers)``).
        """
        self._refuse_explicit_graph(adjacency)
        if isinstance(adjacency, Sequence):
            adjs: Sequence[torch.Tensor | None] = adjacency
        else:
            adjs = [adjacency] * (self.num_layers if depth is None else depth)
        x = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        out = [x]
        for adj in adjs:
            x = self.propagate_once(self.layer_input(x), adj)
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
            wide = self.propagate_once(self.layer_input(x, views=len(perturbs)))
            parts = wide.split(self.embedding_dim, dim=1)
            parts = [
                part if p is None else p(part) for p, part in zip(perturbs, parts, strict=True)
            ]
            for out, part in zip(outs, parts, strict=True):
                out.append(part)
            x = torch.cat(parts, dim=1)
        return outs

    def encode_views(
        self,
        perturbs: Sequence[Callable[[torch.Tensor], torch.Tensor] | None],
        layout: str = "wide",
        rows: torch.Tensor | None = None,
    ) -> list[tuple[torch.Tensor | Rows, torch.Tensor | Rows]]:
        """The final representations ``(users [U, d], items [I, d])`` of ``V`` views over the
        training graph.

        Where the encoder is linear and every perturbation additive (as :meth:`encode`), one
        :func:`~sslrec.graph.layer_sum.layer_sum_views` node in ``layout``: ``wide``, one
        ``[N, V·d]`` sparse product per layer (the values and draws of
        ``layers_of_views(fused=True)``); ``shared``, the views one after another with their
        common first product taken once (the values and draws of separate :meth:`encode`
        calls, two products fewer per extra view). Otherwise autograd through
        :meth:`layers_of_views`, fused for ``wide``.

        ``rows`` as :meth:`encode`: every view's tables are then
        :class:`~sslrec.graph.rows.Rows`, computed at those rows in the ``shared`` layout
        (where every perturbation has ``noise_at_rows``), read from the whole tables otherwise.
        """
        at_rows = (
            rows is not None
            and layout == "shared"
            and all(getattr(p, "noise_at_rows", True) for p in perturbs)
        )
        if self.num_layers == 0 or not self._linear(perturbs):
            views = self.layers_of_views(perturbs, fused=layout == "wide")
            finals = [self.split(self.combine(v)) for v in views]
        else:
            adjs, adjs_t = self._training_graph(self.num_layers)
            with self._drawn_ahead(perturbs, len(adjs)):
                finals = layer_sum_views(
                    self.user_embedding.weight,
                    self.item_embedding.weight,
                    adjs,
                    list(self.host_weights),
                    [_additive_noise(p) for p in perturbs],
                    adjs_t,
                    layout,
                    rows if at_rows else None,
                )
            if at_rows:
                return [self._held(f, rows) for f in finals]
        return [self._rows_of(f, [], (), rows)[0] for f in finals]

    def _drawn_ahead(
        self, perturbs: Sequence[Callable[[torch.Tensor], torch.Tensor] | None], layers: int
    ) -> AbstractContextManager[None]:
        """A context in which the one augmenter of every noisy view of ``perturbs`` (``None``:
        clean) draws its ``layers`` noises per view of ``[U+I, d]`` ahead, where it has
        ``drawn_ahead`` (:meth:`~sslrec.augment.noise.UniformNoise.drawn_ahead`); else
        nothing."""
        noisy = [p for p in perturbs if p is not None]
        one = bool(noisy) and all(p is noisy[0] for p in noisy)
        if not one or not hasattr(noisy[0], "drawn_ahead"):
            return nullcontext()
        weight = self.user_embedding.weight
        shape = (self.n_users + self.n_items, weight.shape[1])
        return noisy[0].drawn_ahead(len(noisy) * layers, shape, weight.device, weight.dtype)  # type: ignore[attr-defined]

    def _linear(self, perturbs: Sequence[Callable[[torch.Tensor], torch.Tensor] | None]) -> bool:
        """Whether the encoder is linear in ``E^(0)`` under ``perturbs``: no ``layer_norm``,
        and each perturbation absent or additive (``perturb.additive``)."""
        return not self.layer_norm and all(
            p is None or getattr(p, "additive", False) for p in perturbs
        )

    def _training_graph(self, depth: int) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """``depth`` copies of the training graph, and of its transpose where it is not
        symmetric (``None`` where it is)."""
        adjs_t = None if self.adjacency_t is None else [self.adjacency_t] * depth
        return [self.adjacency] * depth, adjs_t

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[U+I, d]`` → ``([U, d], [I, d])``."""
        return x[: self.n_users], x[self.n_users :]

    def encode(
        self,
        adjacency: torch.Tensor | Sequence[torch.Tensor] | None = None,
        perturb: Callable[[torch.Tensor], torch.Tensor] | None = None,
        taps: Sequence[int] = (),
        depth: int | None = None,
        rows: torch.Tensor | None = None,
        ego: bool = False,
    ) -> tuple[
        tuple[torch.Tensor | Rows, torch.Tensor | Rows],
        list[tuple[torch.Tensor | Rows, torch.Tensor | Rows]],
    ]:
        """The final representation ``Σ_k w_k E^(k)`` as ``(users [U, d], items [I, d])``, and
        the layers ``taps`` likewise; arguments as :meth:`layers` (layers past ``K`` weigh 0).
        ``ego``: one more pair after the taps, the embedding tables for a term on the batch's
        ego rows (L2): with ``rows`` on the one-node encoder their rows, whose gradient joins
        the encoder's (``layer_sum``'s ``ego_rows``), else the tables themselves.

        One autograd node with a Horner backward (:func:`sslrec.graph.layer_sum.layer_sum`)
        where the encoder is linear: without ``layer_norm`` and with an additive ``perturb``
        (``perturb.additive``); otherwise autograd through :meth:`layers`. Both give the same
        values up to float rounding (tested).

        ``rows`` (``[M]`` sorted distinct node ids, :meth:`node_rows`) asks for those nodes
        only: each table is then :class:`~sslrec.graph.rows.Rows` (but a tap of layer 0, the
        embedding tables, whole). The linear encoder computes its last layer at those rows only
        (a ``perturb`` that can, ``noise_at_rows``, draws the whole layer's noise and adds its
        rows), with the same values and gradients (bit for bit at ``d = 64``:
        ``tests/test_rows.py``); otherwise the rows are read from the whole tables.
        """
        depth = self.num_layers if depth is None else depth
        tables = [(self.user_embedding.weight, self.item_embedding.weight)] if ego else []
        if not self._linear([perturb]):
            layers = self.layers(adjacency, perturb, depth)
            final = self.split(self.combine(layers[: self.num_layers + 1]))
            out = self._rows_of(final, [self.split(layers[k]) for k in taps], taps, rows)
            return out[0], out[1] + tables
        self._refuse_explicit_graph(adjacency)
        if adjacency is None:
            adjs, adjs_t = self._training_graph(depth)
        else:
            adjs = list(adjacency) if isinstance(adjacency, Sequence) else [adjacency] * depth
            adjs_t = None
        weights = list(self.host_weights) + [0.0] * (len(adjs) - self.num_layers)
        x_users, x_items = self.user_embedding.weight, self.item_embedding.weight
        noise = _additive_noise(perturb)
        whole = rows is None or not adjs or not getattr(perturb, "noise_at_rows", True)
        with self._drawn_ahead([perturb], len(adjs)):
            if whole:
                final, tapped = layer_sum(x_users, x_items, adjs, weights, adjs_t, taps, noise)
            else:
                final, tapped = layer_sum(
                    x_users, x_items, adjs, weights, adjs_t, taps, noise, rows, ego_rows=ego
                )
        if whole:
            out = self._rows_of(final, tapped, taps, rows)
            return out[0], out[1] + tables
        kinds = [*taps, -1] if ego else list(taps)  # -1: the ego rows
        return self._held(final, rows), [
            t if k == 0 else self._held(t, rows) for k, t in zip(kinds, tapped, strict=True)
        ]

    def _held(
        self, pair: tuple[torch.Tensor, torch.Tensor], rows: torch.Tensor
    ) -> tuple[Rows, Rows]:
        """``([M_u, d], [M_i, d])`` computed at ``rows`` (sorted: users first) as two
        :class:`~sslrec.graph.rows.Rows`."""
        m_users = pair[0].shape[0]
        return Rows(pair[0], rows[:m_users]), Rows(pair[1], rows[m_users:] - self.n_users)

    def _rows_of(
        self,
        final: tuple[torch.Tensor, torch.Tensor],
        tapped: list[tuple[torch.Tensor, torch.Tensor]],
        taps: Sequence[int],
        rows: torch.Tensor | None,
    ) -> tuple[
        tuple[torch.Tensor | Rows, torch.Tensor | Rows],
        list[tuple[torch.Tensor | Rows, torch.Tensor | Rows]],
    ]:
        """Whole tables as :meth:`encode` returns them for ``rows`` (``None``: unchanged)."""
        if rows is None:
            return final, tapped  # type: ignore[return-value]
        is_user = rows < self.n_users
        user_ids, item_ids = rows[is_user], rows[~is_user] - self.n_users

        def pick(pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[Rows, Rows]:
            return (
                Rows(pair[0].index_select(0, user_ids), user_ids),
                Rows(pair[1].index_select(0, item_ids), item_ids),
            )

        return pick(final), [t if k == 0 else pick(t) for k, t in zip(taps, tapped, strict=True)]

    def node_rows(self, users: torch.Tensor, *items: torch.Tensor) -> torch.Tensor | None:
        """``[M]`` the sorted distinct node ids of ``users`` and ``items`` (any shapes; item
        ``i`` is node ``U + i``), for :meth:`encode`'s ``rows``; ``None`` (every node) where
        that would not pay: off the CPU (``torch.unique``'s data-dependent size would wait for
        the device), without layers, or where the rows hold over half the training graph's
        edges (:func:`~sslrec.graph.rows.worth_restricting`; lastfm's batches of 2,048 hold 70%).
        """
        if not host_paths(users.device) or self.num_layers == 0:
            return None
        ids = [users.reshape(-1)] + [i.reshape(-1) + self.n_users for i in items]
        rows = torch.unique(torch.cat(ids))
        return rows if worth_restricting(self.adjacency, rows) else None

    def loss(self, batch: Batch) -> dict[str, Term]:
        """The ranking loss and L2 on one batch, the encoder run for the batch's nodes only
        (:meth:`encode` with ``rows``; the L2 term's ego rows through it, with ``ego``)."""
        rows = self.node_rows(batch.users, batch.pos, batch.neg)
        final, tables = self.encode(rows=rows, ego=self.reg.apply_to == "ego")
        return self.ranking_terms(*final, batch, tables[-1] if tables else None)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode()[0]

    def combine(self, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        """The final representation ``Σ_k w_k E^(k)`` of ``layers`` (each ``[U+I, d]``)."""
        return combine_layers(layers, self.host_weights)


class LightGCNpp(LightGCN):
    """LightGCN++ (Lee et al., RecSys 2024; geon0325/LightGCNpp): :class:`LightGCN` with its
    encoder options on by default.

    ``E^(k+1) = D^-α A D^-β · (E^(k) / ‖E^(k)‖)``, ``E = γ E^(0) + (1 − γ) mean(E^(1..K))``
    (``E^(0)`` raw), BPR (mean) and ``½ Σ ‖ego rows‖² / B`` L2 as LightGCN-PyTorch.
    ``model=lightgcn model.norm_alpha=0.6 ...`` is the same model.

    Args:
        norm_alpha, norm_beta: ``α = 0.6``, ``β = −0.1`` (the paper's and official defaults).
        layer_norm: ``True``.
        gamma: ``γ``: 0, chosen on lastfm's validation split (seed 1: Recall@20 0.2859 against
            0.2765 at the official default 0.2; ``docs/zoo/lightgcnpp.md``); run.sh and the
            README disagree per dataset, and ``+experiment=lightgcnpp_*`` set theirs.
        num_layers: ``K`` (official ``code/parse.py``: 2).
        **kwargs: the other :class:`LightGCN` arguments.
    """

    def __init__(
        self,
        norm_alpha: float = 0.6,
        norm_beta: float = -0.1,
        layer_norm: bool = True,
        gamma: float | None = 0.0,
        num_layers: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            norm_alpha=norm_alpha,
            norm_beta=norm_beta,
            layer_norm=layer_norm,
            gamma=gamma,
            num_layers=num_layers,
            **kwargs,
        )
