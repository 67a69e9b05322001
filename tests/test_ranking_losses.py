"""The ranking losses of ``conf/loss/`` against slow float64 references, by hand, and their yaml."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sslrec.losses.alignment import AlignUniformLoss, alignment, uniformity
from sslrec.losses.base import RankingBatch, Term, total
from sslrec.losses.cosine import CCLLoss, ccl_loss, cosine_scores
from sslrec.losses.listwise import ListwiseLoss, pairwise_logistic
from sslrec.losses.metric import (
    ContrastiveLoss,
    TripletLoss,
    contrastive_loss,
    safe_norm,
    standard_triplet,
    symmetric_triplet,
)
from sslrec.losses.pairwise import bpr_loss
from sslrec.losses.pointwise import BCELoss, JointLoss, bce_loss
from sslrec.losses.softmax import NPairLoss, SoftmaxLoss, sampled_softmax
from sslrec.models import MF

CONF = Path(__file__).resolve().parents[1] / "conf" / "loss"
KS = [1, 4]  # k = 1 gives neg [B] / [B, d]; k = 4 gives [B, k] / [B, k, d]
B, D = 5, 3


def _softplus(x: float) -> float:
    """``log(1 + e^x)`` in float64 without overflow."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _reduce(values: list[float], reduction: str, count: int | None = None) -> float:
    return sum(values) if reduction == "sum" else sum(values) / (count or len(values))


def _scores(k: int, seed: int = 0, scale: float = 2.0):
    """``pos [B]``, ``neg [B]`` (k = 1) or ``[B, k]``, float64."""
    rng = np.random.default_rng(seed)
    pos = torch.from_numpy(rng.normal(size=B) * scale)
    neg = torch.from_numpy(rng.normal(size=(B, k) if k > 1 else B) * scale)
    return pos, neg


def _reps(k: int, seed: int = 0, scale: float = 1.0):
    """``user [B, D]``, ``pos [B, D]``, ``neg [B, D]`` (k = 1) or ``[B, k, D]``, float64."""
    rng = np.random.default_rng(seed)
    user = torch.from_numpy(rng.normal(size=(B, D)) * scale)
    pos = torch.from_numpy(rng.normal(size=(B, D)) * scale)
    neg = torch.from_numpy(rng.normal(size=(B, k, D) if k > 1 else (B, D)) * scale)
    return user, pos, neg


def _rows(neg: torch.Tensor, dims: int) -> list:
    """Negatives per user as nested lists, k = 1 included: ``[B][k]`` for scores (``dims = 1``),
    ``[B][k][D]`` for representations (``dims = 2``)."""
    return (neg.reshape(B, -1) if dims == 1 else neg.reshape(B, -1, neg.shape[-1])).tolist()


def _score_batch(pos, neg, **kw) -> RankingBatch:
    return RankingBatch(pos_scores=pos, neg_scores=neg, **kw)


def _rep_batch(user, pos, neg) -> RankingBatch:
    """A batch with representations; the scores are the dot products (unused by these losses)."""
    u = user.unsqueeze(1) if neg.dim() == 3 else user
    return RankingBatch(
        pos_scores=(user * pos).sum(-1), neg_scores=(u * neg).sum(-1), user=user, pos=pos, neg=neg
    )


def _sq(x, y) -> float:
    return sum((a - b) ** 2 for a, b in zip(x, y, strict=True))


def _unit(x) -> list[float]:
    n = math.sqrt(sum(a * a for a in x))
    return [a / n for a in x]


def _assert_finite_grads(*tensors: torch.Tensor) -> None:
    for t in tensors:
        assert t.grad is not None and bool(torch.isfinite(t.grad).all()), t.grad


# --------------------------------------------------------------------------------------------
# pairwise logistic (listwise)
# --------------------------------------------------------------------------------------------


def _ref_pairwise_logistic(scores, labels, mask, reduction) -> float:
    rows, with_pairs = [], 0
    for s, y, m in zip(scores.tolist(), labels.tolist(), mask.tolist(), strict=True):
        row, n_pairs = 0.0, 0
        for p in range(len(s)):
            for n in range(len(s)):
                if m[p] and m[n] and y[p] > y[n]:
                    row += _softplus(-(s[p] - s[n]))
                    n_pairs += 1
        rows.append(row)
        with_pairs += n_pairs > 0
    if reduction == "sum":
        return sum(rows)
    return sum(rows) / max(with_pairs, 1)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_pairwise_logistic_against_reference(reduction, graded, masked):
    rng = np.random.default_rng(1)
    scores = torch.from_numpy(rng.normal(size=(6, 7)) * 3)
    labels = torch.from_numpy(rng.integers(0, 4 if graded else 2, size=(6, 7)).astype(np.float64))
    mask = torch.from_numpy(rng.random((6, 7)) < 0.7) if masked else torch.ones(6, 7, dtype=bool)
    got = pairwise_logistic(scores, labels, mask if masked else None, reduction)
    want = _ref_pairwise_logistic(scores, labels, mask, reduction)
    assert got.dim() == 0
    assert got.item() == pytest.approx(want, rel=1e-12)


