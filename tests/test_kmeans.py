"""k-means (faiss defaults, in torch) against a numpy Lloyd reference and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslrec.models.kmeans import (
    SPLIT_EPS,
    kmeans,
    lloyd_step,
    nearest_centroid,
    split_empty_clusters,
)


def numpy_lloyd(x: np.ndarray, init: np.ndarray, niter: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain Lloyd in float64: ``niter`` (assign, mean) rounds from ``init``, then the final
    assignment of every point; fails on an empty cluster (the cases below have none)."""
    c = init.astype(np.float64).copy()
    for _ in range(niter):
        d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        a = d.argmin(1)
        for j in range(len(c)):
            members = x[a == j]
            assert len(members), "the reference does not split empty clusters"
            c[j] = members.mean(0)
    d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    return c, d.argmin(1)


def blobs(seed: int, n_per: int, centers: np.ndarray, scale: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([c + scale * rng.standard_normal((n_per, len(c))) for c in centers])


@pytest.mark.parametrize("k", [2, 3, 5])
def test_kmeans_equals_numpy_lloyd_from_the_same_initial_points(k):
    x_np = blobs(0, 20, np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 5.0, -2.0]]), 1.0)
    x = torch.from_numpy(x_np)  # float64: the comparison is then exact up to summation order
    torch.manual_seed(7)
    got = kmeans(x, k, niter=25)
    torch.manual_seed(7)
    init = torch.randperm(len(x_np))[:k].numpy()  # the draw kmeans makes (no subset: n < 256k)
    ref_c, ref_a = numpy_lloyd(x_np, x_np[init], 25)
    np.testing.assert_allclose(got.centroids.numpy(), ref_c, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(got.assignments.numpy(), ref_a)


def test_kmeans_float32_default_iterations_on_separated_blobs():
    centers = np.array([[10.0, 0.0], [-10.0, 0.0], [0.0, 10.0]])
    x = torch.from_numpy(blobs(1, 30, centers, 0.5)).float()
    torch.manual_seed(3)
    out = kmeans(x, 3)
    assert out.centroids.shape == (3, 2) and out.centroids.dtype == torch.float32
    # each blob is one cluster, whatever the labels
    labels = out.assignments.view(3, 30)
    assert all(len(set(row.tolist())) == 1 for row in labels)
    assert len({row[0].item() for row in labels}) == 3
    found = out.centroids[labels[:, 0]].double().numpy()
    np.testing.assert_allclose(found, blobs(1, 30, centers, 0.5).reshape(3, 30, 2).mean(1), 1e-5)


def test_nearest_centroid_by_hand_first_on_ties():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    c = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    # [1, 0] is equidistant: the first centroid wins, as argmin (and faiss' flat index) do
    assert nearest_centroid(x, c).tolist() == [0, 1, 0, 1]


def test_k_equal_to_or_above_n_gives_the_points_themselves():
    x = torch.randn(4, 3)
    for k in (4, 10):
        out = kmeans(x, k)
        assert torch.equal(out.centroids, x)
        assert out.assignments.tolist() == [0, 1, 2, 3]


def test_more_points_than_256_per_centroid_trains_on_a_random_subset():
    x = torch.randn(600, 2)
    torch.manual_seed(0)
    got = kmeans(x, 2, niter=3)
    torch.manual_seed(0)
    keep = torch.randperm(600)[:512]  # faiss: k · max_points_per_centroid points
    sub = x[keep]
    c = sub[torch.randperm(512)[:2]].clone()
    for _ in range(3):
        c = lloyd_step(sub, c)
    torch.testing.assert_close(got.centroids, c)
    # every point, not only the subset, is assigned to the final centroids
    assert torch.equal(got.assignments, nearest_centroid(x, c))


def test_an_empty_cluster_is_split_off_a_populated_one_as_faiss_does():
    # sizes h = [3, 0, 1], n = 4, k = 3: only cluster 0 can be drawn (p = (h - 1)/(n - k) = 2)
    c = torch.tensor([[1.0, 2.0, 3.0], [9.0, 9.0, 9.0], [-1.0, -1.0, -1.0]])
    h = torch.tensor([3.0, 0.0, 1.0])
    assert split_empty_clusters(c, h, 4, None) == 1
    e = SPLIT_EPS
    expected_new = torch.tensor([1 * (1 + e), 2 * (1 - e), 3 * (1 + e)])
    expected_old = torch.tensor([1 * (1 - e), 2 * (1 + e), 3 * (1 - e)])
    torch.testing.assert_close(c[1], expected_new)
    torch.testing.assert_close(c[0], expected_old)
    torch.testing.assert_close(h, torch.tensor([1.5, 1.5, 1.0]))


def test_lloyd_step_splits_a_cluster_left_empty():
    # centroid 2 is far from every point: after the assignment it is empty and gets re-seeded
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    c = torch.tensor([[0.0, 0.5], [10.0, 0.5], [100.0, 100.0]])
    torch.manual_seed(0)
    new = lloyd_step(x, c)
    assert torch.isfinite(new).all()
    assert not torch.equal(new[2], torch.tensor([100.0, 100.0]))
    assert torch.allclose(new[2], new[0], rtol=1e-2) or torch.allclose(new[2], new[1], rtol=1e-2)


def test_kmeans_seeded_from_torch_is_reproducible_and_refuses_nonsense():
    x = torch.randn(50, 4)
    torch.manual_seed(11)
    a = kmeans(x, 5)
    torch.manual_seed(11)
    b = kmeans(x, 5)
    assert torch.equal(a.centroids, b.centroids) and torch.equal(a.assignments, b.assignments)
    with pytest.raises(ValueError, match="k >= 1"):
        kmeans(x, 0)
    with pytest.raises(ValueError, match="non-empty"):
        kmeans(torch.empty(0, 4), 2)
