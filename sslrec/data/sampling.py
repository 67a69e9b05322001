"""Vectorised BPR triple sampling: ``(user, positive item, negative item)`` batches.

Two epoch protocols:

* ``interaction``: every training interaction once per epoch, shuffled (SELFRec, RecBole).
* ``user_uniform``: ``n_train`` draws of a user uniformly among users with training items,
  then one of that user's items uniformly (official LightGCN/SGL ``UniformSample``).

Negatives are uniform over all items, rejecting the user's training items; rejected draws are
redrawn in bulk until none remain.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch


class BPRSampler:
    """Draws epochs of BPR triples from a binary ``[n_users, n_items]`` train CSR.

    Args:
        train: the binary training matrix (any scipy sparse layout; converted to canonical CSR).
        batch_size: triples per batch (the last batch may be smaller).
        protocol: ``interaction`` or ``user_uniform``.
        seed: seeds the sampler's own numpy generator (its state is checkpointed).
    """

    def __init__(
        self, train: sp.csr_matrix, batch_size: int, protocol: str = "interaction", seed: int = 0
    ) -> None:
        if protocol not in ("interaction", "user_uniform"):
            raise ValueError(f"protocol must be 'interaction' or 'user_uniform', got {protocol!r}")
        # is_positive binary-searches CSR keys, so rows must hold sorted, unique columns; an
        # unsorted CSR (or a CSC read as CSR) would silently let positives through as negatives
        train = sp.csr_matrix(train)  # no copy for a CSR
        if not train.has_canonical_format:
            train = train.copy()
            train.sum_duplicates()  # sorts the indices too
        self.n_users, self.n_items = train.shape
        self.indptr = train.indptr.astype(np.int64)
        self.indices = train.indices.astype(np.int64)
        self.degree = np.diff(self.indptr)
        if (self.degree >= self.n_items).any():
            user = int(np.flatnonzero(self.degree >= self.n_items)[0])
            raise ValueError(f"user {user} interacted with every item; no negative can be drawn")
        self.rows = np.repeat(np.arange(self.n_users, dtype=np.int64), self.degree)
        self.keys = self.rows * self.n_items + self.indices  # sorted: CSR rows then columns
        self.active_users = np.flatnonzero(self.degree > 0)
        self.batch_size = batch_size
        self.protocol = protocol
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return -(-len(self.keys) // self.batch_size)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``[n]`` bool: whether each ``(users[k], items[k])`` is a training interaction."""
        keys = users * self.n_items + items
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, len(self.keys) - 1)
        return self.keys[pos] == keys

    def sample_negatives(self, users: np.ndarray) -> np.ndarray:
        """``[n]`` int64 items drawn uniformly among those each user has not trained on."""
        negs = self.rng.integers(0, self.n_items, size=len(users))
        todo = np.flatnonzero(self.is_positive(users, negs))
        while len(todo):
            negs[todo] = self.rng.integers(0, self.n_items, size=len(todo))
            todo = todo[self.is_positive(users[todo], negs[todo])]
        return negs

    def epoch_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``([n_train], [n_train])`` user and positive item of one epoch, in batch order."""
        n = len(self.keys)
        if self.protocol == "interaction":
            order = self.rng.permutation(n)
            return self.rows[order], self.indices[order]
        users = self.active_users[self.rng.integers(0, len(self.active_users), size=n)]
        offsets = (self.rng.random(n) * self.degree[users]).astype(np.int64)
        return users, self.indices[self.indptr[users] + offsets]

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yields ``(users [B], pos [B], neg [B])`` int64 tensors for one epoch."""
        users, pos = self.epoch_pairs()
        neg = self.sample_negatives(users)
        for start in range(0, len(users), self.batch_size):
            sl = slice(start, start + self.batch_size)
            yield torch.from_numpy(users[sl]), torch.from_numpy(pos[sl]), torch.from_numpy(neg[sl])
