"""Batched full ranking: score every item for every evaluated user, mask, take the top K."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from sslrec.data.interactions import Interactions
from sslrec.devices import host_paths
from sslrec.evaluation.metrics import METRICS
from sslrec.evaluation.scoring import InnerProductScorer, Scorer

#: ``precision`` settings and the dtype they compute in (``None``: the inputs' own)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
#: how a block's top-k is found (:func:`rank_top_k`)
SELECTIONS = ("auto", "full", "chunked")
#: bytes of fp32 scores per sub-block in ``chunked`` selection: a few users' rows, in cache
SUB_BLOCK_BYTES = 8 << 20


def top_k(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    users: np.ndarray,
    exclude: sp.csr_matrix,
    k: int,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Top-``k`` items per user by inner product (``user_emb`` ``[U, d]``, ``item_emb``
    ``[I, d]``); see :func:`rank_top_k`."""
    return rank_top_k(InnerProductScorer(user_emb, item_emb), users, exclude, k, batch_size)


def rank_top_k(
    scorer: Scorer,
    users: np.ndarray,
    exclude: sp.csr_matrix,
    k: int,
    batch_size: int = 1024,
    item_tile: int | None = None,
    selection: str = "auto",
) -> torch.Tensor:
    """Top-``k`` items per user by the scorer's scores, with ``exclude``'s items masked out.

    Users are ranked in blocks of ``batch_size``; each block's ``[b, I]`` scores are freed
    before the next, so peak memory is one block plus the top-k results. With ``item_tile`` (an
    inner-product scorer only) a block's scores are computed ``item_tile`` items at a time and
    merged into a running top-k, so that the scores stay in cache instead of streaming a
    ``[b, I]`` block through memory twice (written by the matmul, read by the top-k).

    ``selection="chunked"`` (``auto`` picks it on a CPU) scores a few users at a time into one
    reused cache-sized buffer and selects through chunk maxima (:func:`_chunked_top_k`): the
    same scores and the same ranking as ``full`` (one ``torch.topk`` over whole rows), found
    without a page fault per block or a sort over every item.

    Args:
        scorer: the model's scorer (``Recommender.scorer()``).
        users: ``[n]`` int64 users to rank for.
        exclude: ``[U, I]`` CSR of items never recommended to a user (train, and valid at test).
        k: cut-off.
        batch_size: users per score block (capped by ``scorer.block_users``).
        item_tile: items per tile, or ``None`` for whole rows.
        selection: ``auto`` | ``full`` | ``chunked`` (see above; ``item_tile`` overrides it).

    Returns:
        ``[n, k]`` int64 item ids, best first, on the scorer's device. A user with fewer than
        ``k`` unmasked items gets masked ones in the last places; they can never be hits,
        because the splits are disjoint.
    """
    device = scorer.device
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if scorer.block_users:
        batch_size = max(1, min(batch_size, scorer.block_users))
    tiled = item_tile is not None and isinstance(scorer, InnerProductScorer)
    chunked = not tiled and (selection == "chunked" or (selection == "auto" and host_paths(device)))
    buffer = None
    if chunked and isinstance(scorer, InnerProductScorer):
        # a sub-block's scores stay in cache between the matmul and the selection; other
        # scorers (NeuMF's towers) keep their own blocks, whose cost is not the matmul's
        batch_size = max(1, min(batch_size, SUB_BLOCK_BYTES // (4 * scorer.n_items)))
    sub = exclude[users]
    indptr = sub.indptr.astype(np.int64)
    # the exclusions move to the device once per evaluation, not once per block
    rows = torch.from_numpy(np.repeat(np.arange(len(users)), np.diff(indptr))).to(device)
    cols = torch.from_numpy(sub.indices.astype(np.int64)).to(device)
    out = torch.empty(len(users), k, dtype=torch.int64, device=device)
    users_t = torch.from_numpy(users).to(device)
    for start in range(0, len(users), batch_size):
        stop = min(start + batch_size, len(users))
        lo, hi = int(indptr[start]), int(indptr[stop])
        block_rows, block_cols = rows[lo:hi] - start, cols[lo:hi]
        if tiled:
            out[start:stop] = _tiled_top_k(
                scorer, users_t[start:stop], block_rows, block_cols, k, item_tile
            )
            continue
        if chunked and isinstance(scorer, InnerProductScorer) and scorer.compute_dtype is None:
            if buffer is None:
                buffer = scorer.user_emb.new_empty(batch_size, scorer.n_items)
            scores = scorer.full_scores(users_t[start:stop], out=buffer[: stop - start])
        else:
            scores = scorer.full_scores(users_t[start:stop])
        scores[block_rows, block_cols] = -torch.inf
        if chunked:
            out[start:stop] = _chunked_top_k(scores, k)
        else:
            out[start:stop] = torch.topk(scores, k, dim=1, sorted=True).indices
        del scores
    return out


def _chunked_top_k(scores: torch.Tensor, k: int, chunk: int = 64) -> torch.Tensor:
    """``[b, k]`` column indices of each row's ``k`` largest ``scores`` ``[b, I]``, best first,
    equal to ``torch.topk(scores, k).indices``.

    The ``k + 1`` largest scores of a row lie in the ``k + 1`` chunks (of ``chunk`` columns)
    with the largest maxima: a column outside them is at most the smallest of those ``k + 1``
    maxima, each a different column. So one pass for the chunk maxima and a ``topk`` over
    ``(k + 1) * chunk`` candidates (plus the ragged tail) replace the ``topk`` over ``I``. Where
    the ``k + 1`` best values are not strictly decreasing (a tie, masked ``-inf`` items, a NaN)
    ``torch.topk``'s tie order decides, so those rows take ``torch.topk`` over the whole row.
    """
    b, n_cols = scores.shape
    n_chunks = n_cols // chunk
    if n_chunks <= k + 1:
        return torch.topk(scores, k, dim=1, sorted=True).indices
    head = n_chunks * chunk
    maxima = scores[:, :head].view(b, n_chunks, chunk).amax(-1)  # [b, n_chunks]
    top_chunks = torch.topk(maxima, k + 1, dim=1, sorted=False).indices  # [b, k + 1]
    rows = torch.arange(b, device=scores.device)[:, None] * n_chunks + top_chunks
    picked = scores[:, :head].reshape(b * n_chunks, chunk).index_select(0, rows.reshape(-1))
    cand = torch.cat([picked.view(b, -1), scores[:, head:]], dim=1)  # [b, (k + 1) chunk + tail]
    values, pos = torch.topk(cand, k + 1, dim=1, sorted=True)
    in_head = pos < (k + 1) * chunk
    chunk_of = top_chunks.gather(1, (pos // chunk).clamp(max=k))
    items = torch.where(in_head, chunk_of * chunk + pos % chunk, head + pos - (k + 1) * chunk)
    tied = ~(values[:, :-1] > values[:, 1:]).all(dim=1)
    if bool(tied.any()):
        items[tied, :k] = torch.topk(scores[tied], k, dim=1, sorted=True).indices
    return items[:, :k]


def _tiled_top_k(
    scorer: InnerProductScorer,
    users: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    k: int,
    tile: int,
) -> torch.Tensor:
    """``[b, k]`` best items of ``users`` ``[b]``, scoring ``tile`` items at a time; ``rows``,
    ``cols`` are the block's excluded (user row, item) entries."""
    u = scorer.user_emb[users]
    order = torch.argsort(cols)
    rows, cols = rows[order], cols[order]
    bounds = torch.arange(0, scorer.n_items + tile, tile, device=cols.device)
    cuts = torch.searchsorted(cols, bounds.clamp(max=scorer.n_items)).tolist()
    best_v = best_i = None
    for t, c0 in enumerate(range(0, scorer.n_items, tile)):
        scores = u @ scorer.item_t[:, c0 : c0 + tile]
        lo, hi = cuts[t], cuts[t + 1]
        scores[rows[lo:hi], cols[lo:hi] - c0] = -torch.inf
        v, i = torch.topk(scores, min(k, scores.shape[1]), dim=1, sorted=True)
        i += c0
        if best_v is None:
            best_v, best_i = v, i
            continue
        v, pick = torch.topk(torch.cat([best_v, v], 1), min(k, best_v.shape[1] + v.shape[1]), 1)
        best_i = torch.cat([best_i, i], 1).gather(1, pick)
        best_v = v
    return best_i


def hit_matrix(ranked: torch.Tensor, users: np.ndarray, target: sp.csr_matrix) -> torch.Tensor:
    """``[n, k]`` float: 1 where ``ranked[j, r]`` is in ``target``'s row ``users[j]``."""
    n_items = target.shape[1]
    coo = target.tocoo()
    keys = torch.from_numpy(np.sort(coo.row.astype(np.int64) * n_items + coo.col))
    if len(keys) == 0:  # nothing relevant: searchsorted/clamp below would index an empty tensor
        return torch.zeros(ranked.shape, dtype=torch.float32)
    cand = (torch.from_numpy(users)[:, None] * n_items + ranked.cpu()).reshape(-1)
    pos = torch.searchsorted(keys, cand).clamp(max=len(keys) - 1)
    return (keys[pos] == cand).reshape(ranked.shape).to(torch.float32)


class Evaluator:
    """Full-ranking evaluation of a dataset's valid or test split.

    Users evaluated on a split are those with at least one item in it and at least one train
    item (:meth:`Interactions.eval_users`). On ``valid`` the train items are masked; on ``test``
    the train and valid items are.

    Args:
        data: the dataset.
        ks: cut-offs, e.g. ``[10, 20, 50]``.
        metrics: names from :data:`sslrec.evaluation.metrics.METRICS`.
        batch_size: users per score block.
        item_tile: items per score tile of an inner-product scorer (:func:`rank_top_k`);
            ``None`` scores whole rows.
        precision: ``fp32`` (exact) or ``bf16``: inner-product scores from bfloat16 copies
            (:class:`~sslrec.evaluation.scoring.InnerProductScorer`); other scorers stay exact.
        selection: ``auto`` | ``full`` | ``chunked``: how a block's top-k is found
            (:func:`rank_top_k`); every choice gives the same rankings.
    """

    def __init__(
        self,
        data: Interactions,
        ks: Sequence[int] = (10, 20, 50),
        metrics: Sequence[str] = ("recall", "ndcg", "precision", "hit_rate", "mrr", "map"),
        batch_size: int = 1024,
        item_tile: int | None = None,
        precision: str = "fp32",
        selection: str = "auto",
    ) -> None:
        if selection not in SELECTIONS:
            raise ValueError(f"eval.selection must be one of {SELECTIONS}, got {selection!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"eval.precision must be fp32 or bf16, got {precision!r}")
        unknown = set(metrics) - set(METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; known: {sorted(METRICS)}")
        self.data = data
        self.ks = sorted(int(k) for k in ks)
        if self.ks[-1] > data.n_items:
            raise ValueError(
                f"eval.ks goes up to {self.ks[-1]} but {data.name} has only {data.n_items} items"
            )
        self.metrics = list(metrics)
        self.batch_size = batch_size
        self.item_tile = item_tile
        self.precision = precision
        self.selection = selection
        self._exclude = {"valid": data.train, "test": (data.train + data.valid).tocsr()}

    def evaluate(
        self, user_emb: torch.Tensor, item_emb: torch.Tensor, split: str
    ) -> dict[str, float]:
        """Mean metrics of inner-product scores (``[U, d]``, ``[I, d]``) over the split's
        users, keyed like ``recall@20``."""
        return self.evaluate_scorer(InnerProductScorer(user_emb, item_emb), split)

    def evaluate_scorer(self, scorer: Scorer, split: str) -> dict[str, float]:
        """Mean metrics of ``scorer``'s rankings over the split's users (``recall@20``, ...)."""
        if self.precision == "bf16" and isinstance(scorer, InnerProductScorer):
            scorer = InnerProductScorer(scorer.user_emb, scorer.item_emb, PRECISIONS["bf16"])
        if split not in self._exclude:
            raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
        users = self.data.eval_users(split)
        if len(users) == 0:
            raise ValueError(f"{self.data.name}: no user has items in the {split} split")
        target = getattr(self.data, split)
        ranked = rank_top_k(
            scorer,
            users,
            self._exclude[split],
            self.ks[-1],
            self.batch_size,
            self.item_tile,
            self.selection,
        )
        hits = hit_matrix(ranked, users, target)
        n_rel = torch.from_numpy(np.diff(target.indptr)[users].astype(np.float32))
        out: dict[str, float] = {}
        for name in self.metrics:
            for k in self.ks:
                out[f"{name}@{k}"] = float(METRICS[name](hits, n_rel, k).mean())
        return out

    def most_popular(self, split: str) -> dict[str, float]:
        """Metrics of ranking every user's unseen items by training popularity."""
        pop = torch.from_numpy(np.asarray(self.data.train.sum(0)).ravel().astype(np.float32))
        return self.evaluate(torch.ones(self.data.n_users, 1), pop[:, None], split)
