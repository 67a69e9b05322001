"""The device sampler (accelerators' path), run here on the CPU: the same guarantees as the
numpy sampler — negatives never train positives, the protocols' distributions, the popularity
proposal and its log q, k negatives — and a generator state that resumes the stream."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import chisquare

from sslrec.data.device_sampling import DeviceSampler
from tests.conftest import SAMPLER_ITEMS as N_ITEMS


def _epoch(sampler):
    batches = list(sampler.epoch())
    return [torch.cat([getattr(b, f) for b in batches]).numpy() for f in ("users", "pos", "neg")]


@pytest.mark.parametrize("protocol", ["interaction", "user_uniform"])
@pytest.mark.parametrize("k", [1, 5])
def test_negatives_are_never_positives_and_shapes(dense_train, protocol, k):
    dense = dense_train.toarray() > 0
    sampler = DeviceSampler(dense_train, 37, protocol, seed=1, num_negatives=k)
    users, pos, neg = _epoch(sampler)
    assert len(users) == dense_train.nnz and len(sampler) == -(-dense_train.nnz // 37)
    assert dense[users, pos].all()
    assert neg.shape == ((len(users),) if k == 1 else (len(users), k))
    assert not dense[users[:, None] if k > 1 else users, neg].any()


def test_interaction_protocol_visits_each_pair_once(dense_train):
    users, pos, _ = _epoch(DeviceSampler(dense_train, 50, seed=2))
    coo = dense_train.tocoo()
    assert Counter(zip(users.tolist(), pos.tolist(), strict=True)) == Counter(
        zip(coo.row.tolist(), coo.col.tolist(), strict=True)
    )


def test_negatives_uniform_over_the_users_non_items(dense_train):
    user = 5
    allowed = np.flatnonzero(dense_train.toarray()[user] == 0)
    sampler = DeviceSampler(dense_train, 64, seed=3)
    negs = sampler.sample_negatives(torch.full((20000,), user)).numpy()
    counts = np.bincount(negs, minlength=N_ITEMS)
    assert counts.sum() == counts[allowed].sum()
    assert chisquare(counts[allowed]).pvalue > 1e-3


def test_user_uniform_draws_users_uniformly(dense_train):
    users, _, _ = _epoch(DeviceSampler(dense_train, 64, "user_uniform", seed=4))
    active = np.flatnonzero(np.diff(dense_train.indptr) > 0)
    counts = np.bincount(users, minlength=dense_train.shape[0])
    assert counts.sum() == counts[active].sum()
    assert chisquare(counts[active]).pvalue > 1e-3


def test_popularity_proposal_and_log_q(dense_train):
    count = np.bincount(dense_train.indices, minlength=N_ITEMS).astype(float)
    q = count / count.sum()
    sampler = DeviceSampler(dense_train, 64, seed=5, negative_sampling="popularity")
    batch = next(iter(sampler.epoch()))
    np.testing.assert_allclose(batch.neg_log_q.numpy(), np.log(q[batch.neg.numpy()]), rtol=1e-6)
    negs = sampler.sample_negatives(torch.full((40000,), 1)).numpy()  # user 1: no items
    assert chisquare(np.bincount(negs, minlength=N_ITEMS), 40000 * q).pvalue > 1e-3


def test_seeded_and_resumable(dense_train):
    a = DeviceSampler(dense_train, 33, seed=6, num_negatives=2)
    b = DeviceSampler(dense_train, 33, seed=6, num_negatives=2)
    for x, y in zip(_epoch(a), _epoch(b), strict=True):
        np.testing.assert_array_equal(x, y)
    state = a.state()
    after = _epoch(a)
    b.load_state(state)
    for x, y in zip(after, _epoch(b), strict=True):
        np.testing.assert_array_equal(x, y)
    other = _epoch(DeviceSampler(dense_train, 33, seed=7, num_negatives=2))
    assert not np.array_equal(other[2], after[2])


def test_batch_by_batch_draws_above_the_epoch_limit(dense_train, monkeypatch):
    import sslrec.data.device_sampling as ds

    monkeypatch.setattr(ds, "EPOCH_DRAW_LIMIT", 10)
    dense = dense_train.toarray() > 0
    users, _, neg = _epoch(DeviceSampler(dense_train, 16, seed=8, num_negatives=3))
    assert neg.shape == (len(users), 3) and not dense[users[:, None], neg].any()


def test_input_checks():
    full = sp.csr_matrix(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="interacted with every item"):
        DeviceSampler(full, 4)
    eye = sp.csr_matrix(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="num_negatives"):
        DeviceSampler(eye, 4, num_negatives=0)
    with pytest.raises(ValueError, match="protocol"):
        DeviceSampler(eye, 4, "popularity")