def test_pairwise_logistic_hand_case():
    # row 0: labels [2, 1, 0], scores [0, 1, 3]: pairs (0,1), (0,2), (1,2)
    #   softplus(1) + softplus(3) + softplus(2); row 1: the third entry masked out: pair (1, 0)
    #   only, softplus(5 - 4) = softplus(1)
    scores = torch.tensor([[0.0, 1.0, 3.0], [5.0, 4.0, -9.0]], dtype=torch.float64)
    labels = torch.tensor([[2, 1, 0], [0, 1, 1]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    row0 = _softplus(1) + _softplus(3) + _softplus(2)
    row1 = _softplus(1)
    got = pairwise_logistic(scores, labels, mask, "sum").item()
    assert got == pytest.approx(row0 + row1, rel=1e-12)
    got = pairwise_logistic(scores, labels, mask, "mean").item()
    assert got == pytest.approx((row0 + row1) / 2, rel=1e-12)


def test_pairwise_logistic_rows_without_pairs_are_left_out_of_the_mean():
    scores, labels = torch.tensor([[1.0, 0.0]]), torch.tensor([[1, 0]])
    base = pairwise_logistic(scores, labels).item()
    assert base == pytest.approx(_softplus(-1.0), rel=1e-6)
    # an all-padding row and an all-tie row: no pair, so neither a term nor a count
    padded = pairwise_logistic(
        torch.tensor([[1.0, 0.0], [7.0, -7.0], [3.0, 2.0]]),
        torch.tensor([[1, 0], [1, 0], [1, 1]]),
        torch.tensor([[True, True], [False, False], [True, True]]),
    )
    assert padded.item() == pytest.approx(base, rel=1e-6)
    # no pair anywhere: 0, finite, and still differentiable
    x = torch.tensor([[1.0, 2.0]], requires_grad=True)
    empty = pairwise_logistic(x, torch.tensor([[1, 1]]))
    empty.backward()
    assert empty.item() == 0.0
    assert x.grad is not None and bool((x.grad == 0).all())


def test_pairwise_logistic_bool_labels_and_errors():
    s = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64)
    got = pairwise_logistic(s, torch.tensor([[True, False, False]]))
    assert got.item() == pytest.approx(_softplus(-1) + _softplus(-2), rel=1e-12)
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        pairwise_logistic(s, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="mask"):
        pairwise_logistic(s, torch.zeros(1, 3), torch.ones(1, 2, dtype=bool))
    with pytest.raises(ValueError, match="reduction"):
        pairwise_logistic(s, torch.zeros(1, 3), reduction="none")


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_listwise_loss_against_reference(k, reduction):
    pos, neg = _scores(k)
    got = ListwiseLoss(reduction=reduction)(_score_batch(pos, neg))
    rows = [
        sum(_softplus(n - p) for n in ns) for p, ns in zip(pos.tolist(), _rows(neg, 1), strict=True)
    ]
    assert got.item() == pytest.approx(_reduce(rows, reduction), rel=1e-12)


def test_listwise_mean_is_k_times_bpr_mean():
    # BPR averages over the B·k pairs, the listwise loss sums each user's k pairs first
    pos, neg = _scores(4, seed=2)
    got = ListwiseLoss()(_score_batch(pos, neg)).item()
    assert got == pytest.approx(4 * bpr_loss(pos, neg).item(), rel=1e-12)


def test_listwise_is_bpr_at_k1():
    pos, neg = _scores(1, seed=3)
    for reduction in ("mean", "sum"):
        got = ListwiseLoss(reduction=reduction)(_score_batch(pos, neg))
        assert got.item() == pytest.approx(bpr_loss(pos, neg, reduction).item(), rel=1e-12)


# --------------------------------------------------------------------------------------------
# sampled softmax and N-pair
# --------------------------------------------------------------------------------------------


def _ref_softmax(pos, neg, tau, pos_lq, neg_lq, reduction) -> float:
    rows = []
    neg_lq_rows = _rows(neg_lq, 1) if neg_lq is not None else [None] * B
    for b, (p, ns) in enumerate(zip(pos.tolist(), _rows(neg, 1), strict=True)):
        z = [p / tau] + [n / tau for n in ns]
        if pos_lq is not None:
            z = [zi - q for zi, q in zip(z, [pos_lq[b].item(), *neg_lq_rows[b]], strict=True)]
        top = max(z)
        rows.append(top + math.log(sum(math.exp(zi - top) for zi in z)) - z[0])
    return _reduce(rows, reduction)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("tau", [1.0, 0.2])
@pytest.mark.parametrize("log_q", [False, True])
def test_softmax_against_reference(k, reduction, tau, log_q):
    pos, neg = _scores(k, seed=4)
    rng = np.random.default_rng(5)
    pos_lq = torch.from_numpy(np.log(rng.uniform(1e-4, 1e-2, size=pos.shape)))
    neg_lq = torch.from_numpy(np.log(rng.uniform(1e-4, 1e-2, size=neg.shape)))
    batch = _score_batch(pos, neg, pos_log_q=pos_lq, neg_log_q=neg_lq)
    loss = SoftmaxLoss(temperature=tau, log_q_correction=log_q, reduction=reduction)
    want = _ref_softmax(pos, neg, tau, *((pos_lq, neg_lq) if log_q else (None, None)), reduction)
    assert loss(batch).item() == pytest.approx(want, rel=1e-12)
    assert loss.terms(batch) == {"softmax": Term(loss(batch), 1.0)}


def test_softmax_log_q_hand_case():
    # one user: s⁺ = 1 with q⁺ = e^-1, one negative s⁻ = 1 with q⁻ = e^-3:
    # z = [1 + 1, 1 + 3] = [2, 4]; loss = log(e^2 + e^4) - 2 = softplus(2)
    got = sampled_softmax(
        torch.tensor([1.0]),
        torch.tensor([1.0]),
        pos_log_q=torch.tensor([-1.0]),
        neg_log_q=torch.tensor([-3.0]),
    )
    assert got.item() == pytest.approx(_softplus(2.0), rel=1e-6)


def test_softmax_uniform_log_q_cancels():
    pos, neg = _scores(4, seed=6)
    lq = math.log(1 / 1000)
    corrected = sampled_softmax(
        pos, neg, pos_log_q=torch.full_like(pos, lq), neg_log_q=torch.full_like(neg, lq)
    )
    torch.testing.assert_close(corrected, sampled_softmax(pos, neg), rtol=1e-12, atol=1e-12)


def test_softmax_log_q_needs_popularity_sampling():
    pos, neg = _scores(4)
    with pytest.raises(ValueError, match=r"trainer\.negative_sampling=popularity"):
        SoftmaxLoss(log_q_correction=True)(_score_batch(pos, neg))
    # off, the missing log q is not needed
    assert torch.isfinite(SoftmaxLoss()(_score_batch(pos, neg)))
    with pytest.raises(ValueError, match="together"):
        sampled_softmax(pos, neg, pos_log_q=pos)


def test_softmax_invalid_temperature():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SoftmaxLoss(temperature=0.0)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_npair_equals_direct_expression_and_softmax(k, reduction):
    pos, neg = _scores(k, seed=7)
    batch = _score_batch(pos, neg)
    got = NPairLoss(reduction=reduction)(batch)
    rows = [
        math.log(1 + sum(math.exp(n - p) for n in ns))
        for p, ns in zip(pos.tolist(), _rows(neg, 1), strict=True)
    ]
    assert got.item() == pytest.approx(_reduce(rows, reduction), rel=1e-12)
    assert got.item() == pytest.approx(SoftmaxLoss(reduction=reduction)(batch).item(), rel=1e-12)
    if k == 1:
        assert got.item() == pytest.approx(bpr_loss(pos, neg, reduction).item(), rel=1e-12)


def test_npair_offset_variants():
    k = 4
    pos, neg = _scores(k, seed=8)
    per_user = sampled_softmax(pos, neg, reduction="sum")  # B users, one at a time below
    total_ = 0.0
    for b in range(B):
        diffs = [n - pos[b].item() for n in neg[b].tolist()]
        l_avg = math.log(sum(math.exp(x) for x in diffs) / k)  # mean over the N − 1 negatives
        # log Σ = log mean + log(N − 1), and the N-pair loss is softplus(log Σ)
        assert math.log(sum(math.exp(x) for x in diffs)) == pytest.approx(
            l_avg + math.log(k), rel=1e-12
        )
        one = sampled_softmax(pos[b : b + 1], neg[b : b + 1]).item()
        assert one == pytest.approx(_softplus(l_avg + math.log(k)), rel=1e-12)
        assert one >= 0  # so the InfoNCE estimate log N − L never exceeds log N
        total_ += one
    assert per_user.item() == pytest.approx(total_, rel=1e-12)
    # equal scores: L = log N, so the estimate log N − L is 0
    x = torch.zeros(3, dtype=torch.float64)
    assert sampled_softmax(x, torch.zeros(3, k, dtype=torch.float64)).item() == pytest.approx(
        math.log(1 + k), rel=1e-12
    )


# --------------------------------------------------------------------------------------------
# score losses: gradients at large scores, names
# --------------------------------------------------------------------------------------------

SCORE_LOSSES = [ListwiseLoss(), SoftmaxLoss(temperature=0.1), NPairLoss(), BCELoss(), JointLoss()]


@pytest.mark.parametrize("loss", SCORE_LOSSES, ids=lambda x: x.name)
@pytest.mark.parametrize("k", KS)
def test_score_losses_finite_at_large_scores(loss, k):
    pos = torch.tensor([100.0, -100.0, 100.0, -100.0, 0.0], requires_grad=True)
    neg_values = torch.tensor([-100.0, 100.0, 100.0, -100.0, 100.0])
    neg = (neg_values if k == 1 else neg_values.unsqueeze(1).repeat(1, k)).requires_grad_(True)
    value = loss(_score_batch(pos, neg))
    value.backward()
    assert torch.isfinite(value)
    _assert_finite_grads(pos, neg)


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (ListwiseLoss, "listwise"),
        (SoftmaxLoss, "softmax"),
        (NPairLoss, "npair"),
        (BCELoss, "bce"),
        (ContrastiveLoss, "contrastive"),
        (TripletLoss, "triplet"),
        (CCLLoss, "ccl"),
    ],
)
def test_single_term_names_and_weights(cls, name):
    user, pos, neg = _reps(4)
    batch = _rep_batch(user, pos, neg)
    loss = cls(weight=0.25)
    assert cls.name == name
    terms = loss.terms(batch)
    assert list(terms) == [name]
    assert terms[name].weight == 0.25
    assert terms[name].value.item() == pytest.approx(loss(batch).item(), rel=1e-12)


