"""BPR sampler: negatives avoid train positives, epoch protocols, batching, seeding, input checks.

Statistical checks use a fixed seed, so they are deterministic; their thresholds are loose
enough for a correct sampler and are shown (``test_*_would_catch_*``) to reject a wrong one.
"""

from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import chisquare

from sslrec.data import BPRSampler
from tests.reference import triples

N_USERS, N_ITEMS = 40, 15


def epoch_arrays(sampler: BPRSampler) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    batches = list(triples(sampler))
    return tuple(np.concatenate([b[k].numpy() for b in batches]) for k in range(3))


def pair_counter(users: np.ndarray, items: np.ndarray) -> Counter:
    return Counter(zip(users.tolist(), items.tolist(), strict=True))


# -- negatives -------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["interaction", "user_uniform"])
def test_negatives_are_never_train_positives(dense_train, protocol):
    dense = dense_train.toarray() > 0
    sampler = BPRSampler(dense_train, 97, protocol, seed=1)
    n_checked = 0
    for _ in range(8):
        for users, pos, neg in triples(sampler):
            u, p, n = users.numpy(), pos.numpy(), neg.numpy()
            assert ((n >= 0) & (n < N_ITEMS)).all()
            assert dense[u, p].all()
            assert not dense[u, n].any()
            n_checked += len(u)
    assert n_checked == 8 * dense_train.nnz


def test_rejection_is_exercised(dense_train):
    """Sanity check of the fixture: without rejection, most draws would be positives."""
    users = np.repeat(np.arange(N_USERS), 50)
    rng = np.random.default_rng(0)
    raw = rng.integers(0, N_ITEMS, size=len(users))
    assert (dense_train.toarray()[users, raw] > 0).mean() > 0.5


def test_only_negative_is_always_found(dense_train):
    sampler = BPRSampler(dense_train, 64, seed=2)
    negs = sampler.sample_negatives(np.zeros(5000, dtype=np.int64))
    assert (negs == 7).all()


def test_negatives_uniform_over_the_users_non_items(dense_train):
    sampler = BPRSampler(dense_train, 64, seed=3)
    user = 5
    allowed = np.flatnonzero(dense_train.toarray()[user] == 0)
    assert 2 <= len(allowed) < N_ITEMS - 2
    negs = sampler.sample_negatives(np.full(20000, user, dtype=np.int64))
    counts = np.bincount(negs, minlength=N_ITEMS)
    assert counts.sum() == counts[allowed].sum()
    assert chisquare(counts[allowed]).pvalue > 1e-3


def test_user_without_train_items_gets_any_item(dense_train):
    sampler = BPRSampler(dense_train, 64, seed=4)
    negs = sampler.sample_negatives(np.ones(3000, dtype=np.int64))  # user 1 has no items
    assert set(negs.tolist()) == set(range(N_ITEMS))


def test_is_positive_matches_the_matrix(dense_train):
    sampler = BPRSampler(dense_train, 64)
    users, items = np.meshgrid(np.arange(N_USERS), np.arange(N_ITEMS), indexing="ij")
    got = sampler.is_positive(users.ravel(), items.ravel()).reshape(N_USERS, N_ITEMS)
    np.testing.assert_array_equal(got, dense_train.toarray() > 0)


@pytest.mark.parametrize("fmt", ["unsorted_csr", "csc", "coo"])
def test_other_sparse_layouts_give_correct_negatives(dense_train, fmt):
    """The sampler's positive lookup needs sorted CSR rows; other layouts must not break it."""
    if fmt == "unsorted_csr":
        rows = [
            dense_train.indices[a:b][::-1]
            for a, b in zip(dense_train.indptr[:-1], dense_train.indptr[1:], strict=True)
        ]
        train = sp.csr_matrix(
            (np.ones(dense_train.nnz, np.float32), np.concatenate(rows), dense_train.indptr),
            shape=dense_train.shape,
        )
        assert not train.has_sorted_indices
    else:
        train = dense_train.asformat(fmt)
    dense = dense_train.toarray() > 0
    sampler = BPRSampler(train, 64, seed=5)
    assert (sampler.n_users, sampler.n_items) == (N_USERS, N_ITEMS)
    for users, pos, neg in triples(sampler):
        assert dense[users.numpy(), pos.numpy()].all()
        assert not dense[users.numpy(), neg.numpy()].any()
    assert pair_counter(*epoch_arrays(sampler)[:2]) == pair_counter(*dense_train.nonzero())


