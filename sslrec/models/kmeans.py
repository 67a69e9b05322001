"""Euclidean k-means in torch, on the data's device, with faiss ``Kmeans``' defaults.

NCL's E-step calls ``faiss.Kmeans(d, k, gpu=True).train(x)`` with no other argument, so faiss'
``ClusteringParameters`` defaults decide the clustering (faiss/Clustering.cpp):

- ``niter = 25`` Lloyd iterations, ``nredo = 1``, not spherical (plain L2 on raw vectors);
- at most ``max_points_per_centroid = 256`` points per centroid are trained on: with
  ``n > 256·k`` a random subset of ``256·k`` points (NCL's gowalla setting, ``k = 10``);
- initialisation: ``k`` distinct training points drawn at random;
- an empty cluster is re-seeded by splitting a cluster ``j`` drawn with probability
  ``(h_j − 1) / (n − k)`` (``h_j`` its size): a copy of its centroid, the two pushed apart by
  ``±1/1024`` per coordinate, alternating in sign;
- ``n = k``: the centroids are the points; ``n < k`` is an error in faiss.

The random draws come from torch's CPU generator (the global one unless ``generator`` is
given), so a trainer that seeds and checkpoints torch redraws the same clustering on resume;
faiss' own Mersenne-Twister streams (seed 1234) are not reproduced. ``k > n`` is clamped to
``n`` here (every point its own centroid) instead of failing.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

#: faiss ``ClusteringParameters`` defaults
NITER = 25
MAX_POINTS_PER_CENTROID = 256
#: faiss' split perturbation, "a bit above machine epsilon for float16"
SPLIT_EPS = 1.0 / 1024.0
#: bytes of one block of the ``[rows, k]`` distances in the assignment step
_BLOCK_BYTES = 64 << 20


class KMeans(NamedTuple):
    """A clustering of ``n`` points into ``k`` clusters.

    Attributes:
        centroids: ``[k, d]`` (not normalised).
        assignments: ``[n]`` int64, each point's nearest centroid (L2) among the final ones.
    """

    centroids: torch.Tensor
    assignments: torch.Tensor


def nearest_centroid(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``[n]`` index of the L2-nearest of ``centroids`` ``[k, d]`` for each row of ``x`` ``[n, d]``
    (the first on ties), in row blocks of bounded memory.

    ``‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖²``, and ``‖x‖²`` does not change the argmin: one GEMM per
    block, as faiss' flat L2 index does for large batches.
    """
    c_sq = centroids.pow(2).sum(1)
    rows = max(1, _BLOCK_BYTES // max(1, centroids.shape[0] * x.element_size()))
    # ‖c‖² − 2 x·c in one GEMM pass (addmm), then the argmin
    c_t = centroids.t()
    out = [torch.argmin(torch.addmm(c_sq, b, c_t, alpha=-2.0), dim=1) for b in x.split(rows)]
    return torch.cat(out)


def _rand(n: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator)


def split_empty_clusters(
    centroids: torch.Tensor, counts: torch.Tensor, n: int, generator: torch.Generator | None
) -> int:
    """faiss' ``split_clusters``, in place: each empty cluster ``i`` (in order) takes a copy of
    a cluster ``j`` drawn by walking ``j = 0, 1, ...`` cyclically and accepting ``j`` with
    probability ``(h_j − 1) / (n − k)``; then ``c_i ← c_j ⊙ (1 + ε s)``, ``c_j ← c_j ⊙ (1 − ε s)``
    with ``s = (+1, −1, +1, ...)`` over coordinates, and ``h_i = h_j / 2``, ``h_j −= h_i``.

    Args:
        centroids: ``[k, d]`` float, updated in place.
        counts: ``[k]`` float cluster sizes ``h`` (host or device), updated in place.
        n: the number of training points (``> k``).
        generator: torch CPU generator for the acceptance draws.

    Returns:
        the number of splits.
    """
    k, d = centroids.shape
    h = counts.detach().to("cpu", torch.float64)
    empty = (h == 0).nonzero().flatten().tolist()
    if not empty:
        return 0
    sign = torch.ones(d, dtype=centroids.dtype, device=centroids.device)
    sign[1::2] = -1.0
    for i in empty:
        while True:  # one cyclic pass per draw of k uniforms: the first accepted j wins
            accept = (_rand(k, generator).double() < (h - 1.0) / (n - k)).nonzero()
            if len(accept):
                j = int(accept[0])
                break
        centroids[i] = centroids[j] * (1.0 + SPLIT_EPS * sign)
        centroids[j] = centroids[j] * (1.0 - SPLIT_EPS * sign)
        h[i] = h[j] / 2.0
        h[j] -= h[i]
    counts.copy_(h.to(counts.dtype))
    return len(empty)


def lloyd_step(
    x: torch.Tensor, centroids: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One faiss iteration: assign ``x`` ``[n, d]`` to the nearest of ``centroids`` ``[k, d]``,
    move each centroid to its points' mean, split empty clusters. Returns the new ``[k, d]``."""
    k = centroids.shape[0]
    assign = nearest_centroid(x, centroids)
    sums = torch.zeros_like(centroids).index_add_(0, assign, x)
    counts = torch.bincount(assign, minlength=k).to(x.dtype)
    # an empty cluster's sum is 0 (faiss leaves it at 0 before splitting it)
    new = sums / counts.clamp(min=1.0)[:, None]
    split_empty_clusters(new, counts, x.shape[0], generator)
    return new


@torch.no_grad()
def kmeans(
    x: torch.Tensor,
    k: int,
    niter: int = NITER,
    max_points_per_centroid: int = MAX_POINTS_PER_CENTROID,
    generator: torch.Generator | None = None,
) -> KMeans:
    """Cluster the rows of ``x`` ``[n, d]`` into ``min(k, n)`` clusters as ``faiss.Kmeans``
    with its defaults does (see the module docstring), on ``x``'s device.

    Args:
        x: ``[n, d]`` floating points (detached; not modified).
        k: the number of clusters; ``k > n`` gives ``n`` clusters, the points themselves.
        niter: Lloyd iterations (faiss: 25).
        max_points_per_centroid: train on a random subset of this many points per centroid
            when ``n`` exceeds it (faiss: 256).
        generator: torch CPU generator for the subset, the initial centroids and the splits;
            ``None``: torch's global generator.

    Returns:
        :class:`KMeans`: ``centroids`` ``[min(k, n), d]`` and every point's ``assignments``
        ``[n]`` to the final centroids (NCL's ``index.search(x, 1)``).
    """
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"kmeans needs a non-empty [n, d] matrix, got {tuple(x.shape)}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"kmeans needs k >= 1 clusters, got {k!r}")
    n = x.shape[0]
    k = min(k, n)
    if n == k:  # faiss' corner case: the training points are the centroids
        centroids = x.clone()
        return KMeans(centroids, nearest_centroid(x, centroids))
    train = x
    if n > k * max_points_per_centroid:
        keep = torch.randperm(n, generator=generator)[: k * max_points_per_centroid]
        train = x[keep.to(x.device)]
    init = torch.randperm(train.shape[0], generator=generator)[:k]
    centroids = train[init.to(x.device)].clone()
    for _ in range(niter):
        centroids = lloyd_step(train, centroids, generator)
    return KMeans(centroids, nearest_centroid(x, centroids))