# --------------------------------------------------------------------------------------------
# contrastive and triplet (metric learning)
# --------------------------------------------------------------------------------------------


def _ref_contrastive(user, pos, neg, margin, reduction) -> float:
    terms = []
    for u, p, ns in zip(user.tolist(), pos.tolist(), _rows(neg, 2), strict=True):
        terms.append(_sq(u, p))
        for n in ns:
            terms.append(max(margin - math.sqrt(_sq(u, n)), 0.0) ** 2)
    return _reduce(terms, reduction)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("margin", [1.0, 3.0])
def test_contrastive_against_reference(k, reduction, margin):
    user, pos, neg = _reps(k, seed=9)
    got = ContrastiveLoss(margin=margin, reduction=reduction)(_rep_batch(user, pos, neg))
    want = _ref_contrastive(user, pos, neg, margin, reduction)
    assert got.item() == pytest.approx(want, rel=1e-12)


def test_contrastive_hand_case():
    # d(u, p)² = 25; negatives at d = 0.5 (cost (1 − 0.5)² = 0.25) and d = 2 (beyond m: 0)
    u = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    p = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    n = torch.tensor([[[0.3, 0.4], [0.0, 2.0]]], dtype=torch.float64)
    assert contrastive_loss(u, p, n, 1.0, "sum").item() == pytest.approx(25.25, rel=1e-12)
    assert contrastive_loss(u, p, n, 1.0, "mean").item() == pytest.approx(25.25 / 3, rel=1e-12)