# -- 'interaction' protocol ------------------------------------------------------------------
def test_interaction_protocol_visits_each_pair_exactly_once(dense_train):
    sampler = BPRSampler(dense_train, 64, "interaction", seed=6)
    expected = pair_counter(*dense_train.nonzero())
    assert set(expected.values()) == {1}
    orders = []
    for _ in range(4):
        users, pos, _neg = epoch_arrays(sampler)
        assert len(users) == dense_train.nnz
        assert pair_counter(users, pos) == expected
        assert 1 not in set(users.tolist())  # the user with no items never appears
        orders.append(users * N_ITEMS + pos)
    # each epoch is freshly shuffled
    assert not any((orders[0] == o).all() for o in orders[1:])


def test_interaction_protocol_is_shuffled_not_sorted(dense_train):
    users, pos, _ = epoch_arrays(BPRSampler(dense_train, 1000, "interaction", seed=7))
    keys = users * N_ITEMS + pos
    assert (np.diff(keys) < 0).sum() > len(keys) // 4


# -- 'user_uniform' protocol -----------------------------------------------------------------
@pytest.fixture(scope="module")
def skewed_train() -> sp.csr_matrix:
    """Users with very different degrees (1 … 30 of 40 items) and two users with none."""
    degrees = [1, 0, 2, 5, 10, 20, 0, 30]
    rng = np.random.default_rng(1)
    dense = np.zeros((len(degrees), 40), dtype=np.float32)
    for u, d in enumerate(degrees):
        dense[u, rng.choice(40, size=d, replace=False)] = 1
    return sp.csr_matrix(dense)


def user_counts(sampler: BPRSampler, n_epochs: int) -> tuple[np.ndarray, list]:
    counts = np.zeros(sampler.n_users)
    draws = []
    for _ in range(n_epochs):
        users, pos = sampler.epoch_pairs()
        counts += np.bincount(users, minlength=sampler.n_users)
        draws.append((users, pos))
    return counts, draws


def test_user_uniform_positives_are_true_positives(skewed_train, dense_train):
    for train in (skewed_train, dense_train):
        dense = train.toarray() > 0
        sampler = BPRSampler(train, 50, "user_uniform", seed=8)
        for _ in range(20):
            users, pos, neg = epoch_arrays(sampler)
            assert len(users) == train.nnz  # an epoch is n_train draws
            assert dense[users, pos].all()
            assert not dense[users, neg].any()


def test_user_uniform_users_only_from_users_with_items(skewed_train):
    sampler = BPRSampler(skewed_train, 50, "user_uniform", seed=9)
    counts, _ = user_counts(sampler, 300)
    active = np.diff(skewed_train.indptr) > 0
    assert (counts[~active] == 0).all()
    assert (counts[active] > 0).all()


def test_user_uniform_users_are_drawn_uniformly(skewed_train):
    sampler = BPRSampler(skewed_train, 50, "user_uniform", seed=10)
    counts, _ = user_counts(sampler, 500)  # 500 · 68 = 34,000 draws over 6 users
    active = np.diff(skewed_train.indptr) > 0
    assert chisquare(counts[active]).pvalue > 1e-3
    share = counts[active] / counts.sum()
    # std of each share ≈ √(⅙·⅚/34000) ≈ 0.002; 0.01 is ~5σ
    np.testing.assert_allclose(share, 1 / 6, atol=0.01)


