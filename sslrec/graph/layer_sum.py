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

from sslrec.graph.spmm import spmm

#: ``noise(x, out)`` writes ``x`` ``[N, d]`` plus its noise into ``out`` (which may be ``x``) and
#: returns it: :meth:`sslrec.augment.base.EmbeddingAugmenter.add_noise`
Noise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: per thread, two ``[N, V·d]`` CPU buffers for the layers that never leave a forward or
#: backward (neither returned nor tapped), written in turn: a fresh ``[N, d]`` per product costs a
#: page fault per 4 KiB on first touch, about a third of a gowalla product. Per thread, so that
#: models trained in threads of one process never write into each other's layers (a CPU
#: backward runs in the thread that called it, as its forward did).
_LOCAL = threading.local()


def _scratch(like: torch.Tensor, turn: int) -> torch.Tensor | None:
    """Buffer ``turn % 2`` shaped like ``like`` (CPU; ``None`` elsewhere: the device's caching
    allocator already reuses memory)."""
    if like.device.type != "cpu":
        return None
    key = (tuple(like.shape), like.dtype)
    cache: dict[tuple[tuple[int, ...], torch.dtype], list[torch.Tensor]]
    cache = _LOCAL.__dict__.setdefault("scratch", {})
    bufs = cache.get(key)
    if bufs is None:
        cache.clear()  # one shape at a time: the model being trained
        bufs = cache[key] = [torch.empty_like(like), torch.empty_like(like)]
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
    ) -> tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.adjs_t, ctx.weights, ctx.taps = adjs_t, weights, taps
        n_users, d, views = x_users.shape[0], x_users.shape[1], len(noises)
        ctx.shape = (n_users, x_items.shape[0], d)
        ctx.views = views
        x = torch.cat([x_users, x_items])
        if views > 1:  # the views side by side: one wide sparse product per layer
            x = x.repeat(1, views)
        acc = _add_scaled(None, x, weights[0]) if weights[0] != 0 else None
        tapped = {0: x}
        for k, adj in enumerate(adjs, start=1):
            # a layer that is tapped (returned) gets its own memory; the others a scratch buffer
            x = spmm(adj, x, out=None if k in taps else _scratch(x, k))
            for v, noise in enumerate(noises):
                if noise is not None:  # x is this product's fresh output
                    part = x[:, v * d : (v + 1) * d] if views > 1 else x
                    noise(part, part)
            if weights[k] != 0:
                acc = _add_scaled(acc, x, weights[k])
            if k in taps:
                tapped[k] = x
        if acc is None:
            acc = torch.zeros_like(x)
        outs: list[torch.Tensor] = []
        for block in [acc] + [tapped[k] for k in taps]:
            for v in range(views):
                part = block[:, v * d : (v + 1) * d] if views > 1 else block
                outs += [part[:n_users], part[n_users:]]
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        depth, views = len(ctx.adjs_t), ctx.views
        # c_k as (weight, [N, V·d] gradient) pairs, added into the running sum in place
        seeds: list[list[tuple[float, torch.Tensor]]] = [[] for _ in range(depth + 1)]
        final = _joined(grads[: 2 * views], ctx.shape)
        if final is not None:
            for k, w in enumerate(ctx.weights):
                if w != 0:
                    seeds[k].append((w, final))
        for j, k in enumerate(ctx.taps):
            start = 2 * views * (j + 1)
            tap = _joined(grads[start : start + 2 * views], ctx.shape)
            if tap is not None:
                seeds[k].append((1.0, tap))
        y: torch.Tensor | None = None
        for k in range(depth, -1, -1):
            if y is not None:  # Â_{k+1}ᵀ: adjs_t[k] is layer k+1's transpose
                # y at layer 0 is returned; the others are scratch (never the input's buffer)
                y = spmm(ctx.adjs_t[k], y, out=_scratch(y, k) if k > 0 else None)
            for w, g in seeds[k]:
                y = _add_scaled(y, g, w)
        if y is None:
            return (None,) * 7
        if views > 1:  # every view starts from the same E^(0): its gradient is their sum
            y = y.view(y.shape[0], views, -1).sum(1)
        n_users = ctx.shape[0]
        return (y[:n_users], y[n_users:], None, None, None, None, None)


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
    ) -> tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.adjs_t, ctx.weights = adjs_t, weights
        n_users = x_users.shape[0]
        ctx.shape = (n_users, x_items.shape[0], x_users.shape[1])
        x0 = torch.cat([x_users, x_items])
        first = spmm(adjs[0], x0)  # its own memory: every view starts from it
        outs: list[torch.Tensor] = []
        for noise in noises:  # view by view, as separate encoders draw
            if noise is None:
                x = first
            else:  # into a buffer: first itself stays clean for the next view
                buf = _scratch(first, 1)
                x = noise(first, torch.empty_like(first) if buf is None else buf)
            acc = _add_scaled(None, x0, weights[0]) if weights[0] != 0 else None
            for k in range(1, len(adjs) + 1):
                if k > 1:
                    x = spmm(adjs[k - 1], x, out=_scratch(x, k))
                    if noise is not None:
                        noise(x, x)
                if weights[k] != 0:
                    acc = _add_scaled(acc, x, weights[k])
            if acc is None:
                acc = torch.zeros_like(x0)
            outs += [acc[:n_users], acc[n_users:]]
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        depth, weights = len(ctx.adjs_t), ctx.weights
        first: torch.Tensor | None = None  # Σ_v ∂L/∂E^(1)_v
        zero: torch.Tensor | None = None  # Σ_v w_0 ∂L/∂E_v
        for v in range(len(grads) // 2):
            g = _joined(grads[2 * v : 2 * v + 2], ctx.shape)
            if g is None:
                continue
            y: torch.Tensor | None = None
            for k in range(depth, 0, -1):  # Horner down to layer 1, as _LayerSum
                if y is not None:  # Â_{k+1}ᵀ; the first view's layer 1 keeps its own memory
                    own = k == 1 and first is None
                    y = spmm(ctx.adjs_t[k], y, out=None if own else _scratch(y, k))
                if weights[k] != 0:
                    y = _add_scaled(y, g, weights[k])
            if y is not None:
                first = y if first is None else first.add_(y)
            if weights[0] != 0:
                zero = _add_scaled(zero, g, weights[0])
        y0 = None if first is None else spmm(ctx.adjs_t[0], first)
        if zero is not None:
            y0 = zero if y0 is None else y0.add_(zero)
        if y0 is None:
            return (None,) * 6
        n_users = ctx.shape[0]
        return (y0[:n_users], y0[n_users:], None, None, None, None)


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
    )