def test_safe_norm_value_and_gradient():
    sq = torch.tensor([0.0, 4.0, 1e-30], dtype=torch.float64, requires_grad=True)
    d = safe_norm(sq)
    d.sum().backward()
    torch.testing.assert_close(d.detach(), torch.tensor([0.0, 2.0, 1e-15], dtype=torch.float64))
    assert sq.grad is not None and sq.grad[0] == 0 and sq.grad[1] == pytest.approx(0.25)


def _ref_standard_triplet(user, pos, neg, margin, reduction) -> float:
    terms = [
        max(_sq(u, p) - _sq(u, n) + margin, 0.0)
        for u, p, ns in zip(user.tolist(), pos.tolist(), _rows(neg, 2), strict=True)
        for n in ns
    ]
    return _reduce(terms, reduction)


def _ref_symmetric_triplet(user, pos, neg, margin, clamp, reduction) -> float:
    terms = []
    for a, p, ns in zip(user.tolist(), pos.tolist(), _rows(neg, 2), strict=True):
        for n in ns:
            t = 2 * _sq(p, a) - _sq(p, n) - _sq(a, n) + margin
            terms.append(max(t, 0.0) if clamp else t)
    return _reduce(terms, reduction)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_standard_triplet_against_reference(k, reduction):
    user, pos, neg = _reps(k, seed=10)
    got = TripletLoss(margin=2.0, reduction=reduction)(_rep_batch(user, pos, neg))
    want = _ref_standard_triplet(user, pos, neg, 2.0, reduction)
    assert want > 0  # some triplets active, some not, at this margin
    assert got.item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("clamp", [False, True])
def test_symmetric_triplet_against_reference(k, reduction, clamp):
    user, pos, neg = _reps(k, seed=11)
    loss = TripletLoss(form="symmetric", clamp=clamp, margin=2.0, reduction=reduction)
    got = loss(_rep_batch(user, pos, neg))
    want = _ref_symmetric_triplet(user, pos, neg, 2.0, clamp, reduction)
    assert got.item() == pytest.approx(want, rel=1e-12)
    if not clamp:
        clamped = _ref_symmetric_triplet(user, pos, neg, 2.0, True, reduction)
        assert want != pytest.approx(clamped)  # the data reach the clamp


