"""Ranking metrics against hand-computed cases and a slow per-user reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sslrec.evaluation.metrics import (
    METRICS,
    average_precision,
    hit_rate,
    mrr,
    ndcg,
    precision,
    recall,
)

NAMES = ("recall", "ndcg", "precision", "hit_rate", "mrr", "map")


# --------------------------------------------------------------------------------------------
# Slow reference: one user at a time, plain Python, straight from the textbook definitions.
# --------------------------------------------------------------------------------------------


def reference_metric(name: str, rel: list[int], n_rel: int, k: int) -> float:
    """``rel``: 0/1 relevance of the ranked list (best first); ``n_rel = |T_u|``."""
    top = [int(x) for x in rel[:k]]
    n_hit = sum(top)
    if name == "recall":
        return n_hit / n_rel
    if name == "precision":
        return n_hit / k
    if name == "hit_rate":
        return 1.0 if n_hit > 0 else 0.0
    if name == "mrr":
        for r, x in enumerate(top, start=1):
            if x:
                return 1.0 / r
        return 0.0
    if name == "ndcg":
        dcg = 0.0
        for r, x in enumerate(top, start=1):
            if x:
                dcg += 1.0 / math.log2(r + 1)
        idcg = 0.0
        for r in range(1, min(n_rel, k) + 1):
            idcg += 1.0 / math.log2(r + 1)
        return dcg / idcg
    if name == "map":
        total, seen = 0.0, 0
        for r, x in enumerate(top, start=1):
            if x:
                seen += 1
                total += seen / r
        return total / min(n_rel, k)
    raise KeyError(name)


def _run(name: str, rows: list[list[int]], n_rel: list[int], k: int) -> list[float]:
    hits = torch.tensor(rows, dtype=torch.float32)
    out = METRICS[name](hits, torch.tensor(n_rel, dtype=torch.float32), k)
    assert out.shape == (len(rows),)
    return out.tolist()


# --------------------------------------------------------------------------------------------
# Hand-computed cases.
# --------------------------------------------------------------------------------------------


def test_metrics_dict_names_and_functions():
    assert set(METRICS) == set(NAMES)
    assert METRICS["recall"] is recall
    assert METRICS["ndcg"] is ndcg
    assert METRICS["precision"] is precision
    assert METRICS["hit_rate"] is hit_rate
    assert METRICS["mrr"] is mrr
    assert METRICS["map"] is average_precision


def test_hand_hits_at_1_and_3_of_4_relevant_k5():
    # Hits at ranks 1 and 3, |T| = 4, k = 5.
    rows, n_rel, k = [[1, 0, 1, 0, 0]], [4], 5
    # recall = 2 / 4
    assert _run("recall", rows, n_rel, k)[0] == pytest.approx(0.5)
    # precision = 2 / 5
    assert _run("precision", rows, n_rel, k)[0] == pytest.approx(0.4)
    # NDCG = (1/log2 2 + 1/log2 4) / (1/log2 2 + 1/log2 3 + 1/log2 4 + 1/log2 5)
    #   (IDCG over min(|T|, k) = 4 ranks)
    exp = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5))
    assert _run("ndcg", rows, n_rel, k)[0] == pytest.approx(exp, rel=1e-6)
    # hit rate = 1 (at least one hit)
    assert _run("hit_rate", rows, n_rel, k)[0] == 1.0
    # MRR = 1 / 1 (first hit at rank 1)
    assert _run("mrr", rows, n_rel, k)[0] == pytest.approx(1.0)
    # AP = (P@1 · 1 + P@3 · 1) / min(4, 5) = (1/1 + 2/3) / 4 = 5/12
    assert _run("map", rows, n_rel, k)[0] == pytest.approx(5 / 12)


def test_hand_hits_at_2_and_3_of_2_relevant_k3():
    # Hits at ranks 2 and 3, |T| = 2, k = 3.
    rows, n_rel, k = [[0, 1, 1]], [2], 3
    assert _run("recall", rows, n_rel, k)[0] == pytest.approx(1.0)  # 2 / 2
    assert _run("precision", rows, n_rel, k)[0] == pytest.approx(2 / 3)  # 2 / 3
    # NDCG = (1/log2 3 + 1/log2 4) / (1/log2 2 + 1/log2 3)
    exp = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert _run("ndcg", rows, n_rel, k)[0] == pytest.approx(exp, rel=1e-6)
    assert _run("hit_rate", rows, n_rel, k)[0] == 1.0
    assert _run("mrr", rows, n_rel, k)[0] == pytest.approx(0.5)  # first hit at rank 2
    # AP = (P@2 + P@3) / min(2, 3) = (1/2 + 2/3) / 2 = 7/12
    assert _run("map", rows, n_rel, k)[0] == pytest.approx(7 / 12)


def test_hand_more_relevant_than_k():
    # |T| = 10 > k. Hits at ranks 1 and 2 of a 3-long list.
    rows, n_rel = [[1, 1, 0]], [10]
    # k = 2: recall 2/10, precision 2/2, NDCG = DCG/IDCG over min(10, 2) = 2 ranks = 1,
    # AP = (1/1 + 2/2) / min(10, 2) = 1
    assert _run("recall", rows, n_rel, 2)[0] == pytest.approx(0.2)
    assert _run("precision", rows, n_rel, 2)[0] == pytest.approx(1.0)
    assert _run("ndcg", rows, n_rel, 2)[0] == pytest.approx(1.0)
    assert _run("map", rows, n_rel, 2)[0] == pytest.approx(1.0)
    assert _run("mrr", rows, n_rel, 2)[0] == pytest.approx(1.0)
    # k = 3: precision 2/3, NDCG = (1 + 1/log2 3) / (1 + 1/log2 3 + 1/log2 4),
    # AP = (1 + 1) / min(10, 3) = 2/3
    assert _run("precision", rows, n_rel, 3)[0] == pytest.approx(2 / 3)
    exp = (1 + 1 / math.log2(3)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert _run("ndcg", rows, n_rel, 3)[0] == pytest.approx(exp, rel=1e-6)
    assert _run("map", rows, n_rel, 3)[0] == pytest.approx(2 / 3)


def test_hand_no_hits_gives_zero_everywhere():
    rows, n_rel = [[0, 0, 0, 0]], [3]
    for name in NAMES:
        for k in (1, 2, 4):
            assert _run(name, rows, n_rel, k)[0] == 0.0, (name, k)


def test_hand_k_equals_1():
    # Row 0: hit at rank 1, |T| = 3. Row 1: first hit at rank 2, |T| = 1.
    rows, n_rel, k = [[1, 0, 1], [0, 1, 0]], [3, 1], 1
    assert _run("recall", rows, n_rel, k) == pytest.approx([1 / 3, 0.0])
    assert _run("precision", rows, n_rel, k) == pytest.approx([1.0, 0.0])
    assert _run("ndcg", rows, n_rel, k) == pytest.approx([1.0, 0.0])
    assert _run("hit_rate", rows, n_rel, k) == pytest.approx([1.0, 0.0])
    assert _run("mrr", rows, n_rel, k) == pytest.approx([1.0, 0.0])
    # AP@1 = P@1 · rel_1 / min(|T|, 1) = 1 for row 0
    assert _run("map", rows, n_rel, k) == pytest.approx([1.0, 0.0])


def test_hand_hits_beyond_k_are_ignored():
    # The only hit is at rank 4; with k = 3 every metric is 0, with k = 4 it counts.
    rows, n_rel = [[0, 0, 0, 1, 0]], [2]
    for name in NAMES:
        assert _run(name, rows, n_rel, 3)[0] == 0.0, name
    assert _run("mrr", rows, n_rel, 4)[0] == pytest.approx(0.25)  # 1 / 4
    assert _run("recall", rows, n_rel, 4)[0] == pytest.approx(0.5)  # 1 / 2
    assert _run("precision", rows, n_rel, 5)[0] == pytest.approx(0.2)  # 1 / 5
    # NDCG@4 = (1/log2 5) / (1 + 1/log2 3)
    exp = (1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert _run("ndcg", rows, n_rel, 4)[0] == pytest.approx(exp, rel=1e-6)
    # AP@4 = (1/4) / min(2, 4)
    assert _run("map", rows, n_rel, 4)[0] == pytest.approx(1 / 8)


def test_hand_mrr_uses_first_hit_only():
    # hits at ranks 3 and 1 in different rows; later hits must not raise MRR
    rows, n_rel = [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], [3, 5]
    assert _run("mrr", rows, n_rel, 5) == pytest.approx([1 / 3, 1.0])


def test_hand_perfect_ranking_scores_one():
    # All |T| relevant items first: NDCG and AP are 1 at every k, recall 1 once k >= |T|.
    rows, n_rel = [[1, 1, 1, 0, 0, 0]], [3]
    for k in range(1, 7):
        assert _run("ndcg", rows, n_rel, k)[0] == pytest.approx(1.0), k
        assert _run("map", rows, n_rel, k)[0] == pytest.approx(1.0), k
        assert _run("recall", rows, n_rel, k)[0] == pytest.approx(min(k, 3) / 3), k


def test_hit_rate_is_user_level_not_hit_count():
    rows, n_rel = [[1, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], [4, 4, 4]
    assert _run("hit_rate", rows, n_rel, 4) == [1.0, 1.0, 0.0]
    assert _run("hit_rate", rows, n_rel, 3) == [1.0, 0.0, 0.0]


def test_output_dtype_follows_input():
    hits = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    n_rel = torch.tensor([2.0], dtype=torch.float64)
    for name in NAMES:
        out = METRICS[name](hits, n_rel, 3)
        assert out.dtype == torch.float64, name
        assert out.shape == (1,), name


# --------------------------------------------------------------------------------------------
# Random data against the reference.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_random_against_reference(seed, dtype):
    rng = np.random.default_rng(seed)
    n, k_max = 60, 12
    hits = (rng.random((n, k_max)) < rng.uniform(0.05, 0.6, size=(n, 1))).astype(np.int64)
    hits[0] = 0  # a user without any hit
    hits[1] = 1  # a user with hits everywhere
    # |T_u| must be at least the number of hits in the list; add some unretrieved items.
    n_rel = np.maximum(hits.sum(1), 1) + rng.integers(0, 6, size=n)
    n_rel[2] = 1
    n_rel[3] = 40  # far more relevant items than any k
    hits_t = torch.tensor(hits, dtype=dtype)
    n_rel_t = torch.tensor(n_rel, dtype=dtype)
    for name in NAMES:
        for k in (1, 2, 3, 5, 10, 12):
            got = METRICS[name](hits_t, n_rel_t, k)
            assert got.shape == (n,)
            exp = [reference_metric(name, list(hits[u]), int(n_rel[u]), k) for u in range(n)]
            np.testing.assert_allclose(
                got.double().numpy(), exp, rtol=1e-6, atol=1e-7, err_msg=f"{name}@{k}"
            )
