"""ItemKNN: cosine item-item similarity, the ``k`` nearest neighbours of every item kept.

For items ``i, j`` with binary training columns ``x_i, x_j`` (``[U]``)::

    sim(i, j) = x_iᵀ x_j / (‖x_i‖ ‖x_j‖ + shrink + 1e-6),   sim(j, j) = 0
    N_k(j)    = the k items i with the largest sim(i, j)       (the target's neighbours)
    W_ij      = sim(i, j) if i ∈ N_k(j) else 0                  W: [I, I], k per column
    S         = X W,   s(u, j) = Σ_{i ∈ N_k(j)} x_ui sim(i, j)  (seen items masked at ranking)

This is RecBole's ``ItemKNN`` with ``knn_method: item`` (``RUCAIBox/RecBole@7b02be5
recbole/model/general_recommender/itemknn.py``: ``ComputeSimilarity.compute_similarity``
53-164, ``ItemKNN.__init__`` 175-193; ``docs/zoo/itemknn.md``), checked line by line:

* the block is ``XᵀX[:, j]`` for target columns ``j``; the self-similarity ``j, j`` is zeroed
  *before* the top-k (line 111), so an item is never its own neighbour;
* ``shrink`` enters the cosine's denominator additively, after the product of the norms, and
  then ``1e-6``: ``‖x_j‖ · ‖x_i‖ + shrink + 1e-6`` (lines 114-118); it shrinks the similarity
  of rarely co-occurring (rare) items towards 0;
* the top-k is taken per *target* column ``j`` over the candidate neighbours ``i`` (the rows;
  ``argpartition`` of column ``j``, lines 128-134) and written as ``W[i, j]``
  (``rows = top_k_idx``, ``cols = j``, lines 146-147), so every *column* of ``W`` keeps at most
  ``k`` entries (a row can keep any number); ``k`` is capped at ``I`` (line 49);
* ``pred = X · W`` (line 193). Its defaults are ``k = 100``, ``shrink = 0``; here ``k = 500``,
  ``shrink = 10``, chosen on lastfm's validation split (``conf/model/itemknn.yaml``).

Zero similarities among the k kept are dropped there and weigh 0 here (the same scores).
RecBole multiplies by ``1 / denominator`` where this code divides (the same up to one float32
rounding), and ties at the k-th place may keep other (equally similar) neighbours than its
``argpartition``.

Beyond RecBole, ``row_normalize`` (off by default) divides each target's ``k`` kept
similarities by their sum, so that ``s(u, j)`` is the similarity-weighted share of ``j``'s
neighbourhood the user has (the normalisation of Deshpande & Karypis, TOIS 2004, applied to the
target's neighbourhood; ``similarity[j]`` is a row of the fitted state, a column of ``W``).

The similarity is computed one block of target columns at a time (``[I, b]`` co-occurrences,
``b`` within :data:`~sslrec.models.closed_form.BLOCK_BYTES`), so an ``[I, I]`` dense matrix never
exists; the fit keeps ``neighbours`` (int64) and ``similarity`` ``[I, k]``: ``12 I k`` bytes
(gowalla, ``k = 500``: 246 MB), and the scorer multiplies each block of users' sparse rows by
the sparse ``W``. Everything else (no loss, ``Trainer.fit``'s single fit, checkpoints,
``embeddings.npz``) is :class:`~sslrec.models.closed_form.ClosedFormRecommender`'s.
"""

from __future__ import annotations

import torch

from sslrec.models.closed_form import ClosedFormRecommender, csr

#: RecBole's epsilon in the cosine denominator
EPS = 1e-6


class ItemKNN(ClosedFormRecommender):
    """Cosine ItemKNN with the top-``k`` neighbours per target item (module docstring).

    Args:
        n_users, n_items, train_users, train_items: see
            :class:`~sslrec.models.closed_form.ClosedFormRecommender`.
        k: neighbours kept per target item (``min(k, I)``). The default 500 was chosen on
            lastfm's validation split (``conf/model/itemknn.yaml``); RecBole's default is 100.
        shrink: added to the cosine denominator (RecBole's ``shrink``; 0: plain cosine). The
            default 10 was chosen with ``k``; RecBole's default is 0.
        row_normalize: divide each target's kept similarities by their sum.
    """

    fitted_buffers = ("neighbours", "similarity")
    config_name = "itemknn"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        train_users: torch.Tensor,
        train_items: torch.Tensor,
        k: int = 500,
        shrink: float = 10.0,
        row_normalize: bool = False,
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"model.k must be an integer >= 1, got {k!r}")
        if isinstance(shrink, bool) or not isinstance(shrink, int | float) or shrink < 0:
            raise ValueError(f"model.shrink must be a number >= 0, got {shrink!r}")
        super().__init__(n_users, n_items, train_users, train_items)
        self.k = k
        self.shrink = float(shrink)
        self.row_normalize = row_normalize

    @property
    def n_neighbours(self) -> int:
        return min(self.k, self.n_items)

    @torch.no_grad()
    def fit(self) -> None:
        xt = self.history_t()  # [I, U]
        n, k = self.n_items, self.n_neighbours
        norms = xt.counts().to(torch.float32).sqrt()  # ‖x_i‖ of a binary column
        left = xt.sparse(torch.float32)
        neighbours = torch.empty(n, k, dtype=torch.int64, device=self.device)
        similarity = torch.empty(n, k, dtype=torch.float32, device=self.device)
        step = xt.block_rows(torch.float32)
        for c0 in range(0, n, step):
            c1 = min(c0 + step, n)
            co = torch.sparse.mm(left, xt.dense_rows_t(c0, c1, torch.float32))  # [I, b]
            sim = co / (norms[:, None] * norms[None, c0:c1] + self.shrink + EPS)
            targets = torch.arange(c0, c1, device=self.device)
            sim[targets, targets - c0] = 0.0  # no item is its own neighbour
            values, index = torch.topk(sim, k, dim=0)  # [k, b]: the targets' neighbours
            similarity[c0:c1], neighbours[c0:c1] = values.T, index.T
        if self.row_normalize:
            total = similarity.sum(1, keepdim=True)
            similarity = torch.where(total > 0, similarity / total, similarity)
        self.neighbours, self.similarity = neighbours, similarity

    def fitted_shapes(self) -> dict[str, tuple[int, ...]]:
        shape = (self.n_items, self.n_neighbours)
        return {"neighbours": shape, "similarity": shape}

    def item_item(self) -> torch.Tensor:
        """``W`` as sparse CSR ``[I, I]``: ``W[neighbours[j, r], j] = similarity[j, r]``,
        zero similarities dropped."""
        n, k = self.n_items, self.n_neighbours
        keep = self.similarity.reshape(-1) != 0
        rows = self.neighbours.reshape(-1)[keep]
        cols = torch.arange(n, device=self.device).repeat_interleave(k)[keep]
        keys, order = torch.sort(rows * n + cols)
        indptr = torch.zeros(n + 1, dtype=torch.int64, device=self.device)
        indptr[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
        return csr(indptr, keys % n, self.similarity.reshape(-1)[keep][order], (n, n))
