"""The ``Interactions`` container: train / valid / test user-item matrices with checked ids."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from sslrec.data.features import SideFeatures
from sslrec.data.readers import ID_LIMIT, DataFormatError, IdMap, RawPairs

log = logging.getLogger(__name__)


def pairs_to_csr(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary ``[n_users, n_items]`` CSR (float32 ones, sorted column indices) of unique pairs."""
    data = np.ones(len(users), dtype=np.float32)
    mat = sp.csr_matrix((data, (users, items)), shape=(n_users, n_items), dtype=np.float32)
    mat.sum_duplicates()
    mat.data[:] = 1.0
    mat.sort_indices()
    return mat


@dataclass
class Interactions:
    """A dataset's splits as binary CSR matrices of shape ``[n_users, n_items]``.

    ``train`` is what models are fit on. ``valid`` is used for model selection (empty when the
    paper protocol is used), ``test`` is the untouched official test split. ``id_map`` is set
    when raw ids were remapped (triple/CSV input) so that results can be exported. ``features``
    holds the optional user/item side features (``sslrec.data.features``), ``None`` without.
    """

    name: str
    n_users: int
    n_items: int
    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    id_map: IdMap | None = None
    features: SideFeatures | None = None

    @property
    def n_train(self) -> int:
        return int(self.train.nnz)

    def train_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``([n_train], [n_train])`` int64 user and item ids of the training interactions."""
        coo = self.train.tocoo()
        return coo.row.astype(np.int64), coo.col.astype(np.int64)

    def eval_users(self, split: str) -> np.ndarray:
        """Users evaluated on ``split``: at least one item there and at least one train item.

        Policy: a user with no training interaction has no learned preference (its embedding
        never receives a BPR gradient), so ranking for it measures initialisation noise. Such
        users are excluded from evaluation and their count is reported at load.
        """
        target = getattr(self, split)
        has_target = np.diff(target.indptr) > 0
        has_train = np.diff(self.train.indptr) > 0
        return np.flatnonzero(has_target & has_train).astype(np.int64)

    def stats(self) -> dict[str, float]:
        total = self.train.nnz + self.valid.nnz + self.test.nnz
        return {
            "users": self.n_users,
            "items": self.n_items,
            "interactions": int(total),
            "train": int(self.train.nnz),
            "valid": int(self.valid.nnz),
            "test": int(self.test.nnz),
            "density": total / float(self.n_users * self.n_items),
        }

    def describe(self) -> str:
        s = self.stats()
        return (
            f"dataset {self.name}: {s['users']:,} users, {s['items']:,} items, "
            f"{s['interactions']:,} interactions (train {s['train']:,}, valid {s['valid']:,}, "
            f"test {s['test']:,}), density {s['density']:.6f}"
        )


def _dedupe(pairs: RawPairs, n_items: int) -> RawPairs:
    keys = pairs.users * n_items + pairs.items
    _, first = np.unique(keys, return_index=True)
    if len(first) == len(keys):
        return pairs
    first.sort()
    dup_mask = np.ones(len(keys), dtype=bool)
    dup_mask[first] = False
    line = int(pairs.lines[np.flatnonzero(dup_mask)[0]])
    log.warning(
        "%s: %d duplicate (user, item) pairs removed (first at line %d)",
        pairs.path,
        int(dup_mask.sum()),
        line,
    )
    return RawPairs(pairs.users[first], pairs.items[first], pairs.lines[first], pairs.path)


def _check_range(pairs: RawPairs, n_users: int, n_items: int) -> None:
    for arr, bound, what in ((pairs.users, n_users, "user"), (pairs.items, n_items, "item")):
        bad = np.flatnonzero(arr >= bound)
        if len(bad):
            k = bad[0]
            raise DataFormatError(
                pairs.path,
                int(pairs.lines[k]),
                f"{what} id {int(arr[k])} out of range; expected an id below {bound} "
                f"(the dataset has {bound} {what}s)",
            )


def _check_disjoint(first: RawPairs, second: RawPairs, n_items: int) -> None:
    keys = second.users * n_items + second.items
    overlap = np.isin(keys, first.users * n_items + first.items)
    if overlap.any():
        k = int(np.flatnonzero(overlap)[0])
        raise DataFormatError(
            second.path,
            int(second.lines[k]),
            f"pair (user {int(second.users[k])}, item {int(second.items[k])}) is also in "
            f"{first.path}; expected the splits to be disjoint",
        )


#: Inferred sizes: the id space may exceed the distinct ids present by this factor ...
SPARSE_FACTOR = 2
#: ... or by this many unused rows, whichever is larger (see :func:`check_id_space`).
SPARSE_SLACK = 10_000
#: Above this fraction of a split's interactions with items unseen in training, warn.
UNSEEN_WARN_FRACTION = 0.5


def _distinct(ids: np.ndarray, size: int) -> int:
    """Number of distinct ids in ``ids`` (all in ``[0, size)``), without a ``size`` table when
    ``size`` is much larger than ``len(ids)``."""
    if size <= 8 * len(ids) + 1024:
        return int(np.count_nonzero(np.bincount(ids, minlength=size)))
    return len(np.unique(ids))


def check_id_space(splits: list[RawPairs], what: str, size: int) -> None:
    """Stop when an inferred id space is far sparser than the ids present.

    Rule: with ``size = max id + 1`` and ``d`` distinct ids over all files, the data is
    rejected when ``size > max(SPARSE_FACTOR * d, d + SPARSE_SLACK)``, i.e. when more than half
    of the rows would belong to ids that occur nowhere *and* more than 10,000 rows would.

    Why: LightGCN-style files are indexed ``0..n-1`` and their only gaps are a few users or
    items dropped after indexing (bundled lastfm: 12 of 1,892 users; gowalla, yelp2018: none),
    far below both bounds, and the 10,000-row slack keeps small hand-written datasets (ids 0,
    1, 5, ...) legal at a cost of a few MB. A stray id (user 2,000,000 in a 300-user file) or
    raw ids from a sparse catalogue instead makes every embedding table, optimiser state,
    checkpoint and score matrix grow with the largest id, and the phantom items would be
    ranked as candidates at evaluation: that trips the rule, naming the largest id's file and
    line. ``dataset.format=triples`` remaps arbitrary ids to contiguous ones; explicit sizes
    or ``allow_sparse_ids`` skip this check.
    """
    arrays = [getattr(p, what + "s") for p in splits]
    if size <= SPARSE_SLACK:  # d >= 1, so size <= d + SPARSE_SLACK
        return
    distinct = _distinct(np.concatenate(arrays), size)
    if size <= max(SPARSE_FACTOR * distinct, distinct + SPARSE_SLACK):
        return
    top = size - 1
    path, line = next(
        (p.path, int(p.lines[np.argmax(arr == top)]))
        for p, arr in zip(splits, arrays, strict=True)
        if len(arr) and arr.max() == top
    )
    raise DataFormatError(
        path,
        line,
        f"{what} id {top:,} makes the inferred {what} count {size:,} (max id + 1), but only "
        f"{distinct:,} distinct {what} ids occur in the dataset; expected ids 0..n-1 with few "
        f"gaps (at most max(2 x distinct ids, distinct ids + {SPARSE_SLACK:,}) rows). Use "
        f"dataset.format=triples to remap arbitrary ids to contiguous ones, set "
        f"dataset.n_{what}s to the real count, or set dataset.allow_sparse_ids=true to keep "
        "the sparse id space",
    )


def _check_size(value: int | None, what: str) -> None:
    if value is not None and not 0 <= value <= ID_LIMIT:
        raise ValueError(f"n_{what}s must be between 0 and {ID_LIMIT:,}, got {value}")


def _warn_unseen_items(name: str, train: RawPairs, split: str, pairs: RawPairs, n_items: int):
    """Warn when a split's items (all, or most interactions) never occur in training."""
    if not len(pairs.items):
        return
    seen = np.zeros(n_items, dtype=bool)
    seen[train.items] = True
    unseen = ~seen[pairs.items]
    if unseen.all():
        log.warning(
            "%s: no %s item (%s) has a training interaction; every %s item is unseen in "
            "training, so %s metrics rank items with untrained embeddings",
            name,
            split,
            pairs.path,
            split,
            split,
        )
    elif unseen.mean() > UNSEEN_WARN_FRACTION:
        log.warning(
            "%s: %.1f%% of the %s interactions (%s) are with items that have no training "
            "interaction",
            name,
            100.0 * unseen.mean(),
            split,
            pairs.path,
        )


