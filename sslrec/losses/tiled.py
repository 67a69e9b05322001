"""Fused, tiled ``logsumexp_j(a_i · c_j)`` over all ``N`` candidates without a ``[B, N]`` block.

InfoNCE with every node as a negative (official SGL) needs ``lse_i = log Σ_j exp(a_i · c_j)`` for
``B`` anchors against ``N`` ≈ 10⁴–10⁵ nodes. Materialising the ``[B, N]`` logits (553 MiB at
B = 2048, N = 70,839, fp32) and letting autograd keep it costs ~2.2 GiB of temporaries and several
passes over DRAM. Here the candidates are walked in column tiles that stay in cache (the
flash-attention trick): forward accumulates each row's sum of exponentials relative to a per-row
shift, backward recomputes each tile's logits from ``a`` and ``c`` instead of storing them. The
work is then four ``B·N·d`` GEMMs (one forward, three backward) and two exponentials per logit,
all on cached tiles, with every shift folded into the GEMMs.

Training on the CPU in fp32, fp64 or bf16 takes a shorter road (:func:`_eager_lse2_and_grads`):
the forward walks blocks of *rows*, each against all ``N`` candidates, and computes the gradients
for a uniform upstream gradient (a summed or averaged loss; or one proportional to row weights
the caller gives, for a loss over each distinct anchor once weighted by its count) while each
block's exponentials are at hand: three GEMMs and one exponential per logit instead of four and
two. The backward then only scales them; another upstream gradient falls back to the recomputing
backward.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from sslrec.devices import host_paths
from sslrec.gemm import cpu_gemm_backend, onednn_linear, onednn_products

# Default tile: as many columns as fit a byte budget of logits. Measured with
# experiments/bench_infonce.py and interleaved A/B runs (forward + backward, B = 2048, N = 70,839,
# d = 64, fp32) on the project's 2-core AMD EPYC (AVX2 FMA, no AVX-512/AMX; 1 MiB L2 per core,
# 32 MiB shared L3), a CPU shared with other jobs throughout:
# - 1 thread: 64, 128 and 256 columns tie (the time is ~85% GEMM at MKL's peak); 512-4096 are
#   15-35% slower, 8192 ~1.6x. At B = 512 the knee moves to 1024-2048 columns: it is the byte size
#   of the [B, t] tile (written by the GEMM, re-read by the exp2 and sum passes), ~2 MiB.
# - 2 threads: every GEMM and elementwise pass is an OpenMP parallel region ending in a barrier,
#   and on an oversubscribed CPU each barrier can wait a scheduler slice for the descheduled
#   thread: 256 columns (~1,900 regions per step) ran 1.5-2.5x *slower* than the naive block,
#   1024 1.3x, 2048 0.7-0.9x and 4096 0.6-0.75x of it. A quiet 2-core run was not available;
#   32 MiB (4096 columns) costs ~1.2x the best tile on one thread and is the safest when shared.
# - GPUs: not measured here; kernel launches want large tiles, the memory saving stays large.
# Tiling the B rows as well measured no faster (grad_c then needs a read-modify-write per block).
# Re-measured 2026-12-06 on the project's CPU as it is now (Intel Xeon with AVX-512, 2 MiB L2
# per core, quiet; two runs each, experiments/results/speed_2026-12-06_pass4): every tile from
# 128 to 4096 columns took 0.63-0.81 s at 1 thread, from 256 to 8192 0.36-0.46 s at 2, and no
# tile led in both runs: the four GEMMs run near the fp32 peak whatever the tile. The budgets
# above stand.
_TILE_BYTES_ONE_THREAD = 2 << 20
_TILE_BYTES_THREADS = 32 << 20
_TILE_BYTES_ACCELERATOR = 64 << 20
_MIN_DEFAULT_TILE = 64


def default_tile(n_rows: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> int:
    """Columns per tile so that a ``[n_rows, tile]`` block of ``dtype`` fits the byte budget.

    256 for ``n_rows = 2048`` fp32 on one CPU thread, 4096 with several threads, 8192 on GPUs.
    """
    if not host_paths(device):
        budget = _TILE_BYTES_ACCELERATOR
    elif torch.get_num_threads() > 1:
        budget = _TILE_BYTES_THREADS
    else:
        budget = _TILE_BYTES_ONE_THREAD
    itemsize = torch.empty((), dtype=dtype).element_size()
    return max(_MIN_DEFAULT_TILE, budget // max(1, n_rows * itemsize))


# Exponentials in base 2: with the log2(e) folded into the [B, d] anchors, exp(x) = exp2(x·log2 e)
# and torch's vectorised exp2 is ~1.5x faster than exp on this CPU (the exp is ~25% of the time).
_LOG2E = 1.0 / math.log(2.0)


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The running max/sum dtype: at least fp32, so bf16/fp16 inputs keep a precise sum."""
    return torch.promote_types(dtype, torch.float32)