def test_symmetric_triplet_both_labels_by_hand():
    # a = (0, 0), x = (1, 0), y = (0, 2): ‖x − a‖² = 1, ‖y − a‖² = 4, ‖x − y‖² = 5, m = 1
    a = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    # label 1 (x = p, y = n): 2·1 − 5 − 4 + 1 = −6
    assert symmetric_triplet(a, x, y, 1, 1.0, clamp=False).item() == pytest.approx(-6.0)
    assert symmetric_triplet(a, x, y, 1, 1.0, clamp=True).item() == 0.0
    # label 0 (y = p, x = n): 2·‖n − a‖²... = 2·4 − 5 − 1 + 1 = 3
    assert symmetric_triplet(a, x, y, 0, 1.0, clamp=False).item() == pytest.approx(3.0)
    assert symmetric_triplet(a, x, y, 0, 1.0, clamp=True).item() == pytest.approx(3.0)
    # a label tensor mixes both per row; label 0 on (a, x, y) is label 1 on (a, y, x)
    aa, xx, yy = a.repeat(2, 1), x.repeat(2, 1), y.repeat(2, 1)
    mixed = symmetric_triplet(aa, xx, yy, torch.tensor([1, 0]), 1.0, clamp=False, reduction="sum")
    assert mixed.item() == pytest.approx(-6.0 + 3.0)
    swapped = symmetric_triplet(a, y, x, 1, 1.0, clamp=False)
    assert swapped.item() == pytest.approx(3.0)
    # [B] labels against k negatives per anchor: the label is the row's
    neg = torch.stack([y, y, y], dim=1)  # [1, 3, 2]
    got = symmetric_triplet(a, x, neg, torch.tensor([0]), 1.0, clamp=False, reduction="sum")
    assert got.item() == pytest.approx(9.0)
    with pytest.raises(ValueError, match="label"):
        symmetric_triplet(a, x, y, 2, 1.0)


def test_standard_triplet_hand_case():
    # ‖a − p‖² = 1, ‖a − n‖² = 4: max(0, 1 − 4 + m) is 0 at m = 1 and 1 at m = 4
    a, p, n = (torch.tensor([v], dtype=torch.float64) for v in ([0.0, 0.0], [1.0, 0.0], [0, 2.0]))
    assert standard_triplet(a, p, n, 1.0).item() == 0.0
    assert standard_triplet(a, p, n, 4.0).item() == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs", [{"form": "standard", "clamp": False}, {"form": "hard"}])
def test_triplet_invalid_options(kwargs):
    with pytest.raises(ValueError, match="triplet"):
        TripletLoss(**kwargs)


# --------------------------------------------------------------------------------------------
# CCL (SimpleX)
# --------------------------------------------------------------------------------------------


def _ref_ccl(user, pos, neg, margin, w, reduction) -> float:
    rows = []
    for u, p, ns in zip(user.tolist(), pos.tolist(), _rows(neg, 2), strict=True):
        cos = lambda x, y: sum(a * b for a, b in zip(_unit(x), _unit(y), strict=True))  # noqa: E731
        weight = len(ns) if w is None else w
        rows.append(1 - cos(u, p) + weight / len(ns) * sum(max(cos(u, n) - margin, 0) for n in ns))
    return _reduce(rows, reduction)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("w", [150.0, 3.0, None])
def test_ccl_against_reference(k, reduction, w):
    user, pos, neg = _reps(k, seed=12)
    margin = 0.1  # low enough that random directions cross it
    loss = CCLLoss(margin=margin, negative_weight=w, reduction=reduction)
    got = loss(_rep_batch(user, pos, neg))
    assert got.item() == pytest.approx(_ref_ccl(user, pos, neg, margin, w, reduction), rel=1e-12)
    # cosines: scaling the representations changes nothing
    scaled = loss(_rep_batch(7 * user, 0.1 * pos, 3 * neg))
    assert scaled.item() == pytest.approx(got.item(), rel=1e-12)


def test_ccl_hand_case():
    # ŝ⁺ = 1 (no cost); negatives at cos 1 and 0 with m = 0.5: (w/2)·(0.5 + 0) = 0.25·w
    pos_cos = torch.tensor([1.0])
    assert ccl_loss(pos_cos, torch.tensor([[1.0, 0.0]]), 0.5, 2.0).item() == pytest.approx(0.5)
    assert ccl_loss(pos_cos, torch.tensor([[1.0, 0.0]]), 0.5, None).item() == pytest.approx(0.5)
    assert ccl_loss(pos_cos, torch.tensor([[1.0, 0.0]]), 0.5, 10.0).item() == pytest.approx(2.5)
    u = torch.tensor([[2.0, 0.0]])
    pos_cos, neg_cos = cosine_scores(u, torch.tensor([[0.0, 5.0]]), torch.tensor([[[-1.0, 0.0]]]))
    assert (pos_cos.item(), neg_cos.item()) == (0.0, -1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"margin": 1.0}, "ccl margin"), ({"negative_weight": -1.0}, "ccl negative_weight")],
)
def test_ccl_invalid_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CCLLoss(**kwargs)


