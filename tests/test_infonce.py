"""InfoNCE and the two-view head against a slow loop reference and a hand-computed case."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from sslrec.losses import InfoNCEHead, info_nce

COMBOS = list(itertools.product(["all", "in_batch"], ["sum", "mean"]))


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _ref_info_nce(view1, view2, anchors, temperature, negatives, reduction) -> float:
    """Loops: for each anchor ``a``, ``−log(exp(cos(a₁,a₂)/τ) / Σ_b exp(cos(a₁,b₂)/τ))``."""
    v1, v2 = view1.double().tolist(), view2.double().tolist()
    ids = anchors.tolist()
    if negatives == "in_batch":
        ids = sorted(set(ids))
        candidates = ids
    else:
        candidates = range(len(v2))
    terms = []
    for a in ids:
        num = math.exp(_cos(v1[a], v2[a]) / temperature)
        den = sum(math.exp(_cos(v1[a], v2[b]) / temperature) for b in candidates)
        terms.append(-math.log(num / den))
    return sum(terms) if reduction == "sum" else sum(terms) / len(terms)


def _views(n: int = 7, d: int = 5, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(n, d, generator=g, dtype=dtype)


@pytest.mark.parametrize("negatives,reduction", COMBOS)
@pytest.mark.parametrize("temperature", [0.2, 1.0])
def test_info_nce_matches_loop_reference(negatives, reduction, temperature):
    v1, v2 = _views()
    anchors = torch.tensor([3, 1, 3, 0, 6, 1, 3])  # duplicates on purpose
    got = info_nce(v1, v2, anchors, temperature, negatives, reduction)
    ref = _ref_info_nce(v1, v2, anchors, temperature, negatives, reduction)
    assert got.item() == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("negatives,reduction", COMBOS)
def test_info_nce_float32_matches_reference(negatives, reduction):
    v1, v2 = _views(n=9, d=4, seed=2, dtype=torch.float32)
    anchors = torch.tensor([8, 2, 2, 5])
    got = info_nce(v1, v2, anchors, 0.3, negatives, reduction)
    ref = _ref_info_nce(v1, v2, anchors, 0.3, negatives, reduction)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_in_batch_uses_unique_anchors(reduction):
    v1, v2 = _views(seed=1)
    dup = torch.tensor([4, 2, 4, 4, 0, 2])
    uniq = torch.tensor([0, 2, 4])
    shuffled = torch.tensor([2, 0, 4])
    a = info_nce(v1, v2, dup, 0.5, "in_batch", reduction)
    b = info_nce(v1, v2, uniq, 0.5, "in_batch", reduction)
    c = info_nce(v1, v2, shuffled, 0.5, "in_batch", reduction)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    torch.testing.assert_close(c, b, rtol=1e-12, atol=0)


def test_all_negatives_keep_duplicate_anchors():
    """With ``all``, each repetition of an anchor is a separate term of the sum."""
    v1, v2 = _views(seed=1)
    once = info_nce(v1, v2, torch.tensor([4, 2]), 0.5, "all", "sum")
    twice = info_nce(v1, v2, torch.tensor([4, 2, 4]), 0.5, "all", "sum")
    single = info_nce(v1, v2, torch.tensor([4]), 0.5, "all", "sum")
    torch.testing.assert_close(twice, once + single, rtol=1e-12, atol=0)
    assert not torch.allclose(twice, once)


def test_hand_computed_case():
    # tau = 1; rows are normalised, so only directions matter:
    #   view1: a0 = (1, 0), a1 = (0, 1), a2 = (1, 1)
    #   view2: b0 = (3, 0), b1 = (1, 1), b2 = (-2, 0)
    #   cos(a0, b0) = 1, cos(a0, b1) = 1/√2, cos(a0, b2) = -1
    #   cos(a1, b0) = 0, cos(a1, b1) = 1/√2, cos(a1, b2) = 0
    # anchors [0, 1]
    # in_batch (negatives b0, b1):
    #   l0 = -log(e^1 / (e^1 + e^0.70711)) = log(1 + e^-0.29289) = log(1.7461018) = 0.5573858
    #   l1 = -log(e^0.70711 / (e^0 + e^0.70711)) = log(1 + e^-0.70711) = log(1.4930687) = 0.4008335
    #   sum = 0.9582193, mean = 0.4791096
    # all (negatives b0, b1, b2):
    #   l0 = log(1 + e^-0.29289 + e^-2) = log(1.8814371) = 0.6320359
    #   l1 = log(1 + 2 e^-0.70711) = log(1.9861374) = 0.6861917
    #   sum = 1.3182276, mean = 0.6591138
    v1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    v2 = torch.tensor([[3.0, 0.0], [1.0, 1.0], [-2.0, 0.0]])
    anchors = torch.tensor([0, 1])
    expected = {
        ("in_batch", "sum"): 0.9582193,
        ("in_batch", "mean"): 0.4791096,
        ("all", "sum"): 1.3182276,
        ("all", "mean"): 0.6591138,
    }
    for (negatives, reduction), value in expected.items():
        got = info_nce(v1, v2, anchors, 1.0, negatives, reduction).item()
        assert got == pytest.approx(value, abs=1e-6), (negatives, reduction)


def test_single_in_batch_anchor_is_zero():
    """One unique anchor is its own only candidate: ``−log(1) = 0``."""
    v1, v2 = _views()
    loss = info_nce(v1, v2, torch.tensor([3, 3, 3]), 0.2, "in_batch", "sum")
    assert loss.item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("negatives,reduction", COMBOS)
def test_small_temperature_is_stable(negatives, reduction):
    # logits up to 1/0.01 = 100: exp(100) overflows float32, logsumexp must not
    v1, v2 = _views(n=6, d=3, seed=4, dtype=torch.float32)
    v1 = (v1 * 1e3).requires_grad_()
    v2 = (v2 * 1e3).requires_grad_()
    anchors = torch.tensor([0, 2, 2, 5])
    loss = info_nce(v1, v2, anchors, 0.01, negatives, reduction)
    assert torch.isfinite(loss)
    ref = _ref_info_nce(v1.detach(), v2.detach(), anchors, 0.01, negatives, reduction)
    assert loss.item() == pytest.approx(ref, rel=1e-4, abs=1e-3)
    loss.backward()
    assert torch.isfinite(v1.grad).all() and torch.isfinite(v2.grad).all()


@pytest.mark.parametrize("negatives", ["all", "in_batch"])
def test_gradients_flow_to_both_views(negatives):
    v1, v2 = _views()
    v1.requires_grad_()
    v2.requires_grad_()
    anchors = torch.tensor([1, 4, 4])
    info_nce(v1, v2, anchors, 0.2, negatives, "mean").backward()
    for g in (v1.grad, v2.grad):
        assert g is not None and torch.isfinite(g).all()
        assert g[[1, 4]].abs().sum(1).min() > 0
    # view1 rows outside the batch never enter the loss
    others = [0, 2, 3, 5, 6]
    assert torch.all(v1.grad[others] == 0)
    if negatives == "all":  # every view2 row is a negative
        assert v2.grad[others].abs().sum(1).min() > 0
    else:  # only the batch ids are
        assert torch.all(v2.grad[others] == 0)


def test_gradient_matches_finite_differences():
    v1, v2 = _views(n=4, d=3, seed=5)
    anchors = torch.tensor([0, 3, 3])
    for negatives, reduction in COMBOS:
        assert torch.autograd.gradcheck(
            lambda a, b, n=negatives, r=reduction: info_nce(a, b, anchors, 0.4, n, r),
            (v1.clone().requires_grad_(), v2.clone().requires_grad_()),
        )


@pytest.mark.parametrize("negatives,reduction", COMBOS)
def test_head_is_user_term_plus_item_term(negatives, reduction):
    g = torch.Generator().manual_seed(9)
    u1, u2 = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    i1, i2 = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    users = torch.tensor([0, 4, 4, 2])
    items = torch.tensor([7, 1, 3, 7])
    head = InfoNCEHead(0.3, negatives, reduction)
    got = head((u1, i1), (u2, i2), users, items)
    ref = _ref_info_nce(u1, u2, users, 0.3, negatives, reduction) + _ref_info_nce(
        i1, i2, items, 0.3, negatives, reduction
    )
    assert got.item() == pytest.approx(ref, rel=1e-5)
    # swapping the roles of users and items changes the result (anchors follow their view)
    swapped = head((u1, i1), (u2, i2), users, torch.tensor([0, 4, 4, 2]))
    assert not torch.allclose(got, swapped)


def test_head_defaults():
    head = InfoNCEHead()
    assert (head.temperature, head.negatives, head.reduction) == (0.2, "all", "sum")


def test_invalid_options_raise():
    v1, v2 = _views()
    anchors = torch.tensor([0, 1])
    with pytest.raises(ValueError):
        info_nce(v1, v2, anchors, 0.2, negatives="batch")
    with pytest.raises(ValueError):
        info_nce(v1, v2, anchors, 0.2, reduction="none")
    with pytest.raises(ValueError):
        info_nce(v1, v2, anchors, 0.2, negatives="in_batch", reduction="max")
    with pytest.raises(ValueError):
        InfoNCEHead(0.2, "everything", "sum")((v1, v1), (v2, v2), anchors, anchors)


@pytest.mark.parametrize("negatives", ["all", "in_batch"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_fused_infonce_equals_the_block(negatives, reduction):
    """The tiled logsumexp (default) and the logits block agree in float64, values and both
    views' gradients, with duplicate anchors (SGL's batches repeat users; in_batch drops the
    repeats first)."""
    torch.manual_seed(0)
    v1 = torch.randn(37, 8, dtype=torch.float64, requires_grad=True)
    v2 = torch.randn(37, 8, dtype=torch.float64, requires_grad=True)
    anchors = torch.tensor([3, 3, 0, 36, 5, 3, 17])
    out = {}
    for fused in (True, False):
        loss = info_nce(v1, v2, anchors, 0.2, negatives, reduction, fused=fused)
        g1, g2 = torch.autograd.grad(loss, (v1, v2))
        out[fused] = (loss, g1, g2)
    for a, b in zip(out[True], out[False], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_masked_in_batch_form_equals_the_unique_form(reduction):
    """Accelerators take the sync-free masked form; on the CPU it must equal torch.unique's."""
    from sslrec.losses.infonce import _in_batch_masked, first_occurrence

    ids = torch.tensor([4, 1, 4, 4, 0, 1, 7])
    assert first_occurrence(ids).tolist() == [True, True, False, False, True, False, True]
    torch.manual_seed(1)
    v1 = torch.randn(9, 5, dtype=torch.float64, requires_grad=True)
    v2 = torch.randn(9, 5, dtype=torch.float64, requires_grad=True)
    ref = info_nce(v1, v2, ids, 0.3, "in_batch", reduction)
    got = _in_batch_masked(v1, v2, ids, 0.3, reduction)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    for g, r in zip(
        torch.autograd.grad(got, (v1, v2)), torch.autograd.grad(ref, (v1, v2)), strict=True
    ):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("negatives", ["all", "in_batch"])
