"""Top-k ranking, hit matrix and Evaluator against brute force and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sslrec.data.interactions import Interactions, pairs_to_csr
from sslrec.evaluation.ranker import Evaluator, _chunked_top_k, hit_matrix, rank_top_k, top_k
from sslrec.evaluation.scoring import InnerProductScorer
from tests.test_metrics import NAMES, reference_metric

# --------------------------------------------------------------------------------------------
# Helpers and slow references (numpy / Python sets only).
# --------------------------------------------------------------------------------------------


def _embeddings(rng: np.random.Generator, n_users: int, n_items: int, d: int = 6):
    """float32 embeddings whose float64 scores are far apart for every user (no near-ties)."""
    u = rng.standard_normal((n_users, d)).astype(np.float32)
    i = rng.standard_normal((n_items, d)).astype(np.float32)
    scores = u.astype(np.float64) @ i.astype(np.float64).T
    gaps = np.diff(np.sort(scores, axis=1), axis=1)
    # Precondition: float32 rounding (~1e-6 here) cannot reorder any two items.
    assert gaps.min() > 1e-5, "pick another seed: near-tied scores"
    return torch.from_numpy(u), torch.from_numpy(i), scores


def _sets_to_csr(sets: list[set[int]], n_items: int) -> sp.csr_matrix:
    users = [u for u, s in enumerate(sets) for _ in s]
    items = [i for s in sets for i in sorted(s)]
    return pairs_to_csr(
        np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64), len(sets), n_items
    )


def brute_top_k(scores: np.ndarray, users, excluded: list[set[int]], k: int) -> np.ndarray:
    """Per user: drop excluded items, sort the rest by descending float64 score, keep k."""
    out = []
    for u in users:
        cand = [i for i in range(scores.shape[1]) if i not in excluded[u]]
        cand.sort(key=lambda i: -scores[u, i])
        out.append(cand[:k])
    return np.asarray(out, dtype=np.int64)


def brute_hits(ranked: np.ndarray, users, targets: list[set[int]]) -> np.ndarray:
    out = np.zeros(ranked.shape)
    for j, u in enumerate(users):
        for r in range(ranked.shape[1]):
            if int(ranked[j, r]) in targets[u]:
                out[j, r] = 1.0
    return out


def reference_evaluate(
    scores: np.ndarray,
    train: list[set[int]],
    valid: list[set[int]],
    test: list[set[int]],
    split: str,
    ks,
    names=NAMES,
) -> dict[str, float]:
    target = valid if split == "valid" else test
    excluded = train if split == "valid" else [a | b for a, b in zip(train, valid, strict=True)]
    users = [u for u in range(len(train)) if target[u] and train[u]]
    ranked = brute_top_k(scores, users, excluded, max(ks))
    out = {}
    for name in names:
        for k in ks:
            vals = []
            for j, u in enumerate(users):
                rel = [1 if int(i) in target[u] else 0 for i in ranked[j]]
                vals.append(reference_metric(name, rel, len(target[u]), k))
            out[f"{name}@{k}"] = sum(vals) / len(vals)
    return out


def _random_splits(rng: np.random.Generator, n_users: int, n_items: int):
    """Disjoint per-user train/valid/test sets, with a few users forced into edge cases."""
    train, valid, test = [], [], []
    for u in range(n_users):
        perm = [int(x) for x in rng.permutation(n_items)]
        a, b, c = int(rng.integers(1, 6)), int(rng.integers(0, 4)), int(rng.integers(1, 4))
        if u == 0:  # no train items: never evaluated
            a = 0
        elif u == 1:  # train and test, no valid
            b = 0
        elif u == 2:  # train and valid, no test
            c = 0
        elif u == 3:  # nothing at all
            a = b = c = 0
        train.append(set(perm[:a]))
        valid.append(set(perm[a : a + b]))
        test.append(set(perm[a + b : a + b + c]))
    return train, valid, test


def _interactions(train, valid, test, n_items: int) -> Interactions:
    return Interactions(
        name="tiny",
        n_users=len(train),
        n_items=n_items,
        train=_sets_to_csr(train, n_items),
        valid=_sets_to_csr(valid, n_items),
        test=_sets_to_csr(test, n_items),
    )


# --------------------------------------------------------------------------------------------
# top_k
# --------------------------------------------------------------------------------------------


def _top_k_case(seed: int):
    rng = np.random.default_rng(seed)
    n_users, n_items = 30, 40
    user_emb, item_emb, scores = _embeddings(rng, n_users, n_items)
    # Exclude some random items and, adversarially, each user's 3 best-scoring items, so that
    # forgetting the mask would change the answer.
    excluded = []
    for u in range(n_users):
        s = {int(i) for i in np.flatnonzero(rng.random(n_items) < 0.2)}
        s |= {int(i) for i in np.argsort(-scores[u])[:3]}
        excluded.append(s)
    excluded[5] = set()  # a user with nothing masked
    users = rng.permutation(n_users)[:22].astype(np.int64)  # unsorted subset
    users[-1] = 5
    return user_emb, item_emb, scores, excluded, users


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [1, 7])
def test_top_k_matches_brute_force(seed, k):
    user_emb, item_emb, scores, excluded, users = _top_k_case(seed)
    exclude = _sets_to_csr(excluded, item_emb.shape[0])
    got = top_k(user_emb, item_emb, users, exclude, k, batch_size=4)
    assert got.dtype == torch.int64
    assert got.shape == (len(users), k)
    np.testing.assert_array_equal(got.numpy(), brute_top_k(scores, users, excluded, k))


def test_top_k_full_ranking_of_unmasked_items():
    # k = the smallest number of unmasked items of any user: every position is checked.
    user_emb, item_emb, scores, excluded, users = _top_k_case(2)
    n_items = item_emb.shape[0]
    k = min(n_items - len(excluded[u]) for u in users)
    got = top_k(user_emb, item_emb, users, _sets_to_csr(excluded, n_items), k, batch_size=5)
    np.testing.assert_array_equal(got.numpy(), brute_top_k(scores, users, excluded, k))


def test_top_k_masked_items_never_appear():
    user_emb, item_emb, scores, excluded, users = _top_k_case(3)
    n_items = item_emb.shape[0]
    k = min(n_items - len(excluded[u]) for u in users)
    got = top_k(user_emb, item_emb, users, _sets_to_csr(excluded, n_items), k, batch_size=3)
    for j, u in enumerate(users):
        row = [int(i) for i in got[j]]
        assert len(set(row)) == k  # no repeated item
        assert not set(row) & excluded[u], (u, row)


def test_top_k_batch_size_does_not_matter():
    user_emb, item_emb, _, excluded, users = _top_k_case(4)
    exclude = _sets_to_csr(excluded, item_emb.shape[0])
    results = [top_k(user_emb, item_emb, users, exclude, 6, batch_size=b) for b in (1, 3, 1000)]
    for r in results[1:]:
        assert torch.equal(r, results[0])


@pytest.mark.parametrize("tile", [1, 3, 7, 10_000])
@pytest.mark.parametrize("k", [1, 7])
def test_item_tiled_top_k_matches_brute_force(tile, k):
    """Tiles of items merged into a running top-k rank exactly as whole rows do."""
    user_emb, item_emb, scores, excluded, users = _top_k_case(6)
    exclude = _sets_to_csr(excluded, item_emb.shape[0])
    scorer = InnerProductScorer(user_emb, item_emb)
    got = rank_top_k(scorer, users, exclude, k, batch_size=4, item_tile=tile)
    np.testing.assert_array_equal(got.numpy(), brute_top_k(scores, users, excluded, k))


def test_item_tiled_top_k_when_a_user_has_fewer_unmasked_items_than_k():
    user_emb, item_emb, scores, excluded, users = _top_k_case(7)
    n_items = item_emb.shape[0]
    k = min(n_items - len(excluded[u]) for u in users) + 2  # the last places are masked
    exclude = _sets_to_csr(excluded, n_items)
    scorer = InnerProductScorer(user_emb, item_emb)
    got = rank_top_k(scorer, users, exclude, k, batch_size=5, item_tile=4)
    for j, u in enumerate(users):
        row = got[j].tolist()
        assert len(set(row)) == k
        unmasked = [i for i in row if i not in excluded[u]]
        assert unmasked == row[: len(unmasked)]  # real items first, best first
        assert unmasked == list(brute_top_k(scores, [u], excluded, len(unmasked))[0])


def test_top_k_without_mask_is_plain_sort():
    rng = np.random.default_rng(5)
    user_emb, item_emb, scores = _embeddings(rng, 7, 11)
    users = np.arange(7, dtype=np.int64)
    empty = sp.csr_matrix((7, 11), dtype=np.float32)
    got = top_k(user_emb, item_emb, users, empty, 11, batch_size=2)
    np.testing.assert_array_equal(got.numpy(), np.argsort(-scores, axis=1))


def test_top_k_hand_case_and_repeated_users():
    # One-dimensional embeddings: user 0 likes large item values, user 1 small ones.
    user_emb = torch.tensor([[1.0], [-1.0]])
    item_emb = torch.tensor([[0.5], [3.0], [-2.0], [1.0], [2.0]])
    # user 0 scores: [0.5, 3, -2, 1, 2]; item 1 masked -> 4 (2), 3 (1), 0 (0.5)
    # user 1 scores: [-0.5, -3, 2, -1, -2]; item 2 masked -> 0 (-0.5), 3 (-1), 4 (-2)
    exclude = _sets_to_csr([{1}, {2}], 5)
    users = np.array([1, 0, 1], dtype=np.int64)
    got = top_k(user_emb, item_emb, users, exclude, 3, batch_size=2)
    assert got.tolist() == [[0, 3, 4], [4, 3, 0], [0, 3, 4]]


# --------------------------------------------------------------------------------------------
# hit_matrix
# --------------------------------------------------------------------------------------------


def test_hit_matrix_hand_case():
    # target: user 0 -> {4}, user 1 -> {2, 4}, user 2 -> {}.
    target = _sets_to_csr([{4}, {2, 4}, set()], 5)
    ranked = torch.tensor([[4, 0, 2], [4, 0, 2], [4, 0, 2], [2, 3, 1]])
    users = np.array([1, 0, 2, 1], dtype=np.int64)
    got = hit_matrix(ranked, users, target)
    assert got.dtype == torch.float32
    assert got.tolist() == [[1, 0, 1], [1, 0, 0], [0, 0, 0], [1, 0, 0]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hit_matrix_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 25, 30, 8
    targets = [{int(i) for i in np.flatnonzero(rng.random(n_items) < 0.25)} for _ in range(n_users)]
    targets[0] = set()
    targets[n_users - 1] |= {n_items - 1}  # largest possible key
    users = rng.permutation(n_users).astype(np.int64)
    ranked = np.stack([rng.permutation(n_items)[:k] for _ in users])
    # plant each user's largest target item (if not ranked already) so that hits are common
    for j, u in enumerate(users):
        if targets[u] and max(targets[u]) not in ranked[j]:
            ranked[j, int(rng.integers(k))] = max(targets[u])
    got = hit_matrix(torch.from_numpy(ranked), users, _sets_to_csr(targets, n_items))
    exp = brute_hits(ranked, users, targets)
    assert exp.sum() > 0 and (1 - exp).sum() > 0
    np.testing.assert_array_equal(got.numpy(), exp)


def test_hit_matrix_empty_target_is_all_zero():
    target = sp.csr_matrix((3, 4), dtype=np.float32)
    ranked = torch.tensor([[0, 1], [3, 2]])
    got = hit_matrix(ranked, np.array([0, 2], dtype=np.int64), target)
    assert got.tolist() == [[0.0, 0.0], [0.0, 0.0]]


# --------------------------------------------------------------------------------------------
# Evaluator
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("split", ["valid", "test"])
@pytest.mark.parametrize("batch_size", [1, 1000])
def test_evaluator_matches_reference(seed, split, batch_size):
    rng = np.random.default_rng(seed)
    n_users, n_items = 16, 24
    train, valid, test = _random_splits(rng, n_users, n_items)
    data = _interactions(train, valid, test, n_items)
    user_emb, item_emb, scores = _embeddings(rng, n_users, n_items)
    ks = (1, 3, 5)
    got = Evaluator(data, ks=ks, batch_size=batch_size).evaluate(user_emb, item_emb, split)
    exp = reference_evaluate(scores, train, valid, test, split, ks)
    assert set(got) == set(exp) == {f"{n}@{k}" for n in NAMES for k in ks}
    for key, value in exp.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


def test_evaluator_valid_and_test_differ_in_mask():
    # The reference for 'test' masks valid items; evaluating 'test' with only train masked
    # must give a different answer on this data, so the mask is really exercised.
    rng = np.random.default_rng(0)
    n_users, n_items = 16, 24
    train, valid, test = _random_splits(rng, n_users, n_items)
    data = _interactions(train, valid, test, n_items)
    user_emb, item_emb, scores = _embeddings(rng, n_users, n_items)
    got = Evaluator(data, ks=(1, 3, 5)).evaluate(user_emb, item_emb, "test")
    wrong = reference_evaluate(scores, train, [set()] * n_users, test, "test", (1, 3, 5))
    right = reference_evaluate(scores, train, valid, test, "test", (1, 3, 5))
    assert wrong != pytest.approx(right)
    assert got == pytest.approx(right, rel=1e-5)


def test_evaluator_hand_case_user_filter_and_valid_mask():
    # Scores are item-id ordered for everybody: item 0 > 1 > 2 > 3 > 4.
    user_emb = torch.ones(3, 1)
    item_emb = torch.tensor([[5.0], [4.0], [3.0], [2.0], [1.0]])
    train = [{3}, set(), {0}]
    valid = [{0}, set(), {1}]
    test = [{1}, {1}, set()]
    data = _interactions(train, valid, test, 5)
    ev = Evaluator(data, ks=(1, 3))
    # test: user 1 has no train item, user 2 no test item -> only user 0 is evaluated.
    # user 0 masks {3} (train) and {0} (valid) -> ranking [1, 2, 4], hit at rank 1.
    # (Including user 1, ranked [0, 1, 2] with its hit at rank 2, would give recall@1 = 0.5;
    # not masking valid would put item 0 first and give recall@1 = 0.)
    res = ev.evaluate(user_emb, item_emb, "test")
    assert res["recall@1"] == pytest.approx(1.0)
    assert res["ndcg@1"] == pytest.approx(1.0)
    assert res["mrr@3"] == pytest.approx(1.0)
    assert res["precision@3"] == pytest.approx(1 / 3)
    assert res["map@3"] == pytest.approx(1.0)
    # valid: users 0 and 2. user 0 masks {3} -> [0, 1, 2], valid {0} at rank 1;
    # user 2 masks {0} -> [1, 2, 3], valid {1} at rank 1.
    res = ev.evaluate(user_emb, item_emb, "valid")
    assert res["recall@1"] == pytest.approx(1.0)
    assert res["hit_rate@3"] == pytest.approx(1.0)
    # Swap user 2's valid item to 3 -> ranked [1, 2, 3], hit at rank 3:
    # mrr@3 = (1 + 1/3) / 2, ndcg@3 = (1 + 1/log2 4) / 2, recall@1 = 1/2.
    valid2 = [{0}, set(), {3}]
    train2 = [{3}, set(), {0}]
    test2 = [{1}, {1}, {2}]
    ev2 = Evaluator(_interactions(train2, valid2, test2, 5), ks=(1, 3))
    res = ev2.evaluate(user_emb, item_emb, "valid")
    assert res["recall@1"] == pytest.approx(0.5)
    assert res["mrr@3"] == pytest.approx((1 + 1 / 3) / 2)
    assert res["ndcg@3"] == pytest.approx((1 + 1 / math.log2(4)) / 2)


def test_evaluator_ks_sorted_and_metric_subset():
    rng = np.random.default_rng(3)
    train, valid, test = _random_splits(rng, 12, 20)
    data = _interactions(train, valid, test, 20)
    user_emb, item_emb, scores = _embeddings(rng, 12, 20)
    got = Evaluator(data, ks=(5, 1, 3), metrics=("ndcg", "mrr")).evaluate(
        user_emb, item_emb, "test"
    )
    exp = reference_evaluate(scores, train, valid, test, "test", (1, 3, 5), ("ndcg", "mrr"))
    assert set(got) == set(exp)
    assert got == pytest.approx(exp, rel=1e-5)


def test_evaluator_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    train, valid, test = _random_splits(rng, 8, 12)
    data = _interactions(train, valid, test, 12)
    with pytest.raises(ValueError, match="unknown metrics"):
        Evaluator(data, metrics=("recall", "auc"))
    ev = Evaluator(data, ks=(1,))
    with pytest.raises(ValueError, match="split"):
        ev.evaluate(torch.ones(8, 2), torch.ones(12, 2), "train")
    no_valid = _interactions(train, [set()] * 8, test, 12)
    with pytest.raises(ValueError, match="no user"):
        Evaluator(no_valid, ks=(1,)).evaluate(torch.ones(8, 2), torch.ones(12, 2), "valid")


def test_most_popular_hand_case():
    # Train popularity: item 0: 5, item 1: 4, item 2: 3, item 3: 2, item 4: 1, item 5: 0.
    train = [{0, 1, 2, 3, 4}, {0, 1, 2, 3}, {0, 1, 2}, {0, 1}, {0}]
    test = [set(), {4}, {4}, {3, 5}, {2}]
    data = _interactions(train, [set()] * 5, test, 6)
    res = Evaluator(data, ks=(1, 2)).most_popular("test")
    # Unseen items by popularity and the test items' ranks:
    #   user 1: [4, 5]           -> item 4 at rank 1              hits@2 [1, 0], |T| = 1
    #   user 2: [3, 4, 5]        -> item 4 at rank 2              hits@2 [0, 1], |T| = 1
    #   user 3: [2, 3, 4, 5]     -> item 3 at rank 2 (5 at 4)     hits@2 [0, 1], |T| = 2
    #   user 4: [1, 2, 3, 4, 5]  -> item 2 at rank 2              hits@2 [0, 1], |T| = 1
    # (user 0 has no test item.)
    inv3 = 1 / math.log2(3)
    expected = {
        "recall@1": (1 + 0 + 0 + 0) / 4,
        "recall@2": (1 + 1 + 0.5 + 1) / 4,
        "precision@1": 1 / 4,
        "precision@2": (0.5 * 4) / 4,
        "hit_rate@1": 1 / 4,
        "hit_rate@2": 1.0,
        "mrr@1": 1 / 4,
        "mrr@2": (1 + 0.5 + 0.5 + 0.5) / 4,
        "ndcg@1": 1 / 4,
        # user 3: DCG = 1/log2 3, IDCG over min(2, 2) ranks = 1 + 1/log2 3
        "ndcg@2": (1 + inv3 + inv3 / (1 + inv3) + inv3) / 4,
        "map@1": 1 / 4,
        # AP@2: user 1: 1/1; users 2, 4: (1/2)/1; user 3: (1/2)/2
        "map@2": (1 + 0.5 + 0.25 + 0.5) / 4,
    }
    assert set(res) == set(expected)
    for key, value in expected.items():
        assert res[key] == pytest.approx(value, rel=1e-6), key


def test_evaluator_rejects_cutoff_beyond_item_count():
    u, i = np.array([0, 1]), np.array([0, 1])
    csr = pairs_to_csr(u, i, 2, 3)
    data = Interactions("t", 2, 3, csr, pairs_to_csr(u, 2 - i, 2, 3), csr.copy())
    with pytest.raises(ValueError, match="only 3 items"):
        Evaluator(data, ks=(2, 5))


def test_bf16_evaluation_is_close_but_not_exact():
    """eval.precision=bf16 ranks with bfloat16 scores: nearly the same metrics, never claimed
    exact; fp32 stays the default and exact."""
    rng = np.random.default_rng(3)
    n_users, n_items = 30, 40
    user_emb, item_emb, _ = _embeddings(rng, n_users, n_items)
    train = _sets_to_csr(
        [set(rng.choice(n_items, 5, replace=False).tolist()) for _ in range(n_users)], n_items
    )
    test = _sets_to_csr(
        [
            set(rng.choice(n_items, 3, replace=False).tolist()) - set(train[u].indices.tolist())
            or {0}
            for u in range(n_users)
        ],
        n_items,
    )
    from sslrec.data.interactions import Interactions

    data = Interactions(
        "r", n_users, n_items, train, sp.csr_matrix((n_users, n_items), dtype=np.float32), test
    )
    exact = Evaluator(data, ks=(10,)).evaluate(user_emb, item_emb, "test")
    low = Evaluator(data, ks=(10,), precision="bf16").evaluate(user_emb, item_emb, "test")
    assert abs(low["recall@10"] - exact["recall@10"]) < 0.05
    with pytest.raises(ValueError, match="eval.precision"):
        Evaluator(data, precision="fp16")


def _chunk_cases():
    """Rows of random, heavily tied (small integers) and mostly masked scores."""
    gen = torch.Generator().manual_seed(3)
    for kind in ("random", "ties", "masked", "nan"):
        scores = torch.randn(9, 1000, generator=gen)
        if kind == "ties":
            scores = torch.randint(0, 4, (9, 1000), generator=gen).float()
        elif kind == "masked":
            scores[torch.rand(9, 1000, generator=gen) < 0.99] = -torch.inf
        elif kind == "nan":
            scores[2, 17] = torch.nan
        yield kind, scores


@pytest.mark.parametrize("chunk", [1, 7, 64])
@pytest.mark.parametrize("k", [1, 5, 40])
def test_chunked_top_k_equals_topk_over_whole_rows(chunk, k):
    """Chunk maxima select the same items in the same order as torch.topk, ties included
    (tied rows fall back to torch.topk on the row)."""
    for kind, scores in _chunk_cases():
        want = torch.topk(scores, k, dim=1, sorted=True).indices
        got = _chunked_top_k(scores.clone(), k, chunk=chunk)
        assert torch.equal(got, want), kind


def test_chunked_top_k_finds_items_in_the_ragged_tail_and_outside_the_first_chunks():
    scores = torch.zeros(2, 1000)
    scores[0, 999] = 5.0  # the tail past the last whole chunk of 64
    scores[0, 3], scores[0, 4] = 4.0, 3.0  # two winners in one chunk
    scores[1, 640:643] = torch.tensor([1.0, 2.0, 3.0])
    scores += torch.arange(1000) * 1e-6  # distinct values: no fallback
    got = _chunked_top_k(scores, 3)
    assert got[0].tolist() == [999, 3, 4]
    assert got[1].tolist() == [642, 641, 640]


@pytest.mark.parametrize("k", [1, 20])
def test_chunked_selection_ranks_as_full_selection(k):
    """rank_top_k's chunked path (reused score buffer, user sub-blocks) gives full's ranks,
    for the inner-product scorer and for another scorer."""
    gen = torch.Generator().manual_seed(5)
    n_users, n_items = 40, 3000
    user_emb = torch.randn(n_users, 8, generator=gen)
    item_emb = torch.randn(n_items, 8, generator=gen)
    item_emb[100:110] = item_emb[5]  # exact ties between items
    rng = np.random.default_rng(0)
    excluded = [set(rng.choice(n_items, 30, replace=False).tolist()) for _ in range(n_users)]
    exclude = _sets_to_csr(excluded, n_items)
    users = np.arange(n_users)

    class Scaled(InnerProductScorer):  # a scorer that is not the plain inner product
        def full_scores(self, users, out=None):
            return 2.0 * super().full_scores(users)

    for scorer in (InnerProductScorer(user_emb, item_emb), Scaled(user_emb, item_emb)):
        full = rank_top_k(scorer, users, exclude, k, batch_size=16, selection="full")
        chunked = rank_top_k(scorer, users, exclude, k, batch_size=16, selection="chunked")
        assert torch.equal(chunked, full)
    # the chunk path ran (3000 items = 46 chunks of 64 > k + 1) and met the tied items
    assert any(5 not in excluded[u] for u in users)


def test_chunked_selection_metrics_equal_full_selection(lastfm):
    """On lastfm (4,489 items: 70 chunks > k + 1 = 51), every metric bit for bit."""
    gen = torch.Generator().manual_seed(0)
    user_emb = torch.randn(lastfm.n_users, 16, generator=gen)
    item_emb = torch.randn(lastfm.n_items, 16, generator=gen)
    for split in ("valid", "test"):
        full = Evaluator(lastfm, selection="full").evaluate(user_emb, item_emb, split)
        chunked = Evaluator(lastfm, selection="chunked").evaluate(user_emb, item_emb, split)
        assert chunked == full
    with pytest.raises(ValueError, match="eval.selection"):
        Evaluator(lastfm, selection="heap")