def test_a_model_trained_with_ccl_ranks_by_cosine():
    """CCL leaves the norms untrained: MF + CCL ranks by cos(u, i) (MF-CCL), every other loss
    by the raw inner product; scorer, score() and embeddings() agree."""
    torch.manual_seed(0)
    ccl, bpr = MF(5, 7, 4, loss=CCLLoss()), MF(5, 7, 4)
    bpr.load_state_dict(ccl.state_dict())
    raw_u, raw_i = ccl.propagate()
    cos = F.normalize(raw_u, dim=-1) @ F.normalize(raw_i, dim=-1).T
    users, items = torch.tensor([0, 3, 4]), torch.tensor([6, 0, 2])
    torch.testing.assert_close(ccl.scorer().full_scores(torch.arange(5)), cos)
    torch.testing.assert_close(ccl.score(users, items).detach(), cos[users, items])
    u, i = ccl.embeddings()
    torch.testing.assert_close(u.norm(dim=-1), torch.ones(5))
    torch.testing.assert_close(i.norm(dim=-1), torch.ones(7))
    torch.testing.assert_close(bpr.scorer().full_scores(torch.arange(5)), raw_u @ raw_i.T)
    assert CCLLoss.ranks_by_cosine and not any(
        c.ranks_by_cosine for c in (BCELoss, SoftmaxLoss, ListwiseLoss, AlignUniformLoss)
    )


@pytest.mark.parametrize("loss", [ContrastiveLoss(), TripletLoss(), TripletLoss(form="symmetric")])
def test_a_model_trained_with_a_distance_loss_ranks_by_distance(loss):
    """Contrastive and triplet losses train Euclidean distances: MF ranks each user's items by
    −‖u − i‖² (brute force here), through [u, 1]·[i, −½‖i‖²]."""
    torch.manual_seed(0)
    model = MF(6, 9, 4, loss=loss)
    raw_u, raw_i = model.propagate()
    scores = model.scorer().full_scores(torch.arange(6))
    expected = -torch.cdist(raw_u, raw_i).pow(2)
    assert torch.equal(scores.argsort(dim=1), expected.argsort(dim=1))
    torch.testing.assert_close(  # equal up to a per-user constant ½‖u‖²
        scores, 0.5 * expected + 0.5 * raw_u.pow(2).sum(-1, keepdim=True), atol=1e-6, rtol=1e-5
    )
    u, i = model.embeddings()
    assert u.shape == (6, 5) and i.shape == (9, 5)
    torch.testing.assert_close(
        model.score(torch.tensor([1, 4]), torch.tensor([8, 0])).detach(), scores[[1, 4], [8, 0]]
    )
    assert not any(c.ranks_by_distance for c in (BCELoss, SoftmaxLoss, CCLLoss))


@pytest.mark.parametrize(
    "cls",
    [ListwiseLoss, SoftmaxLoss, NPairLoss, ContrastiveLoss, TripletLoss, CCLLoss, BCELoss],
)
def test_invalid_reduction_is_refused_at_construction(cls):
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum', got 'avg'"):
        cls(reduction="avg")


# --------------------------------------------------------------------------------------------
# DirectAU (alignment and uniformity)
# --------------------------------------------------------------------------------------------


def _ref_uniform(x) -> float:
    rows = [_unit(r) for r in x.tolist()]
    vals = [
        math.exp(-2 * _sq(rows[a], rows[b]))
        for a in range(len(rows))
        for b in range(a + 1, len(rows))
    ]
    return math.log(sum(vals) / len(vals))


def _ref_align(x, y) -> float:
    vals = [_sq(_unit(a), _unit(b)) for a, b in zip(x.tolist(), y.tolist(), strict=True)]
    return sum(vals) / len(vals)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("gamma", [1.0, 2.0])