def test_bf16_logits_stay_close_to_fp32(negatives):
    """precision=bf16 rounds each logit to 8 significant bits: the loss moves by well under 1%."""
    torch.manual_seed(2)
    v1, v2 = torch.randn(50, 16), torch.randn(50, 16)
    anchors = torch.randint(0, 50, (20,))
    exact = info_nce(v1, v2, anchors, 0.2, negatives, "mean")
    low = info_nce(v1, v2, anchors, 0.2, negatives, "mean", precision="bf16")
    assert low.dtype == torch.float32 and low != exact
    torch.testing.assert_close(low, exact, rtol=1e-2, atol=0)
    with pytest.raises(ValueError, match="precision"):
        InfoNCEHead(precision="fp16")


def test_in_batch_on_the_cpu_takes_the_tiled_kernel_unless_unfused(monkeypatch):
    """SimGCL/XSimGCL's in-batch term goes through the tiled logsumexp by default (about twice
    as fast as the [B, B] block on the CPU); fused=False keeps the block."""
    import sslrec.losses.infonce as mod

    calls = []
    tiled = mod.tiled_logsumexp
    monkeypatch.setattr(mod, "tiled_logsumexp", lambda *a, **k: calls.append(1) or tiled(*a, **k))
    v1, v2 = torch.randn(20, 4), torch.randn(20, 4)
    ids = torch.tensor([1, 5, 5, 9])
    info_nce(v1, v2, ids, 0.2, "in_batch", "mean")
    assert calls == [1]
    info_nce(v1, v2, ids, 0.2, "in_batch", "mean", fused=False)
    assert calls == [1]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_all_negatives_take_each_distinct_anchor_once(monkeypatch, reduction):
    """With ``all`` on the CPU the kernel sees each distinct anchor once, weighted by its
    count, and its backward scales the forward's gradients (no recomputation); values and
    gradients equal the block's, which keeps the repeated rows."""
    import sslrec.losses.infonce as mod
    from sslrec.losses import tiled

    seen, recomputed = [], []
    real, real_grads = mod.tiled_logsumexp, tiled._recomputed_grads
    monkeypatch.setattr(
        mod, "tiled_logsumexp", lambda a, c, **k: seen.append(a.shape[0]) or real(a, c, **k)
    )
    monkeypatch.setattr(
        tiled, "_recomputed_grads", lambda *a: recomputed.append(1) or real_grads(*a)
    )
    g = torch.Generator().manual_seed(4)
    v1 = torch.randn(40, 8, generator=g).requires_grad_()
    v2 = torch.randn(40, 8, generator=g).requires_grad_()
    anchors = torch.randint(0, 40, (64,), generator=g)
    out = {}
    for fused in (True, False):
        loss = info_nce(v1, v2, anchors, 0.2, "all", reduction, fused=fused)
        out[fused] = (loss, *torch.autograd.grad(loss, (v1, v2)))
    assert seen == [torch.unique(anchors).numel()] and seen[0] < 64
    assert recomputed == []
    for a, b in zip(out[True], out[False], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_unit_rows_is_f_normalize_with_a_shorter_backward():
    """The accelerator's normalisation: F.normalize's values bit for bit, its gradients to
    float64 rounding, also for a zero row, a row below ε and one at ε exactly; gradcheck."""
    import torch.nn.functional as F

    from sslrec.devices import accelerator_paths
    from sslrec.losses.normalize import EPS, _UnitRows, unit_rows

    torch.manual_seed(3)
    x = torch.randn(6, 5, dtype=torch.float64)
    x[2], x[3] = 0.0, x[3] * 1e-14
    x[4] = torch.tensor([EPS, 0, 0, 0, 0], dtype=torch.float64)
    x.requires_grad_(True)
    g = torch.randn(6, 5, dtype=torch.float64)
    with accelerator_paths():
        y = unit_rows(x)
    assert y.grad_fn is not None and "UnitRows" in type(y.grad_fn).__name__
    ref = F.normalize(x, dim=-1)
    assert torch.equal(y, ref)
    (got,) = torch.autograd.grad(y, x, g)
    (want,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    assert "UnitRows" not in type(unit_rows(x).grad_fn).__name__  # the host: F.normalize
    smooth = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _UnitRows.apply(t, EPS), (smooth,))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_both_sides_in_one_block_equal_each_side_alone(reduction):
    """The accelerator's in-batch head computes users and items in one [2, B, B] block: the
    sum of each side's unique-id form, values and gradients."""
    from sslrec.devices import accelerator_paths
    from sslrec.losses.infonce import _in_batch_masked_sides

    torch.manual_seed(4)
    u1, u2 = (torch.randn(9, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))
    i1, i2 = (torch.randn(6, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))
    users = torch.tensor([4, 1, 4, 4, 0, 1, 7])
    items = torch.tensor([5, 5, 2, 0, 1, 3, 2])
    leaves = (u1, u2, i1, i2)
    ref = info_nce(u1, u2, users, 0.3, "in_batch", reduction) + info_nce(
        i1, i2, items, 0.3, "in_batch", reduction
    )
    with accelerator_paths():
        got = _in_batch_masked_sides([(u1, u2, users), (i1, i2, items)], 0.3, reduction)
        head = InfoNCEHead(0.3, "in_batch", reduction)((u1, i1), (u2, i2), users, items)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    assert torch.equal(head, got)
    for g, r in zip(
        torch.autograd.grad(got, leaves), torch.autograd.grad(ref, leaves), strict=True
    ):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)