def build_interactions(
    name: str,
    train: RawPairs,
    test: RawPairs,
    valid: RawPairs | None = None,
    n_users: int | None = None,
    n_items: int | None = None,
    id_map: IdMap | None = None,
    allow_sparse_ids: bool = False,
) -> Interactions:
    """Check and assemble the splits.

    Sizes default to ``max id + 1`` over all given files (the LightGCN convention, which
    matches the published dataset statistics); such an inferred size that is far larger than
    the number of distinct ids is an error naming the largest id's file and line (see
    :func:`check_id_space` for the rule) unless ``allow_sparse_ids``. When
    ``n_users``/``n_items`` are given, any id at or above them is an error naming its file and
    line. Duplicate pairs within a file are removed with a warning; a valid or test pair that
    is also in train is an error. Test users without training interactions are reported, and
    a valid/test split whose items are all (or mostly) unseen in training is warned about.

    Raises:
        DataFormatError: as above.
        ValueError: ``n_users``/``n_items`` outside ``[0, ID_LIMIT]``.
    """
    splits = [p for p in (train, valid, test) if p is not None]
    _check_size(n_users, "user")
    _check_size(n_items, "item")
    if n_users is None:
        n_users = int(max(p.users.max(initial=-1) for p in splits)) + 1
        if not allow_sparse_ids:
            check_id_space(splits, "user", n_users)
    if n_items is None:
        n_items = int(max(p.items.max(initial=-1) for p in splits)) + 1
        if not allow_sparse_ids:
            check_id_space(splits, "item", n_items)
    for p in splits:
        _check_range(p, n_users, n_items)
    train = _dedupe(train, n_items)
    test = _dedupe(test, n_items)
    _check_disjoint(train, test, n_items)
    if valid is not None:
        valid = _dedupe(valid, n_items)
        _check_disjoint(train, valid, n_items)
        _check_disjoint(valid, test, n_items)
    data = Interactions(
        name=name,
        n_users=n_users,
        n_items=n_items,
        train=pairs_to_csr(train.users, train.items, n_users, n_items),
        valid=(
            pairs_to_csr(valid.users, valid.items, n_users, n_items)
            if valid is not None
            else sp.csr_matrix((n_users, n_items), dtype=np.float32)
        ),
        test=pairs_to_csr(test.users, test.items, n_users, n_items),
        id_map=id_map,
    )
    no_train = np.diff(data.train.indptr) == 0
    cold = int((no_train & (np.diff(data.test.indptr) > 0)).sum())
    if cold:
        log.warning(
            "%s: %d test users have no training interactions; they are excluded from evaluation",
            name,
            cold,
        )
    for split, pairs in (("valid", valid), ("test", test)):
        if pairs is not None:
            _warn_unseen_items(name, train, split, pairs, n_items)
    return data


