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

from collections.abc import Callable, Sequence

import torch

from sslrec.graph.spmm import spmm

Noise = Callable[[torch.Tensor], torch.Tensor]


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
        noise: Noise | None,
    ) -> tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.adjs_t, ctx.weights, ctx.taps = adjs_t, weights, taps
        n_users = x_users.shape[0]
        ctx.shape = (n_users, x_items.shape[0], x_users.shape[1])
        x = torch.cat([x_users, x_items])
        acc = x * weights[0] if weights[0] != 0 else None
        tapped = {0: x}
        for k, adj in enumerate(adjs, start=1):
            x = spmm(adj, x)
            if noise is not None:
                x.add_(noise(x))  # x is this product's fresh output
            if weights[k] != 0:
                acc = x * weights[k] if acc is None else acc.add_(x, alpha=weights[k])
            if k in taps:
                tapped[k] = x
        if acc is None:
            acc = torch.zeros_like(x)
        outs = [acc[:n_users], acc[n_users:]]
        for k in taps:
            outs += [tapped[k][:n_users], tapped[k][n_users:]]
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        depth = len(ctx.adjs_t)
        # c_k as (weight, [N, d] gradient) pairs, added into the running sum in place
        seeds: list[list[tuple[float, torch.Tensor]]] = [[] for _ in range(depth + 1)]
        final = _joined(grads[0], grads[1], ctx.shape)
        if final is not None:
            for k, w in enumerate(ctx.weights):
                if w != 0:
                    seeds[k].append((w, final))
        for j, k in enumerate(ctx.taps):
            tap = _joined(grads[2 + 2 * j], grads[3 + 2 * j], ctx.shape)
            if tap is not None:
                seeds[k].append((1.0, tap))
        y: torch.Tensor | None = None
        for k in range(depth, -1, -1):
            if y is not None:
                y = spmm(ctx.adjs_t[k], y)  # Â_{k+1}ᵀ: adjs_t[k] is layer k+1's transpose
            for w, g in seeds[k]:
                if y is None:
                    y = g * w if w != 1.0 else g.clone()
                else:
                    y.add_(g, alpha=w)
        if y is None:
            return (None,) * 7
        n_users = ctx.shape[0]
        return (y[:n_users], y[n_users:], None, None, None, None, None)


def _joined(
    g_users: torch.Tensor | None, g_items: torch.Tensor | None, shape: tuple[int, int, int]
) -> torch.Tensor | None:
    """``[U+I, d]`` from the users' and items' gradients (a missing part is zero);
    ``shape`` = ``(U, I, d)``."""
    if g_users is None and g_items is None:
        return None
    n_users, n_items, d = shape
    like = g_users if g_users is not None else g_items
    if g_users is None:
        g_users = like.new_zeros(n_users, d)
    if g_items is None:
        g_items = like.new_zeros(n_items, d)
    return torch.cat([g_users, g_items])


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
        noise: ``[N, d] → [N, d]``, added to each layer's output before the next layer
            propagates it (SimGCL's noise); the backward takes its gradient as zero.

    Returns:
        ``((users [U, d], items [I, d]), [(tap users, tap items), ...])``.
    """
    if len(weights) != len(adjs) + 1:
        raise ValueError(f"{len(adjs)} layers need {len(adjs) + 1} weights, got {len(weights)}")
    if any(not 0 <= k <= len(adjs) for k in taps):
        raise ValueError(f"taps must be layers 0..{len(adjs)}, got {list(taps)}")
    out = _LayerSum.apply(
        x_users,
        x_items,
        list(adjs),
        list(adjs if adjs_t is None else adjs_t),
        [float(w) for w in weights],
        list(taps),
        noise,
    )
    final = (out[0], out[1])
    tapped = [(out[2 + 2 * j], out[3 + 2 * j]) for j in range(len(taps))]
    return final, tapped
