"""LightGCN's whole encoder as one autograd node: ``Σ_k w_k E^(k)``, ``E^(k) = Â_k E^(k-1)``.

The encoder is linear in ``E^(0)`` (noise added to each layer, SimGCL's, whose gradient is
zero, keeps it affine), so its backward needs none of the layers: for
``L(E, T_1, ...)`` with ``E = Σ_k w_k E^(k)`` and taps ``T_j = E^(k_j)``,

    ∂L/∂E^(0) = c_0 + Â_1ᵀ (c_1 + Â_2ᵀ (c_2 + ...)),   c_k = w_k ∂L/∂E + Σ_{k_j = k} ∂L/∂T_j,

Horner's scheme: one sparse product per layer, accumulated in place. Autograd through the
layers instead allocates and multiplies every layer's gradient separately, and the split of the
final ``[U+I, d]`` into users and items costs a zero-filled ``[U+I, d]`` per part in its
backward. Forward and backward each take ``K`` products and ``K + 1`` in-place passes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import torch

from sslrec.devices import host_paths
from sslrec.graph.rows import row_subset, transposed
from sslrec.graph.spmm import spmm

#: ``noise(x, out)`` writes ``x`` ``[N, d]`` plus its noise into ``out`` (which may be ``x``) and
#: returns it (:meth:`sslrec.augment.base.EmbeddingAugmenter.add_noise`); ``noise(x, out,
#: at=(rows, n))`` adds to ``x`` ``[M, d]`` the rows ``rows`` of a whole ``[n, d]`` layer's
#: noise (where the augmenter's ``noise_at_rows`` says it can)
Noise = Callable[..., torch.Tensor]

#: per thread, two ``[N, V·d]`` CPU buffers for the layers that never leave a forward or
#: backward (neither returned nor tapped), written in turn: a fresh ``[N, d]`` per product costs a
#: page fault per 4 KiB on first touch, about a third of a gowalla product. Per thread, so that
#: models trained in threads of one process never write into each other's layers (a CPU
#: backward runs in the thread that called it, as its forward did).
_LOCAL = threading.local()


def _scratch(
    like: torch.Tensor, turn: int, shape: tuple[int, ...] | None = None
) -> torch.Tensor | None:
    """Buffer ``turn % 2`` shaped like ``like`` (or ``shape``, ``like``'s dtype; CPU; ``None``
    elsewhere: the device's caching allocator already reuses memory)."""
    if not host_paths(like.device):
        return None
    key = (tuple(like.shape) if shape is None else shape, like.dtype)
    cache: dict[tuple[tuple[int, ...], torch.dtype], list[torch.Tensor]]
    cache = _LOCAL.__dict__.setdefault("scratch", {})
    bufs = cache.get(key)
    if bufs is None:
        cache.clear()  # one shape at a time: the model being trained
        bufs = cache[key] = [like.new_empty(key[0]), like.new_empty(key[0])]
    return bufs[turn % 2]


def _add_scaled(acc: torch.Tensor | None, x: torch.Tensor, w: float) -> torch.Tensor:
    """``acc + w·x`` in place, or a fresh ``w·x`` (never ``x`` itself) when ``acc`` is ``None``:
    the running sums of the forward's layers and of the backward's Horner scheme."""
    if acc is None:
        return x * w if w != 1.0 else x.clone()
    return acc.add_(x, alpha=w)


class _LayerSum(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        x_users: torch.Tensor,
        x_items: torch.Tensor,
        adjs: Sequence[torch.Tensor],
        adjs_t: Sequence[torch.Tensor],
        weights: Sequence[float],
        taps: Sequence[int],
        noises: Sequence[Noise | None],
        rows: torch.Tensor | None,
        ego_rows: bool,
    ) -> tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.adjs, ctx.adjs_t, ctx.weights, ctx.taps = adjs, adjs_t, weights, taps
        ctx.ego_rows = ego_rows
        n_users, d, views = x_users.shape[0], x_users.shape[1], len(noises)
        ctx.shape = (n_users, x_items.shape[0], d)
        ctx.views, ctx.rows = views, rows
        # what is returned: all rows, or those of `rows`; the last layer's product at them only
        out_users = _restrict(ctx, adjs, rows, d)
        depth = len(adjs)
        pick = _picker(rows, depth)

        # E^(0) is read by the first product and the sums only, unless it is returned: then it
        # can take the scratch buffer that layer 2 writes next (a fresh [N, d] page-faults)
        n = n_users + x_items.shape[0]
        own = views > 1 or 0 in taps
        x = torch.cat([x_users, x_items], out=None if own else _scratch(x_users, 0, (n, d)))
        if views > 1:  # the views side by side: one wide sparse product per layer
            x = x.repeat(1, views)
        # layer 0 at the rows, read before layer 2 overwrites a scratch E^(0)
        ego = pick(x, 0) if ego_rows or weights[0] != 0 else None
        acc = _add_scaled(None, ego, weights[0]) if weights[0] != 0 else None
        tapped = {0: x} if 0 in taps else {}  # layer 0 is returned whole: it costs nothing
        for k, adj in enumerate(adjs, start=1):
            if k == depth and ctx.last is not None:  # [M, d]
                x = spmm(ctx.last, x)
            else:
                # a layer that is returned gets its own memory; the others (and those whose
                # rows are copied out) a scratch buffer
                own = rows is None and k in taps
                x = spmm(adj, x, out=None if own else _scratch(x, k))
            for v, noise in enumerate(noises):
                if noise is None:
                    continue
                if k == depth and rows is not None:  # the whole layer's draws, at the rows
                    noise(x, x, at=(rows, n))
                else:  # x is this product's fresh output
                    part = x[:, v * d : (v + 1) * d] if views > 1 else x
                    noise(part, part)
            if weights[k] != 0:
                acc = _add_scaled(acc, pick(x, k), weights[k])
            if k in taps:
                tapped[k] = pick(x, k)
        if acc is None:
            acc = torch.zeros_like(pick(x, depth))
        blocks = [(-1, acc)] + [(k, tapped[k]) for k in taps]
        if ego_rows:  # after the taps
            blocks.append((-1, ego))
        outs: list[torch.Tensor] = []
        for k, block in blocks:
            split = n_users if k == 0 else out_users
            for v in range(views):
                part = block[:, v * d : (v + 1) * d] if views > 1 else block
                outs += [part[:split], part[split:]]
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        depth, views, rows = len(ctx.adjs_t), ctx.views, ctx.rows
        # c_k as (weight, gradient) pairs, added into the running sum in place; each gradient
        # is [N, V·d], or with `rows` [M, d] at those rows (zero elsewhere), but layer 0's tap
        seeds: list[list[tuple[float, torch.Tensor]]] = [[] for _ in range(depth + 1)]
        final = _joined(grads[: 2 * views], ctx.out_shape)
        if final is not None:
            for k, w in enumerate(ctx.weights):
                if w != 0:
                    seeds[k].append((w, final))
        for j, k in enumerate(ctx.taps):
            start = 2 * views * (j + 1)
            shape = ctx.shape if k == 0 else ctx.out_shape
            tap = _joined(grads[start : start + 2 * views], shape)
            if tap is not None:
                seeds[k].append((1.0, tap))
        if ctx.ego_rows:  # last: added after the final's share, as autograd would add it
            ego = _joined(grads[-2:], ctx.out_shape)
            if ego is not None:
                seeds[0].append((1.0, ego))
        n = ctx.shape[0] + ctx.shape[1]
        y: torch.Tensor | None = None
        compact = False  # whether y is [M, d] at `rows` (zero elsewhere)
        for k in range(depth, -1, -1):
            if y is not None:  # Â_{k+1}ᵀ: adjs_t[k] is layer k+1's transpose
                # y at layer 0 is returned; the others are scratch (never the input's buffer)
                out = _scratch(y, k, (n, y.shape[1])) if k > 0 else None
                if compact:  # (Â_{k+1}ᵀ)[:, rows] = (Â_{k+1}[rows, :])ᵀ
                    sub = ctx.last if k == depth - 1 else row_subset(ctx.adjs[k], rows)
                    y, compact = spmm(transposed(sub), y, out=out), False
                else:
                    y = spmm(ctx.adjs_t[k], y, out=out)
            for w, g in seeds[k]:
                at_rows = rows is not None and g.shape[0] != n
                if y is None:
                    y, compact = _add_scaled(None, g, w), at_rows
                elif compact == at_rows:
                    y = _add_scaled(y, g, w)
                elif at_rows:  # g is y's rows `rows`
                    _add_at(y, rows, g, w)
                else:  # y is rows `rows`, g whole (layer 0's tap)
                    y, compact = _add_scaled(_whole(y, rows, n), g, w), False
        if y is None:
            return (None,) * 9
        if compact:  # no product came after the seeds (no layers)
            y = _whole(y, rows, n)
        if views > 1:  # every view starts from the same E^(0): its gradient is their sum
            y = y.view(y.shape[0], views, -1).sum(1)
        n_users = ctx.shape[0]
        return (y[:n_users], y[n_users:], None, None, None, None, None, None, None)


def _whole(y: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """``[M, d]`` rows ``rows`` of an ``[n, d]`` that is zero elsewhere → that ``[n, d]``."""
    return y.new_zeros(n, y.shape[1]).index_copy_(0, rows, y)


def _add_at(y: torch.Tensor, rows: torch.Tensor, g: torch.Tensor, w: float = 1.0) -> None:
    """``y[rows] += w · g`` in place (``g`` ``[M, d]``): elsewhere ``y + w · 0`` is ``y``."""
    y.index_copy_(0, rows, y.index_select(0, rows).add_(g, alpha=w))


def _restrict(ctx, adjs: Sequence[torch.Tensor], rows: torch.Tensor | None, d: int) -> int:
    """Record on ``ctx`` what a forward at ``rows`` returns: ``out_shape`` ``(M_u, M_i, d)``
    (all rows without ``rows``) and ``last``, the last layer's rows of ``Â_K`` (``None``
    without). Returns ``M_u``, the users among them (``rows`` are sorted: users first)."""
    n_users, n_items = ctx.shape[0], ctx.shape[1]
    out_users = n_users if rows is None else int((rows < n_users).sum())
    ctx.out_shape = (out_users, n_items if rows is None else len(rows) - out_users, d)
    ctx.last = None if rows is None else row_subset(adjs[-1], rows)
    return out_users


def _picker(rows: torch.Tensor | None, depth: int) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """``pick(layer, k)``: layer ``k``'s returned rows (the last layer, computed at ``rows``
    already, whole)."""

    def pick(layer: torch.Tensor, k: int) -> torch.Tensor:
        return layer if rows is None or k == depth else layer.index_select(0, rows)

    return pick


class _SharedFirstLayer(torch.autograd.Function):
    """``V`` views of one ``E^(0)`` that differ only in additive noise, one after another.

    Every view's first layer is ``Â_1 E^(0)`` plus its own noise, so the product is taken once;
    and since the noise's gradient is zero, ``∂L/∂E^(0) = Σ_v c_0,v + Â_1ᵀ Σ_v ∂L/∂E^(1)_v``
    takes one ``Â_1ᵀ`` product for all views. ``V (K − 1) + 1`` products forward and backward,
    against ``V K`` for separate encoders (SimGCL, ``K = 3``: 7 against 9 each way).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        x_users: torch.Tensor,
        x_items: torch.Tensor,
        adjs: Sequence[torch.Tensor],
        adjs_t: Sequence[torch.Tensor],
        weights: Sequence[float],
        noises: Sequence[Noise | None],
        rows: torch.Tensor | None,
    ) -> tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.adjs, ctx.adjs_t, ctx.weights, ctx.rows = adjs, adjs_t, weights, rows
        n_users, d, depth = x_users.shape[0], x_users.shape[1], len(adjs)
        n = n_users + x_items.shape[0]
        ctx.shape = (n_users, x_items.shape[0], d)
        out_users = _restrict(ctx, adjs, rows, d)  # as _LayerSum
        pick = _picker(rows, depth)

        def product(k: int, x: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
            """Layer ``k``'s product: at the rows for the last layer (into fresh memory)."""
            if k == depth and ctx.last is not None:
                return spmm(ctx.last, x)
            return spmm(adjs[k - 1], x, out=out)

        def add_noise(noise: Noise, k: int, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
            if k == depth and rows is not None:  # the whole layer's draws, at the rows
                return noise(x, out, at=(rows, n))
            return noise(x, out)

        # E^(0) outlives the first product only where the sums read it (as _LayerSum's)
        x0 = torch.cat(
            [x_users, x_items], out=None if weights[0] != 0 else _scratch(x_users, 0, (n, d))
        )
        first = product(1, x0, None)  # its own memory: every view starts from it
        outs: list[torch.Tensor] = []
        for noise in noises:  # view by view, as separate encoders draw
            if noise is None:
                x = first
            else:  # into a buffer: first itself stays clean for the next view
                buf = _scratch(first, 1) if depth > 1 or rows is None else None
                x = add_noise(noise, 1, first, torch.empty_like(first) if buf is None else buf)
            acc = _add_scaled(None, pick(x0, 0), weights[0]) if weights[0] != 0 else None
            for k in range(1, depth + 1):
                if k > 1:
                    x = product(k, x, _scratch(x, k))
                    if noise is not None:
                        add_noise(noise, k, x, x)
                if weights[k] != 0:
                    acc = _add_scaled(acc, pick(x, k), weights[k])
            if acc is None:
                acc = torch.zeros_like(pick(x0, depth))
            outs += [acc[:out_users], acc[out_users:]]
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        depth, weights, rows = len(ctx.adjs_t), ctx.weights, ctx.rows
        n = ctx.shape[0] + ctx.shape[1]
        subs_t: dict[int, torch.Tensor] = {}  # (Â_{k+1}[rows, :])ᵀ, built once for all views

        def product_t(k: int, y: torch.Tensor, compact: bool, out: torch.Tensor | None):
            """``Â_{k+1}ᵀ y``; a ``compact`` y is the rows ``rows`` of a gradient zero
            elsewhere: (Â_{k+1}ᵀ)[:, rows] = (Â_{k+1}[rows, :])ᵀ."""
            if not compact:
                return spmm(ctx.adjs_t[k], y, out=out)
            if k not in subs_t:
                sub = ctx.last if k == depth - 1 else row_subset(ctx.adjs[k], rows)
                subs_t[k] = transposed(sub)
            return spmm(subs_t[k], y, out=out)

        first: torch.Tensor | None = None  # Σ_v ∂L/∂E^(1)_v
        first_compact = False
        zero: torch.Tensor | None = None  # Σ_v w_0 ∂L/∂E_v (at the rows, with `rows`)
        for v in range(len(grads) // 2):
            g = _joined(grads[2 * v : 2 * v + 2], ctx.out_shape)
            if g is None:
                continue
            y: torch.Tensor | None = None
            compact = False
            for k in range(depth, 0, -1):  # Horner down to layer 1, as _LayerSum
                if y is not None:  # Â_{k+1}ᵀ; the first view's layer 1 keeps its own memory
                    own = k == 1 and first is None
                    out = None if own else _scratch(y, k, (n, y.shape[1]))
                    y, compact = product_t(k, y, compact, out), False
                if weights[k] != 0:
                    if y is None:
                        y, compact = _add_scaled(None, g, weights[k]), rows is not None
                    elif compact or rows is None:
                        y = _add_scaled(y, g, weights[k])
                    else:  # g is y's rows `rows`
                        _add_at(y, rows, g, weights[k])
            if y is not None:
                if first is None:
                    first, first_compact = y, compact
                else:  # one layer (depth 1) at the rows: every view's y is [M, d]
                    first.add_(y)
            if weights[0] != 0:
                zero = _add_scaled(zero, g, weights[0])
        y0 = None if first is None else product_t(0, first, first_compact, None)
        if zero is not None:
            if y0 is None:
                y0 = zero if rows is None else _whole(zero, rows, n)
            elif rows is None:
                y0.add_(zero)
            else:
                _add_at(y0, rows, zero)
        if y0 is None:
            return (None,) * 7
        n_users = ctx.shape[0]
        return (y0[:n_users], y0[n_users:], None, None, None, None, None)


def _joined(
    parts: Sequence[torch.Tensor | None], shape: tuple[int, int, int]
) -> torch.Tensor | None:
    """``[U+I, V·d]`` from ``V`` views' ``(users, items)`` gradients, in that order (a missing
    part is zero); ``shape`` = ``(U, I, d)``."""
    present = [g for g in parts if g is not None]
    if not present:
        return None
    n_users, n_items, d = shape
    if len(parts) == 2:
        g_users, g_items = parts
        if g_users is None:
            g_users = present[0].new_zeros(n_users, d)
        if g_items is None:
            g_items = present[0].new_zeros(n_items, d)
        return torch.cat([g_users, g_items])
    views = len(parts) // 2
    out = present[0].new_empty(n_users + n_items, views * d)
    for v in range(views):
        for rows, g in (
            (slice(0, n_users), parts[2 * v]),
            (slice(n_users, None), parts[2 * v + 1]),
        ):
            block = out[rows, v * d : (v + 1) * d]
            if g is None:
                block.zero_()
            else:
                block.copy_(g)
    return out


def _apply(
    x_users: torch.Tensor,
    x_items: torch.Tensor,
    adjs: Sequence[torch.Tensor],
    weights: Sequence[float],
    adjs_t: Sequence[torch.Tensor] | None,
    taps: Sequence[int],
    noises: Sequence[Noise | None],
    rows: torch.Tensor | None = None,
    ego_rows: bool = False,
) -> tuple[torch.Tensor, ...]:
    if len(weights) != len(adjs) + 1:
        raise ValueError(f"{len(adjs)} layers need {len(adjs) + 1} weights, got {len(weights)}")
    return _LayerSum.apply(
        x_users,
        x_items,
        list(adjs),
        list(adjs if adjs_t is None else adjs_t),
        [float(w) for w in weights],
        list(taps),
        list(noises),
        rows,
        ego_rows,
    )


def layer_sum(
    x_users: torch.Tensor,
    x_items: torch.Tensor,
    adjs: Sequence[torch.Tensor],
    weights: Sequence[float],
    adjs_t: Sequence[torch.Tensor] | None = None,
    taps: Sequence[int] = (),
    noise: Noise | None = None,
    rows: torch.Tensor | None = None,
    ego_rows: bool = False,
) -> tuple[tuple[torch.Tensor, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
    """``E = Σ_k w_k E^(k)`` split into users and items, and the tapped layers ``E^(k)``, at
    every node or at ``rows`` only.

    With ``rows`` (a training step reads its batch's nodes only) the last layer is one product
    over those rows of ``Â_K`` (:func:`~sslrec.graph.rows.row_subset`), the backward's first
    one a product with their transpose, and the sums of layers run over the rows: on gowalla's
    batches ~16% of the edges, and values and gradients equal the full encoder's bit for bit.
    It pays where the rows hold at most about half of ``Â_K``'s entries
    (:func:`~sslrec.graph.rows.worth_restricting`).

    Args:
        x_users: ``[U, d]`` layer-0 user rows (the embedding table).
        x_items: ``[I, d]`` layer-0 item rows.
        adjs: ``K`` sparse ``[U+I, U+I]`` matrices, ``E^(k) = Â_k E^(k-1)``.
        weights: ``K + 1`` host floats ``w_0..w_K``.
        adjs_t: the transposes ``Â_kᵀ`` for the backward; ``None``: every ``Â_k`` is symmetric.
        taps: layers ``k`` (``0..K``) returned as well, with gradients.
        noise: ``noise(x, out)`` (:data:`Noise`), which adds SimGCL's noise to each layer's
            output before the next layer propagates it; the backward takes its gradient as zero.
            With ``rows``, it must take ``at`` (the last layer's rows).
        rows: ``[M]`` sorted, distinct int64 node ids (users ``0..U-1``, items ``U + i``) on
            ``adjs``' device, with at least one layer; ``None``: every node.
        ego_rows: with ``rows``, one more pair after the taps: layer 0 (the tables) at the
            rows, for a term on the batch's ego rows (L2): its gradient then joins the
            encoder's at those rows, last, instead of arriving as a zero-filled ``[U, d]`` or
            ``[I, d]`` per use.

    Returns:
        ``((users [U, d], items [I, d]), [(tap users, tap items), ...])``; with ``rows``, each
        ``[M_u, d]`` and ``[M_i, d]``: the rows of ``rows``' users and items, in its order
        (but a tap of layer 0, the embedding tables themselves, whole).
    """
    if any(not 0 <= k <= len(adjs) for k in taps):
        raise ValueError(f"taps must be layers 0..{len(adjs)}, got {list(taps)}")
    if rows is not None and not adjs:
        raise ValueError("rows needs at least one layer")
    if ego_rows and rows is None:
        raise ValueError("ego_rows needs rows")
    out = _apply(x_users, x_items, adjs, weights, adjs_t, taps, [noise], rows, ego_rows)
    final = (out[0], out[1])
    tapped = [(out[2 + 2 * j], out[3 + 2 * j]) for j in range(len(taps) + ego_rows)]
    return final, tapped


def layer_sum_views(
    x_users: torch.Tensor,
    x_items: torch.Tensor,
    adjs: Sequence[torch.Tensor],
    weights: Sequence[float],
    noises: Sequence[Noise | None],
    adjs_t: Sequence[torch.Tensor] | None = None,
    layout: str = "wide",
    rows: torch.Tensor | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`layer_sum` for ``V`` views of the same ``E^(0)`` that differ only in their noise
    (SimGCL's clean and two noisy encoders), as one autograd node.

    Layouts (the same values up to float rounding; tested):

    * ``wide``: the views side by side as one ``[U+I, V·d]`` matrix, one sparse product per
      layer instead of ``V``, which reads the graph once. Each layer's noises are drawn view by
      view (layer 1 of every view, then layer 2, ...).
    * ``shared``: the views one after another, ``[U+I, d]`` each, with the first product
      ``Â_1 E^(0)``, which precedes every view's noise, taken once, and one ``Â_1ᵀ`` product
      for all views in the backward: ``V (K − 1) + 1`` products each way instead of ``V K``.
      The noises are drawn as separate encoders draw them (view 1's layers, then view 2's),
      so the values equal theirs bit for bit.

    Args:
        x_users, x_items, adjs, weights, adjs_t: as :func:`layer_sum` (at least one layer).
        noises: ``V`` noises as ``noise`` of :func:`layer_sum` (``None``: a clean view),
            each given its view's ``[N, d]``.
        layout: ``wide`` or ``shared``.
        rows: as :func:`layer_sum`: every view at those nodes only (``shared`` layout only; each
            noise must take ``at``).

    Returns:
        ``[(users [U, d], items [I, d]), ...]``, one per view; with ``rows``, ``[M_u, d]`` and
        ``[M_i, d]`` each.
    """
    if not noises:
        raise ValueError("layer_sum_views needs at least one view")
    if rows is not None and layout != "shared":
        raise ValueError("rows need the shared layout")
    if layout == "wide":
        out = _apply(x_users, x_items, adjs, weights, adjs_t, (), noises)
    elif layout == "shared":
        if not adjs or len(weights) != len(adjs) + 1:
            raise ValueError(
                f"the shared layout needs at least one layer and one weight more than layers, "
                f"got {len(adjs)} layers and {len(weights)} weights"
            )
        out = _SharedFirstLayer.apply(
            x_users,
            x_items,
            list(adjs),
            list(adjs if adjs_t is None else adjs_t),
            [float(w) for w in weights],
            list(noises),
            rows,
        )
    else:
        raise ValueError(f"layout must be wide or shared, got {layout!r}")
    return [(out[2 * v], out[2 * v + 1]) for v in range(len(noises))]