def split_validation(data: Interactions, fraction: float, seed: int) -> Interactions:
    """Carve a per-user validation split out of train; test stays untouched.

    Each user with ``n >= 2`` train items moves ``floor(fraction * n + 0.5)`` of them, chosen
    uniformly at random with ``seed``, to valid, always keeping at least one in train. Users
    with a single train item keep it. Returns a new ``Interactions``; the input is unchanged.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"valid fraction must be in (0, 1), got {fraction}")
    if data.valid.nnz:
        raise ValueError(f"{data.name} already has a validation split")
    rng = np.random.default_rng(seed)
    train = data.train
    deg = np.diff(train.indptr)
    n_valid = np.floor(fraction * deg + 0.5).astype(np.int64)
    n_valid = np.where(deg >= 2, np.minimum(n_valid, deg - 1), 0)
    rows = np.repeat(np.arange(data.n_users), deg)
    order = np.lexsort((rng.random(train.nnz), rows))  # random order within each row
    rank = np.empty(train.nnz, dtype=np.int64)
    rank[order] = np.arange(train.nnz) - np.repeat(train.indptr[:-1], deg)
    to_valid = rank < n_valid[rows]
    cols = train.indices.astype(np.int64)
    shape = (data.n_users, data.n_items)
    return Interactions(
        name=data.name,
        n_users=data.n_users,
        n_items=data.n_items,
        train=pairs_to_csr(rows[~to_valid], cols[~to_valid], *shape),
        valid=pairs_to_csr(rows[to_valid], cols[to_valid], *shape),
        test=data.test,
        id_map=data.id_map,
        features=data.features,
    )