def test_user_uniformity_check_would_catch_interaction_sampling(skewed_train):
    """The same check rejects draws proportional to degree (the 'interaction' protocol)."""
    sampler = BPRSampler(skewed_train, 50, "interaction", seed=10)
    counts, _ = user_counts(sampler, 500)
    active = np.diff(skewed_train.indptr) > 0
    assert chisquare(counts[active]).pvalue < 1e-12


def test_user_uniform_positive_is_uniform_among_the_users_items(skewed_train):
    sampler = BPRSampler(skewed_train, 50, "user_uniform", seed=11)
    _, draws = user_counts(sampler, 500)
    users = np.concatenate([d[0] for d in draws])
    pos = np.concatenate([d[1] for d in draws])
    user = 5  # 20 items
    items = skewed_train.indices[skewed_train.indptr[user] : skewed_train.indptr[user + 1]]
    counts = np.bincount(pos[users == user], minlength=40)
    assert counts.sum() == counts[items].sum()
    assert chisquare(counts[items]).pvalue > 1e-3


# -- batching --------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["interaction", "user_uniform"])
@pytest.mark.parametrize("batch_size", [1, 7, 64, 100_000])
def test_batch_sizes(dense_train, protocol, batch_size):
    n = dense_train.nnz
    sampler = BPRSampler(dense_train, batch_size, protocol, seed=12)
    batches = list(triples(sampler))
    assert len(sampler) == len(batches) == -(-n // batch_size)
    sizes = [len(b[0]) for b in batches]
    assert sizes[:-1] == [batch_size] * (len(batches) - 1)
    assert sizes[-1] == n - batch_size * (len(batches) - 1)
    assert sum(sizes) == n
    for users, pos, neg in batches:
        for t in (users, pos, neg):
            assert isinstance(t, torch.Tensor) and t.dtype == torch.int64 and t.dim() == 1
        assert users.shape == pos.shape == neg.shape


# -- seeding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["interaction", "user_uniform"])
def test_same_seed_same_epochs(dense_train, protocol):
    a = BPRSampler(dense_train, 33, protocol, seed=13)
    b = BPRSampler(dense_train, 33, protocol, seed=13)
    for _ in range(3):
        for x, y in zip(epoch_arrays(a), epoch_arrays(b), strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("protocol", ["interaction", "user_uniform"])
def test_different_seed_different_epochs(dense_train, protocol):
    a = epoch_arrays(BPRSampler(dense_train, 33, protocol, seed=14))
    b = epoch_arrays(BPRSampler(dense_train, 33, protocol, seed=15))
    assert not (a[0] == b[0]).all()
    assert not (a[2] == b[2]).all()


# -- input checks ----------------------------------------------------------------------------
def test_user_with_every_item_is_rejected():
    train = sp.csr_matrix(np.array([[1, 0, 1], [1, 1, 1], [0, 0, 0]], dtype=np.float32))
    with pytest.raises(ValueError, match="user 1 interacted with every item"):
        BPRSampler(train, 4)
    with pytest.raises(ValueError, match="no negative can be drawn"):
        BPRSampler(train, 4, "user_uniform")


def test_user_with_all_but_one_item_is_accepted():
    train = sp.csr_matrix(np.array([[1, 0, 1], [1, 1, 0]], dtype=np.float32))
    sampler = BPRSampler(train, 4)
    assert sampler.sample_negatives(np.array([0, 1, 0, 1])).tolist() == [1, 2, 1, 2]


def test_unknown_protocol():
    with pytest.raises(ValueError, match="protocol must be 'interaction' or 'user_uniform'"):
        BPRSampler(sp.csr_matrix(np.eye(3, dtype=np.float32)), 4, "popularity")


# -- k negatives and the popularity proposal -------------------------------------------------
def test_one_negative_keeps_the_epoch_stream(dense_train):
    """k = 1 draws the whole epoch's negatives at once, right after its pairs (the stream every
    run so far was seeded with)."""
    a, b = BPRSampler(dense_train, 33, seed=21), BPRSampler(dense_train, 33, seed=21)
    users, pos, neg = epoch_arrays(a)
    u2, p2 = b.epoch_pairs()
    np.testing.assert_array_equal(users, u2)
    np.testing.assert_array_equal(neg, b.sample_negatives(u2))


@pytest.mark.parametrize("protocol", ["interaction", "user_uniform"])
def test_k_negatives_per_positive(dense_train, protocol):
    dense = dense_train.toarray() > 0
    sampler = BPRSampler(dense_train, 50, protocol, seed=22, num_negatives=6)
    seen = 0
    for batch in sampler.epoch():
        u, n = batch.users.numpy(), batch.neg.numpy()
        assert n.shape == (len(u), 6) and batch.neg.dtype == torch.int64
        assert not dense[u[:, None], n].any()
        assert batch.pos_log_q is None and batch.neg_log_q is None
        seen += len(u)
    assert seen == dense_train.nnz
    a, b = (BPRSampler(dense_train, 50, protocol, seed=22, num_negatives=6) for _ in range(2))
    for x, y in zip(a.epoch(), b.epoch(), strict=True):  # seeded: the same draws
        np.testing.assert_array_equal(x.neg.numpy(), y.neg.numpy())


def test_k_negatives_are_uniform_over_the_users_non_items(dense_train):
    user = 5
    allowed = np.flatnonzero(dense_train.toarray()[user] == 0)
    train = sp.csr_matrix(dense_train.toarray()[[user] * 2000])  # one user, many positives
    sampler = BPRSampler(train, 4096, seed=23, num_negatives=8)
    negs = np.concatenate([b.neg.numpy().ravel() for b in sampler.epoch()])
    counts = np.bincount(negs, minlength=N_ITEMS)
    assert counts.sum() == counts[allowed].sum()
    assert chisquare(counts[allowed]).pvalue > 1e-3


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_popularity_proposal_and_its_log_q(dense_train, alpha):
    """Negatives follow q(i) ∝ count(i)^α restricted to the user's untried items; log q is the
    proposal's, for pos and neg alike."""
    count = np.bincount(dense_train.indices, minlength=N_ITEMS).astype(float)
    q = count**alpha / (count**alpha).sum()
    sampler = BPRSampler(
        dense_train,
        64,
        seed=24,
        num_negatives=3,
        negative_sampling="popularity",
        popularity_exponent=alpha,
    )
    batch = next(iter(sampler.epoch()))
    np.testing.assert_allclose(batch.pos_log_q.numpy(), np.log(q[batch.pos.numpy()]))
    np.testing.assert_allclose(batch.neg_log_q.numpy(), np.log(q[batch.neg.numpy()]))
    user = 1  # no training items: every item is allowed, drawn with probability q
    negs = sampler.sample_negatives(np.full(40000, user, dtype=np.int64))
    counts = np.bincount(negs, minlength=N_ITEMS)
    assert chisquare(counts, 40000 * q).pvalue > 1e-3
    uniform = np.full(N_ITEMS, 40000 / N_ITEMS)
    assert chisquare(counts, uniform).pvalue < 1e-6  # the check tells popularity from uniform


def test_popularity_never_proposes_untrained_items_and_refuses_a_stuck_user():
    train = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32))
    sampler = BPRSampler(train, 8, negative_sampling="popularity")
    # items 2 and 3 have no interaction: probability 0; each user's only option is the other
    assert set(sampler.sample_negatives(np.zeros(500, dtype=np.int64)).tolist()) == {1}
    assert set(sampler.sample_negatives(np.ones(500, dtype=np.int64)).tolist()) == {0}
    stuck = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0]], dtype=np.float32))
    with pytest.raises(ValueError, match="user 0: every item it has not trained on"):
        BPRSampler(stuck, 8, negative_sampling="popularity")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_negatives": 0}, "num_negatives must be at least 1"),
        ({"negative_sampling": "hard"}, "negative_sampling must be 'uniform' or 'popularity'"),
    ],
)
def test_bad_negative_options(dense_train, kwargs, match):
    with pytest.raises(ValueError, match=match):
        BPRSampler(dense_train, 4, **kwargs)
