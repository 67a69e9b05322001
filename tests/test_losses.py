"""BPR loss and L2 regularisation against hand computation and direct formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from sslrec.data import Batch
from sslrec.devices import KernelCounter, accelerator_paths
from sslrec.losses import L2Reg, bpr_loss, breakdown
from sslrec.models import MF

# --------------------------------------------------------------------------------------------
# BPR
# --------------------------------------------------------------------------------------------


def _ref_bpr(pos: list[float], neg: list[float], reduction: str) -> float:
    """``-log σ(pos - neg)`` per pair, written as ``log(1 + e^(neg - pos))``, in float64."""
    terms = [math.log1p(math.exp(n - p)) for p, n in zip(pos, neg, strict=True)]
    return sum(terms) / len(terms) if reduction == "mean" else sum(terms)


def test_bpr_hand_case():
    # pos = [2, 0], neg = [1, 1]: neg - pos = [-1, 1]
    # mean = (log(1 + e^-1) + log(1 + e^1)) / 2 = (0.3132617 + 1.3132617) / 2 = 0.8132617
    pos = torch.tensor([2.0, 0.0], dtype=torch.float64)
    neg = torch.tensor([1.0, 1.0], dtype=torch.float64)
    a, b = math.log(1 + math.exp(-1)), math.log(1 + math.exp(1))
    assert bpr_loss(pos, neg).item() == pytest.approx((a + b) / 2, rel=1e-12)
    assert bpr_loss(pos, neg, "mean").item() == pytest.approx(0.8132616875, rel=1e-9)
    assert bpr_loss(pos, neg, "sum").item() == pytest.approx(a + b, rel=1e-12)


def test_bpr_equal_scores_is_log2():
    x = torch.tensor([0.3, -1.0, 5.0])
    assert bpr_loss(x, x).item() == pytest.approx(math.log(2), rel=1e-6)
    assert bpr_loss(x, x, "sum").item() == pytest.approx(3 * math.log(2), rel=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bpr_random_against_reference(reduction):
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(size=50) * 3, rng.normal(size=50) * 3
    got = bpr_loss(torch.from_numpy(pos), torch.from_numpy(neg), reduction)
    assert got.dim() == 0
    assert got.item() == pytest.approx(_ref_bpr(list(pos), list(neg), reduction), rel=1e-12)


def test_bpr_sum_is_batch_size_times_mean():
    rng = np.random.default_rng(1)
    pos, neg = torch.from_numpy(rng.normal(size=17)), torch.from_numpy(rng.normal(size=17))
    assert bpr_loss(pos, neg, "sum").item() == pytest.approx(
        17 * bpr_loss(pos, neg, "mean").item(), rel=1e-12
    )


def test_bpr_is_numerically_stable():
    pos = torch.tensor([-100.0, 100.0])
    neg = torch.tensor([100.0, -100.0])
    # softplus(200) = 200 (to float32 precision), softplus(-200) = e^-200 ~ 0
    got = bpr_loss(pos, neg, "sum")
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(200.0, rel=1e-6)


def test_bpr_gradient_raises_positive_and_lowers_negative():
    pos = torch.tensor([2.0, 0.0], dtype=torch.float64, requires_grad=True)
    neg = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    bpr_loss(pos, neg).backward()
    # d/dpos softplus(neg - pos) / B = -σ(neg - pos) / B; d/dneg = +σ(neg - pos) / B
    sig = torch.sigmoid(torch.tensor([-1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(pos.grad, -sig / 2)
    torch.testing.assert_close(neg.grad, sig / 2)
    # one gradient-descent step increases every positive score and lowers every negative one
    with torch.no_grad():
        new_pos, new_neg = pos - 0.1 * pos.grad, neg - 0.1 * neg.grad
    assert bool((new_pos > pos).all()) and bool((new_neg < neg).all())
    assert bpr_loss(new_pos, new_neg).item() < bpr_loss(pos, neg).item()


def test_bpr_invalid_reduction():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="reduction"):
        bpr_loss(x, x, "none")


# --------------------------------------------------------------------------------------------
# L2Reg
# --------------------------------------------------------------------------------------------


def _ref_l2(weight, reduction, squared, *embs: np.ndarray) -> float:
    total = 0.0
    for e in embs:
        sq = 0.0
        for x in e.reshape(-1):
            sq += float(x) * float(x)
        total += 0.5 * sq if squared else math.sqrt(sq)
    if reduction == "mean":
        total /= embs[0].shape[0]
    return weight * total


def _hand_embeddings():
    u = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)  # ‖u‖² = 25, ‖u‖ = 5
    p = torch.tensor([[1.0, 2.0], [2.0, 0.0]], dtype=torch.float64)  # ‖p‖² = 9, ‖p‖ = 3
    n = torch.tensor([[0.0, 0.0], [0.0, 2.0]], dtype=torch.float64)  # ‖n‖² = 4, ‖n‖ = 2
    return u, p, n


@pytest.mark.parametrize(
    ("reduction", "squared", "expected"),
    [
        ("mean", True, 0.1 * 0.5 * (25 + 9 + 4) / 2),  # 0.95
        ("sum", True, 0.1 * 0.5 * (25 + 9 + 4)),  # 1.9
        ("mean", False, 0.1 * (5 + 3 + 2) / 2),  # 0.5
        ("sum", False, 0.1 * (5 + 3 + 2)),  # 1.0
    ],
)
@pytest.mark.parametrize("apply_to", ["ego", "propagated"])
def test_l2_hand_cases(reduction, squared, expected, apply_to):
    reg = L2Reg(weight=0.1, reduction=reduction, squared=squared, apply_to=apply_to)
    assert reg(*_hand_embeddings()).item() == pytest.approx(expected, rel=1e-12)


def test_l2_unsquared_is_frobenius_not_sum_of_row_norms():
    # rows (3, 4) and (1, 0): Frobenius sqrt(26) != 5 + 1
    e = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64)
    got = L2Reg(weight=1.0, reduction="sum", squared=False)(e).item()
    assert got == pytest.approx(math.sqrt(26), rel=1e-12)


def test_l2_defaults():
    reg = L2Reg()
    assert (reg.weight, reg.reduction, reg.squared, reg.apply_to) == (1e-4, "mean", True, "ego")
    assert reg(*_hand_embeddings()).item() == pytest.approx(1e-4 * 0.5 * 38 / 2, rel=1e-12)


@pytest.mark.parametrize(
    ("reduction", "squared", "apply_to"),
    list(itertools.product(["mean", "sum"], [True, False], ["ego", "propagated"])),
)
def test_l2_random_against_reference(reduction, squared, apply_to):
    rng = np.random.default_rng(7)
    embs = [rng.normal(size=(6, 5)) for _ in range(3)]
    reg = L2Reg(weight=0.37, reduction=reduction, squared=squared, apply_to=apply_to)
    got = reg(*(torch.from_numpy(e) for e in embs))
    assert got.dim() == 0
    assert got.item() == pytest.approx(_ref_l2(0.37, reduction, squared, *embs), rel=1e-12)
    # a single table works too
    one = reg(torch.from_numpy(embs[0])).item()
    assert one == pytest.approx(_ref_l2(0.37, reduction, squared, embs[0]), rel=1e-12)


@pytest.mark.parametrize(
    ("reduction", "squared", "apply_to"),
    list(itertools.product(["mean", "sum"], [True, False], ["ego", "propagated"])),
)
@pytest.mark.parametrize("shapes", [[(6, 5)] * 3, [(6, 5), (6, 5), (6, 4, 5)], [(6, 5)] * 2])
def test_l2_on_the_accelerator_paths_equals_the_reference(reduction, squared, apply_to, shapes):
    """The joined form (a handful of kernels for every table) against float64 by hand, value
    and gradients; with unequal shapes (``k`` negatives) the unsquared norm takes the per-table
    sum."""
    rng = np.random.default_rng(11)
    embs = [rng.normal(size=shape) for shape in shapes]
    reg = L2Reg(weight=0.37, reduction=reduction, squared=squared, apply_to=apply_to)
    tables = [torch.tensor(e, dtype=torch.float32, requires_grad=True) for e in embs]
    with accelerator_paths():
        got = reg(*tables)
    got.backward()
    assert got.dim() == 0
    assert got.item() == pytest.approx(_ref_l2(0.37, reduction, squared, *embs), rel=1e-6)
    scale = 0.37 / (shapes[0][0] if reduction == "mean" else 1)
    for table, e in zip(tables, embs, strict=True):
        want = scale * (e if squared else e / np.linalg.norm(e))  # d(½‖E‖²) = E, d‖E‖ = E/‖E‖
        np.testing.assert_allclose(table.grad.numpy(), want, rtol=1e-5, atol=1e-7)


def test_l2_on_the_accelerator_paths_takes_a_fixed_handful_of_kernels():
    """Forward and backward of LightGCN's three squared tables: 8 kernels (cat, dot, scale,
    backward's seed, the scale's and the dot's backward), not 29 (a pow, a sum, a product and a
    sum per table, each with its backward), and no more for more tables."""

    def kernels(tables: int, squared: bool) -> int:
        xs = [torch.randn(8, 4, requires_grad=True) for _ in range(tables)]
        with accelerator_paths(), KernelCounter() as seen:
            L2Reg(weight=0.1, squared=squared)(*xs).backward()
        return seen.total

    assert kernels(3, True) <= 8 and kernels(5, True) == kernels(3, True)
    assert kernels(2, False) <= 10 and kernels(4, False) == kernels(2, False)
    xs = [torch.randn(8, 4, requires_grad=True) for _ in range(3)]
    with KernelCounter() as host:  # the host's per-table sum
        L2Reg(weight=0.1)(*xs).backward()
    assert host.total > 3 * kernels(3, True)


def test_l2_gradient_of_squared_mean():
    # d/dE (w · ½‖E‖² / B) = w · E / B
    e = torch.tensor([[1.0, -2.0], [0.5, 3.0], [0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    L2Reg(weight=0.2)(e).backward()
    torch.testing.assert_close(e.grad, 0.2 * e.detach() / 3)


def test_l2_zero_weight():
    assert L2Reg(weight=0.0)(*_hand_embeddings()).item() == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"reduction": "avg"}, {"reduction": "none"}, {"apply_to": "final"}, {"apply_to": "all"}],
)
def test_l2_invalid_options_raise(kwargs):
    with pytest.raises(ValueError):
        L2Reg(**kwargs)


def test_reg_without_negative_rows_selfrec_form():
    # SELFRec SimGCL: reg · (‖U‖ + ‖P‖) / B on propagated user and positive rows only.
    torch.manual_seed(0)
    reg = L2Reg(weight=0.1, squared=False, apply_to="propagated", include_negative=False)
    model = MF(3, 4, embedding_dim=2, reg=reg)
    users, pos, neg = torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([0, 0])
    out = breakdown(model.loss(Batch(users, pos, neg)))
    u, p = model.user_embedding.weight[users], model.item_embedding.weight[pos]
    torch.testing.assert_close(out["reg"], 0.1 * (u.norm() + p.norm()) / 2)