def layer_sum(
    x_users: torch.Tensor,
    x_items: torch.Tensor,
    adjs: Sequence[torch.Tensor],
    weights: Sequence[float],
    adjs_t: Sequence[torch.Tensor] | None = None,
    taps: Sequence[int] = (),
    noise: Noise | None = None,
) -> tuple[tuple[torch.Tensor, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
    """``E = Σ_k w_k E^(k)`` split into users and items, and the tapped layers ``E^(k)``.

    Args:
        x_users: ``[U, d]`` layer-0 user rows (the embedding table).
        x_items: ``[I, d]`` layer-0 item rows.
        adjs: ``K`` sparse ``[U+I, U+I]`` matrices, ``E^(k) = Â_k E^(k-1)``.
        weights: ``K + 1`` host floats ``w_0..w_K``.
        adjs_t: the transposes ``Â_kᵀ`` for the backward; ``None``: every ``Â_k`` is symmetric.
        taps: layers ``k`` (``0..K``) returned as well, with gradients.
        noise: ``noise(x, out)`` (:data:`Noise`), which adds SimGCL's noise to each layer's
            output before the next layer propagates it; the backward takes its gradient as zero.

    Returns:
        ``((users [U, d], items [I, d]), [(tap users, tap items), ...])``.
    """
    if any(not 0 <= k <= len(adjs) for k in taps):
        raise ValueError(f"taps must be layers 0..{len(adjs)}, got {list(taps)}")
    out = _apply(x_users, x_items, adjs, weights, adjs_t, taps, [noise])
    final = (out[0], out[1])
    tapped = [(out[2 + 2 * j], out[3 + 2 * j]) for j in range(len(taps))]
    return final, tapped


def layer_sum_views(
    x_users: torch.Tensor,
    x_items: torch.Tensor,
    adjs: Sequence[torch.Tensor],
    weights: Sequence[float],
    noises: Sequence[Noise | None],
    adjs_t: Sequence[torch.Tensor] | None = None,
    layout: str = "wide",
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

    Returns:
        ``[(users [U, d], items [I, d]), ...]``, one per view.
    """
    if not noises:
        raise ValueError("layer_sum_views needs at least one view")
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
        )
    else:
        raise ValueError(f"layout must be wide or shared, got {layout!r}")
    return [(out[2 * v], out[2 * v + 1]) for v in range(len(noises))]