def _tile_view(buf: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A contiguous ``[rows, cols]`` view at the front of ``buf`` (the last tile is narrower)."""
    return buf.view(-1)[: rows * cols].view(rows, cols)


def _with_column(x: torch.Tensor, col: torch.Tensor | float) -> torch.Tensor:
    """``[M, d] -> [M, d + 1]`` with ``col`` appended: ``[x, s] · [y, 1] = x · y + s``.

    Folding a per-row shift into the GEMM this way saves a pass and a parallel region per tile
    (under a shared CPU each parallel region can wait a scheduler slice for its second thread).
    """
    out = torch.empty(x.shape[0], x.shape[1] + 1, dtype=x.dtype, device=x.device)
    out[:, :-1] = x
    out[:, -1] = col
    return out


def _sum_floor(n_cols: int, dtype: torch.dtype) -> float:
    """Smallest row sum of ``exp2(logit − shift)`` that the loose shift may leave.

    Each term below ``dtype``'s smallest normal (``tiny``) may be flushed: an absolute error of at
    most ``n_cols · tiny``, which is ``≤ eps`` relative to any sum ``≥ n_cols · tiny / eps``.
    """
    info = torch.finfo(dtype)
    return n_cols * info.tiny / info.eps


def _online_lse2(a2: torch.Tensor, c: torch.Tensor, tile: int) -> torch.Tensor:
    """``log2 Σ_j exp2(a2_i · c_j)`` ([B], acc dtype) with a running max: exact for any logits."""
    acc = _acc_dtype(a2.dtype)
    n_rows, n_cols = a2.shape[0], c.shape[0]
    run_max = torch.full((n_rows,), float("-inf"), dtype=acc, device=a2.device)
    run_sum = torch.zeros(n_rows, dtype=acc, device=a2.device)
    buf = torch.empty(n_rows * min(tile, n_cols), dtype=a2.dtype, device=a2.device)
    for j in range(0, n_cols, tile):
        c_tile = c[j : j + tile]
        logits = torch.mm(a2, c_tile.t(), out=_tile_view(buf, n_rows, c_tile.shape[0]))
        new_max = torch.maximum(run_max, logits.amax(dim=1).to(acc))
        # A row whose max is still ±inf has no finite scale: shift it by 0 so that inf - inf
        # never makes a NaN here; such rows are fixed up after the loop.
        shift = torch.where(torch.isinf(new_max), 0.0, new_max)
        run_sum.mul_(torch.exp2(run_max - shift))
        logits.sub_(shift.to(a2.dtype)[:, None]).exp2_()  # in place on the cached tile
        run_sum.add_(logits.sum(dim=1, dtype=acc))
        run_max = new_max
    # As torch.logsumexp: +inf if any logit is +inf, -inf if all are -inf.
    return torch.where(torch.isinf(run_max), run_max, run_max + run_sum.log2())


def _row_bound(a2: torch.Tensor, c: torch.Tensor, acc: torch.dtype) -> torch.Tensor:
    """``[B]`` ``|a2_i| · max_j |c_j| ≥ a2_i · c_j`` (Cauchy–Schwarz), in ``acc``."""
    bound = torch.linalg.vector_norm(a2, dim=1, dtype=acc)
    return bound * torch.linalg.vector_norm(c, dim=1, dtype=acc).max()


def _bounded_lse2(a2: torch.Tensor, c_aug: torch.Tensor, tile: int) -> torch.Tensor:
    """``log2 Σ_j exp2(a2_i · c_j)`` ([B], acc dtype), shifting each row by a fixed upper bound.

    ``c_aug`` is ``[N, d + 1]``: the candidates ``c`` with a column of ones.

    Cauchy–Schwarz gives ``a2_i · c_j ≤ |a2_i| · max_j |c_j| =: s_i`` before any tile is seen,
    so each tile is one GEMM with ``−s_i`` folded in (``exp2 ≤ 1``: no overflow), one exp2 and
    one row sum: no running max, no rescaling. For InfoNCE (``|c_j| = 1``, ``|a_i| = 1/τ``) the
    bound is within ``2/τ`` of the true max. Rows where it is too loose (the sum underflows below
    :func:`_sum_floor`) or not finite are recomputed exactly with :func:`_online_lse2`.
    """
    acc = _acc_dtype(a2.dtype)
    c = c_aug[:, :-1]
    n_rows, n_cols = a2.shape[0], c.shape[0]
    # the GEMM sees this rounding of the shift: undo exactly the same
    neg_shift = (-_row_bound(a2, c, acc)).to(a2.dtype)
    a_aug = _with_column(a2, neg_shift)
    run_sum = torch.zeros(n_rows, dtype=acc, device=a2.device)
    buf = torch.empty(n_rows * min(tile, n_cols), dtype=a2.dtype, device=a2.device)
    for j in range(0, n_cols, tile):
        c_tile = c_aug[j : j + tile]
        p = torch.mm(a_aug, c_tile.t(), out=_tile_view(buf, n_rows, c_tile.shape[0]))
        run_sum.add_(p.exp2_().sum(dim=1, dtype=acc))
    lse2 = run_sum.log2() - neg_shift.to(acc)
    redo = ~(run_sum >= _sum_floor(n_cols, a2.dtype)) | ~torch.isfinite(lse2)
    if bool(redo.any()):
        rows = redo.nonzero().squeeze(1)
        lse2[rows] = _online_lse2(a2[rows], c, tile)
    return lse2


# Row blocks of the eager path: a [rows, N] block of exponentials is written by one GEMM, exp2'd
# in place and read by two more, so it should stay in the last-level cache, while the [N, d]
# gradient of the candidates is read and written once per block, so blocks should not be thin.
# Measured with experiments/bench_infonce_paths.py (B = 2048 against N = 29,858 and 40,981,
# d = 64, fp32, forward + backward, interleaved with the recomputing path) on the project's
# 2-core Intel Xeon (AVX-512, 2 MiB L2 per core, a large shared L3), 2026-12-07: blocks of
# 8-16 MiB took 0.82-0.85 of the recomputing path's time at 1 thread (4 MiB 0.90); 24-48 MiB
# took 0.78-0.79 at 2 threads (8 MiB 0.94, 16 MiB 0.81).
# With oneDNN's GEMMs (sslrec.gemm; the project's 2-core AMD EPYC, Zen 4, 2026-12-07,
# `bench_infonce_paths.py --gemm onednn mkl --rows 0 96 128 192 --repeats 11`) 128 rows of
# 40,981 (21 MB) led at 1 and at 2 threads: 0.93 / 0.80 of the recomputing path's time, against
# 1.36 / 1.01 for MKL at the Intel budgets above. Re-swept after the fp32 path dropped the column
# of ones from its numerators (`--gemm onednn --rows 0 64 96 192 256`, two runs): 127 rows led or
# tied at both thread counts (0.67-0.71 / 0.88-0.94 of the recomputing path).
_ROWS_BYTES_ONE_THREAD = 8 << 20
_ROWS_BYTES_THREADS = 32 << 20
_ROWS_BYTES_ONEDNN = 20 << 20
_MIN_ROWS = 32


def default_rows(n_cols: int, dtype: torch.dtype) -> int:
    """Rows per block of the eager path so that a ``[rows, n_cols]`` block fits the byte budget
    (at least 32): for ``n_cols = 40,981`` fp32, 51 on one thread, 204 on several; 127 where
    the products go to oneDNN."""
    if dtype == torch.float32 and cpu_gemm_backend() == "onednn":
        budget = _ROWS_BYTES_ONEDNN
    elif torch.get_num_threads() == 1:
        budget = _ROWS_BYTES_ONE_THREAD
    else:
        budget = _ROWS_BYTES_THREADS
    itemsize = torch.empty((), dtype=dtype).element_size()
    return max(_MIN_ROWS, budget // max(1, n_cols * itemsize))


def _eager_ok(a: torch.Tensor, c: torch.Tensor) -> bool:
    """Whether the forward computes the gradients itself: on the CPU (where the uniformity check
    of the upstream gradient costs no device sync), in fp32, fp64 or bf16 (not fp16, whose
    range the Cauchy–Schwarz shift can leave)."""
    return host_paths(a.device) and a.dtype in (torch.float32, torch.float64, torch.bfloat16)


def _eager_lse2_and_grads(
    a: torch.Tensor,
    c_aug: torch.Tensor,
    rows: int,
    need_a: bool,
    need_c: bool,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None] | None:
    """``log2 Σ_j exp(a_i · c_j)`` ([B], acc dtype), ``∂/∂a`` ([B, d]) for an upstream gradient
    of 1 per row, and ``∂/∂c`` ([N, d]) for an upstream gradient of ``weights`` ([B]; ``None``:
    1 per row), in blocks of ``rows`` anchors against all ``N`` candidates; ``None`` if the
    inputs are not finite (the caller takes the tiled path).

    Per block ``P = exp2([a2, −s] · [c, 1]ᵀ)`` with the Cauchy–Schwarz shift ``s`` of
    :func:`_bounded_lse2` (one GEMM, one exp2); ``P · [c, 1]`` gives the softmax numerators of
    ``∂/∂a`` *and*, from the column of ones, the row sums ``S`` (a second GEMM); then
    ``∂/∂c += Pᵀ (a / S)`` (a third); oneDNN's fp32 path multiplies by ``c`` alone and sums
    ``S`` apart (:class:`_Products`). A block with a row whose sum underflows (the bound too
    loose) is redone with its rows' exact maxima. In bf16 the GEMMs accumulate in fp32 and
    round their outputs to bf16 (``S`` then to 2⁻⁹ relative, below the bf16 logits' own error of
    ``|logit| · 2⁻⁹``); ``∂/∂c`` is summed over blocks in fp32.
    """
    acc = _acc_dtype(a.dtype)
    c = c_aug[:, :-1]
    n_rows, n_cols = a.shape[0], c.shape[0]
    a2 = a * _LOG2E
    bound = _row_bound(a2, c, acc)
    if not bool(torch.isfinite(bound).all()):
        return None
    neg_shift = (-bound).to(a.dtype)
    a_aug = _with_column(a2, neg_shift)
    floor = _sum_floor(n_cols, a.dtype)
    lse2 = torch.empty(n_rows, dtype=acc)
    grad_a = torch.empty_like(a) if need_a else None
    rows = max(1, min(rows, n_rows))
    products = _Products(c_aug, rows, need_c)
    for r0 in range(0, n_rows, rows):
        r1 = min(n_rows, r0 + rows)
        p = products.logits(a_aug[r0:r1])
        p.exp2_()
        num, sums = products.numerators(p)  # [r, d] P c, [r] S in acc
        shift = neg_shift[r0:r1].to(acc)
        if not bool((sums >= floor).all()):  # exact maxima for this block
            torch.mm(a2[r0:r1], c.t(), out=p)
            top = p.amax(dim=1)
            p.sub_(top[:, None]).exp2_()
            num, sums = products.numerators(p)
            shift = -top.to(acc)
        lse2[r0:r1] = sums.log2() - shift
        inv = sums.reciprocal()[:, None]  # acc
        if grad_a is not None:
            torch.mul(num, inv, out=grad_a[r0:r1])
        if need_c:
            scale = inv if weights is None else inv * weights[r0:r1, None]
            products.add_candidate_grad(p, (a[r0:r1] * scale).to(a.dtype))
    return lse2, grad_a, products.candidate_grad()


class _Products:
    """The eager path's three GEMMs per block of anchors, on MKL or oneDNN
    (:mod:`sslrec.gemm`): logits ``[a, −s] · [c, 1]ᵀ``, numerators ``P · [c, 1]`` (whose last
    column is the row sums ``S``) and ``∂/∂c += Pᵀ · (a / S)``. MKL writes into buffers reused
    across blocks. oneDNN takes its weights contiguous and sums ``∂/∂c`` transposed, ``[d, N]``,
    its faster orientation; in fp32 it multiplies by ``cᵀ`` alone and sums ``S`` in a pass of its
    own: 64 output columns ran 1.2-1.9× faster than 65 on the AMD EPYC (in bf16 the pass would
    convert the block to fp32 and cost more than the column)."""

    def __init__(self, c_aug: torch.Tensor, rows: int, need_c: bool):
        n_cols, d = c_aug.shape[0], c_aug.shape[1] - 1
        self.c_aug = c_aug
        self.onednn = onednn_products(c_aug, rows * n_cols * (d + 1))
        self.sums_apart = self.onednn and c_aug.dtype == torch.float32
        self.grad_c = None
        acc = _acc_dtype(c_aug.dtype)
        if self.onednn:
            # [d, N] or [d + 1, N]
            self.c_aug_t = (c_aug[:, :-1] if self.sums_apart else c_aug).t().contiguous()
            if need_c:
                self.grad_c = torch.zeros(d, n_cols, dtype=acc)
        else:
            self.buf = torch.empty(rows * n_cols, dtype=c_aug.dtype)
            self.num = torch.empty(rows, d + 1, dtype=c_aug.dtype)
            if need_c:
                self.grad_c = torch.zeros(n_cols, d, dtype=acc)

    def logits(self, a_aug: torch.Tensor) -> torch.Tensor:
        """``[r, d + 1] → [r, N]``."""
        if self.onednn:
            return onednn_linear(a_aug, self.c_aug)
        out = _tile_view(self.buf, a_aug.shape[0], self.c_aug.shape[0])
        return torch.mm(a_aug, self.c_aug.t(), out=out)

    def numerators(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[r, N] → ([r, d] P c, [r] S)``, ``S`` in the accumulation dtype."""
        if self.sums_apart:
            return onednn_linear(p, self.c_aug_t), p.sum(dim=1)
        if self.onednn:
            block = onednn_linear(p, self.c_aug_t)
        else:
            block = torch.mm(p, self.c_aug, out=self.num[: p.shape[0]])
        return block[:, :-1], block[:, -1].to(_acc_dtype(p.dtype))

    def add_candidate_grad(self, p: torch.Tensor, scaled: torch.Tensor) -> None:
        """Add ``pᵀ · scaled`` (``[r, N]``, ``[r, d]``) to ``∂/∂c``."""
        if self.onednn:
            self.grad_c.add_(onednn_linear(scaled.t(), p.t()))
        elif self.grad_c.dtype != p.dtype:  # a bf16 product, summed in fp32
            self.grad_c.add_(torch.mm(p.t(), scaled))
        else:
            self.grad_c.addmm_(p.t(), scaled)

    def candidate_grad(self) -> torch.Tensor | None:
        """``∂/∂c`` ``[N, d]`` (``None`` if not asked for)."""
        if self.grad_c is None:
            return None
        grad = self.grad_c.t() if self.onednn else self.grad_c
        return grad.contiguous().to(self.c_aug.dtype)


def _common_scale(grad: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor | None:
    """The scalar ``g`` with ``grad = g · weights`` (``[B]`` each; ``None`` weights: all 1), or
    ``None`` if there is none: ``∂/∂c`` of the eager path then scales by ``g``.

    Without weights ``grad`` must be uniform, exactly. With weights, ``grad`` comes from a
    weighted sum (``Σ_i w_i lse_i · g``) through float multiplications, so it is accepted within
    8 machine epsilons of ``g · w_i`` row by row, ``g`` read at the largest ``|w_i|``: ``∂/∂c``
    then differs from the exact one by at most that much, below the GEMMs' own rounding.
    """
    if weights is None:
        return grad[0] if bool((grad == grad[0]).all()) else None
    k = int(weights.abs().argmax())
    if weights[k] == 0:
        return None
    g = grad[k] / weights[k]
    expected = g * weights
    tol = 8 * torch.finfo(grad.dtype).eps
    return g if bool(((grad - expected).abs() <= tol * expected.abs()).all()) else None


class _TiledLogSumExp(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        a: torch.Tensor,
        c: torch.Tensor,
        tile: int,
        rows: int,
        weights: torch.Tensor | None,
    ) -> torch.Tensor:
        # [c, 1] is built once and kept for backward (c is its view): one [N, d + 1] copy.
        c_aug = _with_column(c, 1.0)
        ctx.tile = tile
        ctx.eager = None
        ctx.weights = weights
        need_a, need_c = ctx.needs_input_grad[:2]
        found = None
        if rows > 0 and (need_a or need_c) and _eager_ok(a, c):
            found = _eager_lse2_and_grads(a, c_aug, rows, need_a, need_c, weights)
        if found is not None:
            lse2, grad_a, grad_c = found
            ctx.eager = (grad_a, grad_c)
        elif host_paths(a.device) and _sum_floor(c.shape[0], a.dtype) < 1e-6:
            # A fixed bound is only safe where a normal number spans the range (not fp16). Its
            # underflow check reads a flag back to the host: on an accelerator, where that sync
            # costs more than the extra max pass it saves, the running max is used instead.
            lse2 = _bounded_lse2(a * _LOG2E, c_aug, tile)  # log2 units: exp2(a2 · c) = exp(a · c)
        else:
            lse2 = _online_lse2(a * _LOG2E, c, tile)
        # lse2 is kept in the accumulation dtype: a bf16 copy would shift every gradient by ~1%.
        ctx.save_for_backward(a, c_aug, lse2)
        return (lse2 / _LOG2E).to(a.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        a, c_aug, lse2 = ctx.saved_tensors
        need_a, need_c = ctx.needs_input_grad[:2]
        if not (need_a or need_c):
            return None, None, None, None, None
        if ctx.eager is not None:
            eager_a, eager_c = ctx.eager
            # ∂/∂a scales row by row; ∂/∂c sums over rows, so only a gradient proportional to
            # the weights it was summed with (a summed or averaged loss) scales it: anything
            # else recomputes it
            grad_a = eager_a * grad.to(a.dtype)[:, None] if need_a else None
            if not need_c:
                grad_c = None
            elif grad.numel() == 0:
                grad_c = torch.zeros_like(eager_c)
            elif (scale := _common_scale(grad, ctx.weights)) is not None:
                grad_c = eager_c * scale.to(a.dtype)
            else:
                grad_c = _recomputed_grads(a, c_aug, lse2, grad, ctx.tile, False, True)[1]
            return grad_a, grad_c, None, None, None
        grad_a, grad_c = _recomputed_grads(a, c_aug, lse2, grad, ctx.tile, need_a, need_c)
        return grad_a, grad_c, None, None, None


def _recomputed_grads(
    a: torch.Tensor,
    c_aug: torch.Tensor,
    lse2: torch.Tensor,
    grad: torch.Tensor,
    tile: int,
    need_a: bool,
    need_c: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(∂/∂a [B, d], ∂/∂c [N, d])`` for the upstream ``grad`` ``[B]``, the logits recomputed
    tile by tile from ``a``, ``c_aug = [c, 1]`` and the forward's ``lse2`` (``None`` where not
    needed)."""
    c = c_aug[:, :-1]
    acc = _acc_dtype(a.dtype)
    n_rows, n_cols = a.shape[0], c.shape[0]
    grad_a = torch.zeros_like(a) if need_a else None
    grad_c = torch.empty(c.shape, dtype=c.dtype, device=c.device) if need_c else None
    # d lse_i / d logit_ij = softmax_ij = exp2(logit2_ij − lse2_i), recomputed per tile and
    # scaled by grad_i. With grad > 0 (sum/mean of the loss) the scale is folded into the
    # exponent and the whole shift into the GEMM: P = exp2([a2, log2 g − lse2] · [c, 1]).
    grad = grad.to(acc)
    fold = host_paths(a.device) and bool((grad > 0).all())  # no host sync elsewhere
    shift = lse2 - grad.log2() if fold else lse2
    a_aug = _with_column(a * _LOG2E, (-shift).to(a.dtype))
    grad_col = None if fold else grad.to(a.dtype)[:, None]
    buf = torch.empty(n_rows * min(tile, n_cols), dtype=a.dtype, device=a.device)
    for j in range(0, n_cols, tile):
        c_tile = c[j : j + tile]
        p = torch.mm(a_aug, c_aug[j : j + tile].t(), out=_tile_view(buf, n_rows, len(c_tile)))
        p.exp2_()  # [B, t]: grad_i · softmax_ij
        if grad_col is not None:
            p.mul_(grad_col)
        if grad_a is not None:
            grad_a.addmm_(p, c_tile)
        if grad_c is not None:
            torch.mm(p.t(), a, out=grad_c[j : j + tile])
    return grad_a, grad_c


def tiled_logsumexp(
    a: torch.Tensor,
    c: torch.Tensor,
    tile: int | None = None,
    rows: int | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``torch.logsumexp(a @ c.T, dim=1)`` without materialising the ``[B, N]`` logits.

    Forward walks ``c`` in tiles of ``tile`` rows, summing ``exp`` relative to a per-row upper
    bound of the logits (exact fallback to an online running max for rows where the bound is too
    loose, and for fp16); backward recomputes each tile's logits and writes ``grad_c`` tile by
    tile, so the extra memory is one ``[B, tile]`` block plus the gradients themselves. Both
    inputs get gradients (first order only). Works on any device and float dtype; the GEMMs and
    the exponentials run in the input dtype, the row sums and shifts in at least fp32.

    On the CPU, in fp32, fp64 or bf16 and with an input that needs a gradient, the forward instead
    walks ``a`` in blocks of ``rows`` anchors against all of ``c`` and computes both gradients for a
    uniform upstream gradient on the way (three GEMMs per logit instead of four, one exponential
    instead of two; 0.88 / 0.83 of SGL's loss + backward on gowalla at 1 / 2 threads,
    ``experiments/bench_ssl_head.py --model sgl --recompute``); the backward scales them, or
    recomputes ``grad_c`` tile by tile if the upstream gradient differs between rows. The extra
    memory is one ``[rows, N]`` block (8 MiB on one thread, 32 MiB on several) and the gradients.

    Args:
        a: ``[B, d]`` anchors (for InfoNCE: normalised anchor embeddings divided by ``τ``).
        c: ``[N, d]`` candidates (for InfoNCE: all normalised nodes of one kind), ``N ≥ 1``.
        tile: columns of the logits per tile (rows of ``c``); ``None``: :func:`default_tile`
            (for ``B = 2048`` fp32: 256 on one CPU thread, 4096 on several).
        rows: anchors per block when the forward computes the gradients (CPU, fp32/fp64/bf16, an
            input that needs a gradient); ``None``: :func:`default_rows`; ``0``: never (the
            backward recomputes them tile by tile, as on other devices).
        weights: ``[B]`` the rows' weights in the loss, up to a common factor (the loss is
            ``Σ_i w_i · lse_i`` plus terms without ``lse``): each distinct anchor once, weighted
            by its count, instead of repeated rows. The eager path then sums ``∂/∂c`` with
            them and the backward scales it when the upstream gradient is proportional to them
            (to float rounding: :func:`_common_scale`). They never change the values, and any
            other upstream gradient is still exact (recomputed). ``None``: all 1.

    Returns:
        ``[B]`` ``lse_i = log Σ_j exp(a_i · c_j)``, in the promoted dtype of ``a`` and ``c``.
    """
    if a.dim() != 2 or c.dim() != 2 or a.shape[1] != c.shape[1]:
        raise ValueError(f"expected a [B, d] and c [N, d], got {tuple(a.shape)}, {tuple(c.shape)}")
    if c.shape[0] == 0:
        raise ValueError("c must have at least one row")
    if not (a.is_floating_point() and c.is_floating_point()):
        raise TypeError(f"a and c must be floating point, got {a.dtype} and {c.dtype}")
    dtype = torch.promote_types(a.dtype, c.dtype)
    tile = default_tile(a.shape[0], dtype, a.device) if tile is None else int(tile)
    rows = default_rows(c.shape[0], dtype) if rows is None else int(rows)
    if tile < 1 or rows < 0:
        raise ValueError(f"tile must be positive and rows not negative, got {tile} and {rows}")
    if weights is not None:
        if weights.shape != (a.shape[0],):
            raise ValueError(f"weights must be [B] = [{a.shape[0]}], got {tuple(weights.shape)}")
        weights = weights.detach().to(_acc_dtype(dtype))
    if not torch.is_grad_enabled():  # no backward will come: computing gradients is waste
        rows = 0
    return _TiledLogSumExp.apply(
        a.to(dtype).contiguous(), c.to(dtype).contiguous(), tile, rows, weights
    )
