"""The tiled all-node logsumexp against ``torch.logsumexp(a @ c.T, 1)``: values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from sslrec import gemm
from sslrec.gemm import cpu_gemm
from sslrec.losses import tiled
from sslrec.losses.tiled import default_tile, tiled_logsumexp

LOG2E = 1 / math.log(2)

# (B, N, d, tile): tiles that divide N, that do not, tile = 1, tile > N, N = 1, B = 1.
SHAPES = [
    (6, 20, 5, 4),
    (6, 20, 5, 7),
    (6, 20, 5, 1),
    (6, 20, 5, 20),
    (6, 20, 5, 64),
    (5, 1, 3, 4),
    (1, 13, 4, 5),
    (1, 1, 2, 1),
    (9, 37, 8, None),
]


# The eager path's CPU GEMM libraries (sslrec.gemm): fp32 products go to either.
GEMMS = [
    "mkl",
    pytest.param(
        "onednn",
        marks=pytest.mark.skipif(not gemm._onednn_available(), reason="torch without oneDNN"),
    ),
]


def _use_gemm(monkeypatch, backend: str) -> None:
    """Send the eager path's products to ``backend``, whatever their size."""
    monkeypatch.setattr(gemm._LOCAL, "backend", backend, raising=False)
    monkeypatch.setattr(gemm, "ONEDNN_MIN_MACS", 0)


def _data(b: int, n: int, d: int, seed: int = 0, dtype=torch.float64, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, d, generator=g, dtype=dtype) * scale
    c = torch.randn(n, d, generator=g, dtype=dtype)
    return a, c


def _grads(fn, a: torch.Tensor, c: torch.Tensor, upstream: torch.Tensor):
    a = a.detach().clone().requires_grad_()
    c = c.detach().clone().requires_grad_()
    out = fn(a, c)
    ga, gc = torch.autograd.grad(out, (a, c), upstream)
    return out.detach(), ga, gc