def test_directau_against_reference(k, gamma):
    user, pos, neg = _reps(k, seed=13)
    user[3] = user[0]  # a user twice in the batch: a pair at distance 0, as given
    batch = _rep_batch(user, pos, neg)
    loss = AlignUniformLoss(gamma=gamma)
    align, uniform = _ref_align(user, pos), (_ref_uniform(user) + _ref_uniform(pos)) / 2
    assert loss(batch).item() == pytest.approx(align + gamma * uniform, rel=1e-12)
    terms = loss.terms(batch)
    assert list(terms) == ["align", "uniform"]
    assert terms["align"].value.item() == pytest.approx(align, rel=1e-12)
    assert terms["uniform"].value.item() == pytest.approx(uniform, rel=1e-12)
    assert (terms["align"].weight, terms["uniform"].weight) == (1.0, gamma)
    assert total(terms).item() == pytest.approx(loss(batch).item(), rel=1e-12)
    # negatives are ignored
    assert loss(_rep_batch(user, pos, 5 * neg + 1)).item() == loss(batch).item()
    weighted = AlignUniformLoss(gamma=gamma, weight=0.5).terms(batch)
    assert (weighted["align"].weight, weighted["uniform"].weight) == (0.5, 0.5 * gamma)


def test_uniformity_hand_case_and_single_row():
    # two orthogonal unit rows: ‖x̃_a − x̃_b‖² = 2, uniformity = log e^-4 = −4 (norms ignored)
    x = torch.tensor([[3.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    assert uniformity(x).item() == pytest.approx(-4.0, rel=1e-12)
    # alignment of (1, 0) and (0, 1) after normalisation: 2
    assert alignment(x, x.flip(0)).item() == pytest.approx(2.0, rel=1e-12)
    one = torch.ones(1, 3, requires_grad=True)
    value = uniformity(one)
    value.backward()
    assert value.item() == 0.0
    _assert_finite_grads(one)


def test_uniformity_gradient_at_coincident_rows_is_the_true_gradient():
    # pdist's gradient at distance 0 against the same formula on explicit pair differences
    rng = np.random.default_rng(14)
    x = torch.from_numpy(rng.normal(size=(4, 3)))
    x[2] = x[0]
    x[3] = 2.5 * x[0]  # the same direction: distance 0 after normalisation
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    uniformity(x1).backward()
    n = torch.nn.functional.normalize(x2, dim=-1)
    sq = torch.stack([(n[a] - n[b]).pow(2).sum() for a in range(4) for b in range(a + 1, 4)])
    sq.mul(-2).exp().mean().log().backward()
    _assert_finite_grads(x1)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# representation losses: large norms, coincident points, score-only models
# --------------------------------------------------------------------------------------------

REP_LOSSES = [
    ContrastiveLoss(),
    TripletLoss(),
    TripletLoss(form="symmetric", clamp=False),
    CCLLoss(margin=0.0),
    AlignUniformLoss(),
    JointLoss(ranking=ContrastiveLoss()),
]


@pytest.mark.parametrize("loss", REP_LOSSES, ids=lambda x: f"{x.name}")
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("case", ["large", "coincident", "zero"])
def test_representation_losses_finite_gradients(loss, k, case):
    user, pos, neg = (t.float() for t in _reps(k, seed=15, scale=1e3 if case == "large" else 1))
    if case == "coincident":  # user = positive = negative, and users repeated
        user[1] = user[0]
        pos, neg = user.clone(), user.unsqueeze(1).repeat(1, k, 1) if k > 1 else user.clone()
    if case == "zero":
        user[0] = 0.0
        pos[1] = 0.0
    for t in (user, pos, neg):
        t.requires_grad_(True)
    value = loss(_rep_batch(user, pos, neg))
    value.backward()
    assert torch.isfinite(value)
    # DirectAU ignores the negatives: no gradient reaches them
    _assert_finite_grads(user, pos, *(() if isinstance(loss, AlignUniformLoss) else (neg,)))


@pytest.mark.parametrize(
    "loss", [*REP_LOSSES[:2], CCLLoss(), AlignUniformLoss()], ids=lambda x: x.name
)
def test_representation_losses_refuse_score_only_batches(loss):
    assert loss.needs_representations is True
    pos, neg = _scores(4)
    with pytest.raises(ValueError, match=f"loss={loss.name} works on user and item"):
        loss(_score_batch(pos, neg))


def test_score_losses_do_not_need_representations():
    for loss in SCORE_LOSSES:
        assert loss.needs_representations is False


# --------------------------------------------------------------------------------------------
# BCE and the joint loss
# --------------------------------------------------------------------------------------------


def _ref_bce(pos, neg, reduction) -> float:
    terms = [_softplus(-p) for p in pos.tolist()]
    terms += [_softplus(n) for ns in _rows(neg, 1) for n in ns]
    return _reduce(terms, reduction)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_against_reference(k, reduction):
    pos, neg = _scores(k, seed=16)
    got = BCELoss(reduction=reduction)(_score_batch(pos, neg))
    assert got.item() == pytest.approx(_ref_bce(pos, neg, reduction), rel=1e-12)
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.cat([pos, neg.reshape(-1)]),
        torch.cat([torch.ones_like(pos), torch.zeros(neg.numel(), dtype=pos.dtype)]),
        reduction=reduction,
    )
    assert got.item() == pytest.approx(want.item(), rel=1e-12)


def test_bce_reads_the_ctr_head_when_there_is_one():
    pos, neg = _scores(4, seed=17)
    head_pos, head_neg = _scores(4, seed=18)
    batch = _score_batch(pos, neg, pos_logits=head_pos, neg_logits=head_neg)
    assert BCELoss()(batch).item() == pytest.approx(bce_loss(head_pos, head_neg).item())
    assert BCELoss()(batch).item() != pytest.approx(bce_loss(pos, neg).item())


@pytest.mark.parametrize("k", KS)
def test_joint_endpoints_and_mix(k):
    from sslrec.losses.pairwise import BPRLoss

    pos, neg = _scores(k, seed=19)
    batch = _score_batch(pos, neg)
    bpr, bce = BPRLoss()(batch), BCELoss()(batch)
    at1, at0 = JointLoss(alpha=1.0), JointLoss(alpha=0.0)
    assert torch.equal(at1(batch), bpr) and torch.equal(total(at1.terms(batch)), bpr)
    assert torch.equal(at0(batch), bce) and torch.equal(total(at0.terms(batch)), bce)
    mix = JointLoss(alpha=0.3, weight=2.0)
    terms = mix.terms(batch)
    assert list(terms) == ["bpr", "bce"]
    assert terms["bpr"].weight == pytest.approx(0.6) and terms["bce"].weight == pytest.approx(1.4)
    assert terms["bpr"].value.item() == bpr.item() and terms["bce"].value.item() == bce.item()
    want = 0.3 * bpr.item() + 0.7 * bce.item()
    assert mix(batch).item() == pytest.approx(want, rel=1e-12)
    assert total(terms).item() == pytest.approx(2 * want, rel=1e-12)


def test_joint_with_a_two_term_ranking_loss():
    user, pos, neg = _reps(4, seed=20)
    batch = _rep_batch(user, pos, neg)
    au = AlignUniformLoss(gamma=2.0)
    joint = JointLoss(ranking=au, alpha=0.25)
    assert joint.needs_representations is True and JointLoss().needs_representations is False
    terms = joint.terms(batch)
    assert list(terms) == ["align", "uniform", "bce"]
    assert [t.weight for t in terms.values()] == [0.25, 0.5, 0.75]
    want = 0.25 * au(batch).item() + 0.75 * BCELoss()(batch).item()
    assert joint(batch).item() == pytest.approx(want, rel=1e-12)
    assert total(terms).item() == pytest.approx(want, rel=1e-12)


def test_joint_invalid():
    for alpha in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
            JointLoss(alpha=alpha)
    pos, neg = _scores(1)
    with pytest.raises(ValueError, match="bce"):
        JointLoss(ranking=BCELoss()).terms(_score_batch(pos, neg))


# --------------------------------------------------------------------------------------------
# conf/loss/*.yaml
# --------------------------------------------------------------------------------------------

YAMLS = {
    "listwise": ListwiseLoss,
    "softmax": SoftmaxLoss,
    "npair": NPairLoss,
    "contrastive": ContrastiveLoss,
    "triplet": TripletLoss,
    "bce": BCELoss,
    "joint": JointLoss,
    "ccl": CCLLoss,
    "directau": AlignUniformLoss,
}


def _yaml_keys_match_fields(node, obj) -> None:
    """Every dataclass field, and nothing else, is in the yaml, recursively."""
    fields = {f.name for f in dataclasses.fields(obj)}
    assert set(node) - {"_target_"} == fields, (type(obj).__name__, set(node), fields)
    for f in fields:
        if dataclasses.is_dataclass(getattr(obj, f)):
            _yaml_keys_match_fields(node[f], getattr(obj, f))


@pytest.mark.parametrize(("name", "cls"), YAMLS.items(), ids=list(YAMLS))
def test_yaml_instantiates_to_the_default(name, cls):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    obj = instantiate(cfg)
    assert type(obj) is cls and obj.name == name
    assert obj == cls()
    _yaml_keys_match_fields(cfg, cls())


@pytest.mark.parametrize("rows", [2, 3, 17])
def test_uniformity_equals_the_official_pdist_form(rows):
    """sslrec's one-block uniformity against the official ``pdist`` expression (float64):
    values and gradients, with a repeated row, a zero row and rows of any norm."""
    from sslrec.losses.alignment import _Uniformity

    torch.manual_seed(rows)
    x = torch.randn(rows, 5, dtype=torch.float64) * torch.rand(rows, 1, dtype=torch.float64) * 3
    if rows > 2:
        x[2] = x[0]
    if rows > 3:
        x[3] = 0.0
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    got = uniformity(a)
    n = torch.nn.functional.normalize(b, dim=-1)
    ref = torch.pdist(n, p=2).pow(2).mul(-2).exp().mean().log()
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    got.backward()
    ref.backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)
    smooth = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_Uniformity.apply, (smooth,))