def _naive(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(a @ c.t(), dim=1)


@pytest.mark.parametrize("eager", [True, False])
@pytest.mark.parametrize("b,n,d,tile", SHAPES)
def test_values_and_gradients_match_naive(monkeypatch, b, n, d, tile, eager):
    """Both CPU paths: gradients from the forward (eager) and recomputed tile by tile."""
    if not eager:
        monkeypatch.setattr(tiled, "_eager_ok", lambda a, c: False)
    a, c = _data(b, n, d, seed=b * 100 + n)
    upstream = torch.randn(b, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = _grads(lambda x, y: tiled_logsumexp(x, y, tile), a, c, upstream)
    ref = _grads(_naive, a, c, upstream)
    assert got[0].shape == (b,)
    for x, y in zip(got, ref, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("tile", [3, 8, 50])
def test_infonce_loss_with_duplicate_anchors(reduction, tile):
    """``lse − a·p`` as in SGL: anchor rows repeated, positives among the candidates."""
    base, c = _data(5, 23, 6, seed=3)
    rows = torch.tensor([0, 3, 3, 1, 4, 3, 0, 2])  # duplicate anchors, as SGL's batch users
    pos = torch.tensor([7, 2, 2, 0, 22, 2, 7, 11])

    def loss(lse_fn, base, c):
        a = base[rows]  # the same row of a repeated: gradients must add up in base
        terms = lse_fn(a, c) - (a * c[pos]).sum(-1)
        return terms.sum() if reduction == "sum" else terms.mean()

    results = []
    for fn in (lambda x, y: tiled_logsumexp(x, y, tile), _naive):
        b_ = base.clone().requires_grad_()
        c_ = c.clone().requires_grad_()
        value = loss(fn, b_, c_)
        value.backward()
        results.append((value.detach(), b_.grad, c_.grad))
    for x, y in zip(*results, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
    # every candidate is a negative, so every row of c gets a gradient
    assert results[0][2].abs().sum(1).min() > 0


@pytest.mark.parametrize("eager", [True, False])
@pytest.mark.parametrize("tile", [1, 3, 7, 100])
def test_gradcheck(monkeypatch, tile, eager):
    if not eager:
        monkeypatch.setattr(tiled, "_eager_ok", lambda a, c: False)
    a, c = _data(4, 7, 3, seed=5)
    assert torch.autograd.gradcheck(
        lambda x, y: tiled_logsumexp(x, y, tile),
        (a.requires_grad_(), c.requires_grad_()),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tile", [2, 16, 1000])
def test_large_logits_do_not_overflow(dtype, tile):
    """|a·c| up to ~1e3: exp overflows even float64 at ~709, the shifted sums must not."""
    a, c = _data(6, 40, 4, seed=7, dtype=dtype)
    a = a / a.norm(dim=1, keepdim=True) * 1e3
    c = c / c.norm(dim=1, keepdim=True)
    assert (a @ c.t()).abs().max() > 700
    a[0] = c[-1] * 1e3  # a row whose max sits in the last tile
    upstream = torch.ones(6, dtype=dtype)
    got = _grads(lambda x, y: tiled_logsumexp(x, y, tile), a, c, upstream)
    ref = _grads(_naive, a.double(), c.double(), upstream.double())
    for x, y in zip(got, ref, strict=True):
        assert torch.isfinite(x).all() and x.dtype == dtype
        if dtype == torch.float32:  # logits of 1e3 carry ~1e-4 absolute error in fp32
            torch.testing.assert_close(x.double(), y, rtol=2e-4, atol=2e-4 * y.abs().max())
        else:
            torch.testing.assert_close(x, y)


def test_loose_bound_rows_fall_back_to_exact(monkeypatch):
    """fp32 rows whose Cauchy–Schwarz bound is > ~126 (log2 units) above the true max would
    underflow every term: those rows, and only those, are recomputed with the running max."""
    redone = []
    online = tiled._online_lse2

    def spy(a2, c, tile):
        redone.append(a2.shape[0])
        return online(a2, c, tile)

    monkeypatch.setattr(tiled, "_online_lse2", spy)
    a, c = _data(6, 40, 4, seed=7, dtype=torch.float32)
    c = c / c.norm(dim=1, keepdim=True)
    a = a / a.norm(dim=1, keepdim=True) * 1e3
    a[0] = c[-1] * 1e3  # bound attained: no fallback
    a[1] = c[3] * 0.5  # small logits: no fallback
    # true max below the bound, in log2 units: 0, 0, 151, 62, 139, 83; fp32 sums of 40 terms
    # are trusted down to 2^-97.7 (_sum_floor), so rows 2 and 4 must be redone, the others not
    gap = (a.norm(dim=1) - (a @ c.t()).amax(1)) * LOG2E
    assert (gap > 100).tolist() == [False, False, True, False, True, False]
    assert not ((gap > 90) & (gap < 110)).any()
    got = tiled_logsumexp(a, c, 16)
    assert redone == [2]
    ref = _naive(a.double(), c.double())
    torch.testing.assert_close(got.double(), ref, rtol=1e-6, atol=2e-4)
    # float64 has the range for the same bound: no fallback at all
    redone.clear()
    torch.testing.assert_close(tiled_logsumexp(a.double(), c.double(), 16), ref)
    assert redone == []


def test_float16_uses_the_running_max(monkeypatch):
    """fp16's range is too narrow for a fixed bound: the online path handles every row."""
    monkeypatch.setattr(tiled, "_bounded_lse2", None)  # would raise if called
    a, c = _data(5, 50, 8, seed=15, dtype=torch.float32)
    got = tiled_logsumexp(a.half(), c.half(), 16)
    ref = _naive(a.half().double(), c.half().double())
    torch.testing.assert_close(got.double(), ref, rtol=1e-2, atol=1e-2)


def test_very_negative_logits_do_not_underflow():
    """All logits ≈ −1e3: every exp underflows to 0, the lse must stay ≈ −1e3, not −inf."""
    g = torch.Generator().manual_seed(8)
    u = torch.nn.functional.normalize(torch.randn(4, generator=g, dtype=torch.float64), dim=0)
    c = u + 0.1 * torch.randn(30, 4, generator=g, dtype=torch.float64)
    c = c / c.norm(dim=1, keepdim=True)  # all close to u
    a = -1e3 * torch.stack([u, u, 0.9 * u])
    a.requires_grad_()
    got = tiled_logsumexp(a, c, 4)
    ref = _naive(a, c)
    assert (ref < -800).all()
    torch.testing.assert_close(got, ref)
    (ga,) = torch.autograd.grad(got.sum(), a)
    (ra,) = torch.autograd.grad(ref.sum(), a)
    torch.testing.assert_close(ga, ra)


@pytest.mark.parametrize("a_grad,c_grad", [(True, False), (False, True)])
def test_needs_input_grad(a_grad, c_grad):
    a, c = _data(4, 9, 3, seed=9)
    a.requires_grad_(a_grad)
    c.requires_grad_(c_grad)
    tiled_logsumexp(a, c, 4).sum().backward()
    assert (a.grad is not None) == a_grad and (c.grad is not None) == c_grad
    ref_a, ref_c = _grads(_naive, a, c, torch.ones(4, dtype=a.dtype))[1:]
    torch.testing.assert_close(a.grad if a_grad else c.grad, ref_a if a_grad else ref_c)


def test_no_grad_and_float32():
    a, c = _data(7, 300, 16, seed=10, dtype=torch.float32)
    with torch.no_grad():
        got = tiled_logsumexp(a, c, 64)
    assert got.dtype == torch.float32 and not got.requires_grad
    torch.testing.assert_close(got, _naive(a.double(), c.double()).float(), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 3e-2), (torch.float16, 5e-3)])
def test_half_precision_inputs(dtype, tol):
    """Half inputs: as accurate as their GEMM and exp (the sums and saved lse stay fp32)."""
    a, c = _data(5, 200, 8, seed=11, dtype=torch.float32)
    a, c = a.to(dtype), c.to(dtype)
    upstream = torch.ones(5, dtype=dtype)
    got = _grads(lambda x, y: tiled_logsumexp(x, y, 32), a, c, upstream)
    ref = _grads(_naive, a.double(), c.double(), upstream.double())
    assert got[0].dtype == dtype
    for x, y in zip(got, ref, strict=True):
        assert ((x.double() - y).norm() / y.norm()).item() < tol


def test_mixed_dtypes_promote():
    a, c = _data(3, 10, 4, seed=12)
    got = tiled_logsumexp(a.float(), c, 4)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, _naive(a.float().double(), c))


def test_infinite_logits_follow_torch_logsumexp():
    """Logits that overflow to ±inf: +inf if any is +inf, −inf if all are −inf, as torch."""
    big = 1e200  # big * big overflows float64
    a = torch.tensor([[big, 0.0], [0.0, 1.0]], dtype=torch.float64)
    c = torch.tensor([[-big, 0.0], [big, 1.0], [0.0, 2.0]], dtype=torch.float64)
    # row 0: logits (-inf, +inf, 0) -> +inf; row 1: (0, 1, 2) finite
    got = tiled_logsumexp(a, c, 2)
    ref = _naive(a, c)
    assert got[0] == float("inf")
    torch.testing.assert_close(got, ref)
    got = tiled_logsumexp(a[:1], c[:1].expand(3, -1), 2)  # every logit -inf
    assert got.item() == float("-inf") == _naive(a[:1], c[:1]).item()


def test_default_tile(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert default_tile(2048, torch.float32) == 256
    assert default_tile(2048, torch.float64) == 128
    assert default_tile(1 << 20, torch.float32) == 64  # floor
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert default_tile(2048, torch.float32) == 4096
    assert default_tile(2048, torch.float32, "cuda") == 8192
    a, c = _data(4, 5, 3, seed=13)
    torch.testing.assert_close(tiled_logsumexp(a, c), _naive(a, c))


def test_invalid_arguments_raise():
    a, c = _data(3, 4, 2)
    with pytest.raises(ValueError):
        tiled_logsumexp(a, c[:, :1])
    with pytest.raises(ValueError):
        tiled_logsumexp(a[0], c)
    with pytest.raises(ValueError):
        tiled_logsumexp(a, c[:0])
    with pytest.raises(ValueError):
        tiled_logsumexp(a, c, tile=0)
    with pytest.raises(TypeError):
        tiled_logsumexp(a.long(), c.long())


def test_double_backward_is_refused():
    a, c = _data(3, 4, 2)
    a.requires_grad_()
    (g,) = torch.autograd.grad(tiled_logsumexp(a, c, 2).sum(), a, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()


def test_empty_batch():
    a = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    c = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    out = tiled_logsumexp(a, c, 2)
    out.sum().backward()
    assert out.shape == (0,) and a.grad.shape == (0, 3)
    assert torch.all(c.grad == 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_naive(dtype):
    a, c = _data(64, 1000, 16, seed=14, dtype=dtype)
    a, c = a.cuda(), c.cuda()
    upstream = torch.ones(64, dtype=dtype, device="cuda")
    got = _grads(lambda x, y: tiled_logsumexp(x, y, 96), a, c, upstream)
    ref = _grads(_naive, a, c, upstream)
    for x, y in zip(got, ref, strict=True):
        assert x.device.type == "cuda"
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)


# -- the eager path: the forward computes the gradients (CPU, fp32/fp64, inputs needing them) --


def _spy_eager(monkeypatch) -> list[int]:
    """Count the forwards that took the eager path."""
    calls = []
    eager = tiled._eager_lse2_and_grads

    def spy(*args):
        calls.append(1)
        return eager(*args)

    monkeypatch.setattr(tiled, "_eager_lse2_and_grads", spy)
    return calls


@pytest.mark.parametrize("rows", [1, 2, 3, 5, 100])
@pytest.mark.parametrize("upstream_kind", ["ones", "scaled", "random"])
def test_eager_path_matches_naive(monkeypatch, rows, upstream_kind):
    """Row blocks that divide B, that do not, one row, one block; a summed loss (ones), an
    averaged and weighted one (a uniform 0.37), and any other upstream gradient (∂/∂c then
    recomputed by the tiled backward)."""
    calls = _spy_eager(monkeypatch)
    a, c = _data(7, 23, 5, seed=rows)
    upstream = {
        "ones": torch.ones(7, dtype=torch.float64),
        "scaled": torch.full((7,), 0.37, dtype=torch.float64),
        "random": torch.randn(7, dtype=torch.float64, generator=torch.Generator().manual_seed(2)),
    }[upstream_kind]
    got = _grads(lambda x, y: tiled_logsumexp(x, y, 4, rows=rows), a, c, upstream)
    ref = _grads(_naive, a, c, upstream)
    assert calls == [1]
    for x, y in zip(got, ref, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gemm_backend", GEMMS)
@pytest.mark.parametrize("eager", [True, False])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_both_paths_on_an_sgl_loss_in_float32(monkeypatch, eager, reduction, gemm_backend):
    """SGL's loss shape in fp32 (normalised rows, τ = 0.2, duplicate anchors) on both paths and
    both GEMM libraries, against float64 autograd: the eager path is taken exactly when it
    should be."""
    _use_gemm(monkeypatch, gemm_backend)
    calls = _spy_eager(monkeypatch)
    if not eager:
        monkeypatch.setattr(tiled, "_eager_ok", lambda a, c: False)
    g = torch.Generator().manual_seed(21)
    base = torch.nn.functional.normalize(torch.randn(40, 16, generator=g), dim=1)
    c = torch.nn.functional.normalize(torch.randn(300, 16, generator=g), dim=1)
    ids = torch.randint(0, 40, (64,), generator=g)
    ids[1] = ids[0]

    def loss(fn, base, c):
        a = base[ids] / 0.2
        terms = fn(a, c) - (a * c[ids]).sum(-1)
        return terms.sum() if reduction == "sum" else terms.mean()

    results = []
    for fn, dtype in (
        (lambda x, y: tiled_logsumexp(x, y, 32, rows=10), torch.float32),
        (_naive, torch.float64),
    ):
        b_ = base.to(dtype).clone().requires_grad_()
        c_ = c.to(dtype).clone().requires_grad_()
        value = loss(fn, b_, c_)
        value.backward()
        results.append((value.detach().double(), b_.grad.double(), c_.grad.double()))
    assert calls == ([1] if eager else [])
    for x, y in zip(*results, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6 * y.abs().max().item())


@pytest.mark.parametrize("gemm_backend", GEMMS)
def test_eager_path_redoes_a_block_whose_bound_is_too_loose(monkeypatch, gemm_backend):
    """The rows of test_loose_bound_rows_fall_back_to_exact, with gradients: rows 2 and 4 would
    underflow to a zero sum under the Cauchy–Schwarz shift; their blocks take exact maxima."""
    _use_gemm(monkeypatch, gemm_backend)
    a, c = _data(6, 40, 4, seed=7, dtype=torch.float32)
    c = c / c.norm(dim=1, keepdim=True)
    a = a / a.norm(dim=1, keepdim=True) * 1e3
    a[0] = c[-1] * 1e3
    a[1] = c[3] * 0.5
    upstream = torch.ones(6)
    for rows in (1, 2, 6):
        got = _grads(lambda x, y, r=rows: tiled_logsumexp(x, y, 16, rows=r), a, c, upstream)
        ref = _grads(_naive, a.double(), c.double(), upstream.double())
        for x, y in zip(got, ref, strict=True):
            assert torch.isfinite(x).all()
            torch.testing.assert_close(x.double(), y, rtol=2e-4, atol=2e-4 * y.abs().max())


def test_eager_path_leaves_infinite_logits_to_the_tiled_path(monkeypatch):
    """Inputs whose bound is not finite: the eager forward declines, the values are torch's."""
    calls = _spy_eager(monkeypatch)
    big = 1e200
    a = torch.tensor([[big, 0.0], [0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([[-big, 0.0], [big, 1.0], [0.0, 2.0]], dtype=torch.float64)
    got = tiled_logsumexp(a, c, 2)
    assert calls == [1] and got[0] == float("inf")
    torch.testing.assert_close(got.detach(), _naive(a.detach(), c))


@pytest.mark.parametrize("b,rows", [(1, 1), (4, 1), (4, 3)])
def test_eager_gradcheck(b, rows):
    """gradcheck's one-hot upstream gradients are not uniform for B > 1 (∂/∂c recomputed), and
    trivially uniform for B = 1 (∂/∂c from the forward)."""
    a, c = _data(b, 7, 3, seed=17)
    assert torch.autograd.gradcheck(
        lambda x, y: tiled_logsumexp(x, y, 2, rows=rows),
        (a.requires_grad_(), c.requires_grad_()),
    )


def test_rows_zero_turns_the_eager_path_off(monkeypatch):
    calls = _spy_eager(monkeypatch)
    a, c = _data(4, 9, 3, seed=19)
    got = _grads(lambda x, y: tiled_logsumexp(x, y, 4, rows=0), a, c, torch.ones(4, dtype=a.dtype))
    ref = _grads(_naive, a, c, torch.ones(4, dtype=a.dtype))
    assert calls == []
    for x, y in zip(got, ref, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


def test_no_grad_mode_never_computes_gradients(monkeypatch):
    """Inputs that require gradients, evaluated under no_grad / inference_mode (an evaluation
    loop): the forward must not compute gradients nobody will read."""
    calls = _spy_eager(monkeypatch)
    a, c = _data(4, 9, 3, seed=23)
    a.requires_grad_()
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            got = tiled_logsumexp(a, c, 4)
        torch.testing.assert_close(got, _naive(a.detach(), c))
    assert calls == []


def test_default_rows(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    with cpu_gemm("mkl"):
        assert tiled.default_rows(40981, torch.float32) == 51
        assert tiled.default_rows(10**7, torch.float32) == 32  # floor
        monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
        assert tiled.default_rows(40981, torch.float32) == 204
    monkeypatch.setattr(gemm, "_onednn_available", lambda: True)
    with cpu_gemm("onednn"):
        assert tiled.default_rows(40981, torch.float32) == 127
        assert tiled.default_rows(40981, torch.float64) == 102  # oneDNN takes fp32 only
    with pytest.raises(ValueError):
        tiled_logsumexp(*_data(3, 4, 2), rows=-1)


# -- row weights: each distinct anchor once, weighted by its count --


def _spy_recompute(monkeypatch) -> list[int]:
    """Count the backwards that recomputed the gradients tile by tile."""
    calls = []
    real = tiled._recomputed_grads
    monkeypatch.setattr(tiled, "_recomputed_grads", lambda *a: calls.append(1) or real(*a))
    return calls


@pytest.mark.parametrize("rows", [1, 3, 100])
@pytest.mark.parametrize("upstream_kind", ["weights", "scaled", "random"])
def test_weighted_eager_path_matches_naive(monkeypatch, rows, upstream_kind):
    """An upstream gradient proportional to the weights (a weighted sum: ``weights``; a weighted
    mean: ``scaled``) is scaled from the forward's ∂/∂c; any other is recomputed. Both exact."""
    eager, recomputed = _spy_eager(monkeypatch), _spy_recompute(monkeypatch)
    a, c = _data(7, 23, 5, seed=rows + 40)
    w = torch.tensor([1.0, 3.0, 2.0, 1.0, 5.0, 1.0, 2.0], dtype=torch.float64)
    upstream = {
        "weights": w,
        "scaled": w * (1 / 15),
        "random": torch.randn(7, dtype=torch.float64, generator=torch.Generator().manual_seed(3)),
    }[upstream_kind]
    got = _grads(lambda x, y: tiled_logsumexp(x, y, 4, rows=rows, weights=w), a, c, upstream)
    ref = _grads(_naive, a, c, upstream)
    assert eager == [1]
    assert recomputed == ([1] if upstream_kind == "random" else [])
    for x, y in zip(got, ref, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gemm_backend", GEMMS)
def test_weights_equal_repeated_rows_in_float32(monkeypatch, gemm_backend):
    """SGL's summed loss in fp32 with repeated anchors, and the same with each distinct anchor
    once and its count as weight: same value and gradients, no recomputation."""
    _use_gemm(monkeypatch, gemm_backend)
    recomputed = _spy_recompute(monkeypatch)
    g = torch.Generator().manual_seed(8)
    base = torch.nn.functional.normalize(torch.randn(30, 16, generator=g), dim=1) / 0.2
    c = torch.nn.functional.normalize(torch.randn(200, 16, generator=g), dim=1)
    ids = torch.randint(0, 30, (80,), generator=g)
    uniq, counts = torch.unique(ids, return_counts=True)
    assert counts.max() > 1
    out = []
    for rows_of, w in ((ids, None), (uniq, counts.float())):
        b_ = base.clone().requires_grad_()
        c_ = c.clone().requires_grad_()
        lse = tiled_logsumexp(b_[rows_of], c_, 32, rows=9, weights=w)
        value = lse.sum() if w is None else (lse * w).sum()
        value.backward()
        out.append((value.detach(), b_.grad, c_.grad))
    assert recomputed == []
    for x, y in zip(*out, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5 * y.abs().max().item())


def test_weights_leave_values_and_other_paths_alone(monkeypatch):
    """Weights change no value, and the paths that never use them (rows=0, no gradient) are
    exact with them given."""
    a, c = _data(5, 11, 3, seed=29)
    w = torch.tensor([2.0, 1.0, 1.0, 4.0, 1.0], dtype=torch.float64)
    for rows in (0, 2):
        got = _grads(lambda x, y, r=rows: tiled_logsumexp(x, y, 4, rows=r, weights=w), a, c, w)
        ref = _grads(_naive, a, c, w)
        for x, y in zip(got, ref, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(tiled_logsumexp(a, c, weights=w), _naive(a, c))
    with pytest.raises(ValueError, match="weights must be"):
        tiled_logsumexp(a, c, weights=torch.ones(4))


def test_common_scale():
    scale = tiled._common_scale
    w = torch.tensor([1.0, 3.0, 2.0])
    assert scale(torch.full((3,), 0.5), None) == 0.5
    assert scale(torch.tensor([0.5, 0.5, 0.25]), None) is None
    assert scale(w * 0.1, w) == pytest.approx(0.1, rel=1e-6)
    assert scale(torch.tensor([0.1, 0.3, 0.21]), w) is None  # 5% off in one row
    assert scale(torch.zeros(3), w) == 0
    assert scale(torch.zeros(3), torch.zeros(3)) is None


@pytest.mark.parametrize("onednn", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_bf16_eager_path_is_as_accurate_as_recomputing(monkeypatch, onednn, weighted):
    """bf16 inputs on the CPU take the eager path (row sums apart in fp32, ∂/∂c summed in fp32),
    through oneDNN or torch.mm, and land at least as close to float64 as the recomputing path."""
    if onednn and not gemm._onednn_bf16_available():
        pytest.skip("torch without oneDNN bf16")
    monkeypatch.setattr(gemm, "ONEDNN_MIN_MACS", 0)
    monkeypatch.setattr(gemm, "_onednn_bf16_available", lambda: onednn)
    calls = _spy_eager(monkeypatch)
    g = torch.Generator().manual_seed(31)
    a = torch.nn.functional.normalize(torch.randn(24, 16, generator=g), dim=1) / 0.2
    c = torch.nn.functional.normalize(torch.randn(500, 16, generator=g), dim=1)
    w = torch.randint(1, 4, (24,), generator=g).double() if weighted else None
    upstream = torch.ones(24, dtype=torch.float64) if w is None else w
    a16, c16 = a.bfloat16(), c.bfloat16()
    ref = _grads(_naive, a16.double(), c16.double(), upstream)
    errors = {}
    wt = None if w is None else w.float()
    for rows in (0, 7):
        fn = lambda x, y, r=rows: tiled_logsumexp(x, y, 64, rows=r, weights=wt)  # noqa: E731
        got = _grads(fn, a16, c16, upstream.bfloat16())
        assert all(x.dtype == torch.bfloat16 for x in got)
        errors[rows] = [
            ((x.double() - y).norm() / y.norm()).item() for x, y in zip(got, ref, strict=True)
        ]
    assert calls == [1]  # rows=7 only
    for eager, recomputed in zip(errors[7], errors[0], strict=True):
        assert eager < 8e-3 and eager <= 1.5 * recomputed + 1e-3, errors
