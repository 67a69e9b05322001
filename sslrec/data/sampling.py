"""Vectorised training batches: a user, a positive item and ``k`` sampled negatives.

Two epoch protocols:

* ``interaction``: every training interaction once per epoch, shuffled (SELFRec, RecBole).
* ``user_uniform``: ``n_train`` draws of a user uniformly among users with training items,
  then one of that user's items uniformly (official LightGCN/SGL ``UniformSample``).

Negatives are drawn from a proposal over all items, ``uniform`` (the default) or ``popularity``
(``q(i) ∝ count(i)^α``), rejecting the user's training items; rejected draws are redrawn in
bulk until none remain.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

PROTOCOLS = ("interaction", "user_uniform")
PROPOSALS = ("uniform", "popularity")


@dataclass
class Batch:
    """One training batch of ``B`` users.

    Attributes:
        users: ``[B]`` int64 user ids.
        pos: ``[B]`` int64 positive items (training interactions of ``users``).
        neg: ``[B]`` int64 sampled negatives (one per positive), or ``[B, k]`` for ``k > 1``.
        pos_log_q, neg_log_q: ``log q(i)`` of ``pos`` and ``neg`` under the popularity proposal
            (shapes of ``pos`` and ``neg``), for the sampled-softmax log-Q correction; ``None``
            under uniform sampling, where the correction is a constant that cancels.
    """

    users: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor
    pos_log_q: torch.Tensor | None = None
    neg_log_q: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch on ``device`` (no copy when it is already there)."""
        moved = {
            key: None if value is None else value.to(device, non_blocking=non_blocking)
            for key, value in vars(self).items()
        }
        return Batch(**moved)


class BPRSampler:
    """Draws epochs of training batches from a binary ``[n_users, n_items]`` train CSR.

    Args:
        train: the binary training matrix (any scipy sparse layout; converted to canonical CSR).
        batch_size: positives per batch (the last batch may be smaller).
        protocol: ``interaction`` or ``user_uniform``.
        seed: seeds the sampler's own numpy generator (its state is checkpointed).
        num_negatives: ``k`` negatives per positive; ``neg`` is ``[B]`` for 1, else ``[B, k]``.
            With ``k = 1`` the epoch's negatives are drawn at once (the stream every run so far
            was seeded with); with ``k > 1`` batch by batch, which bounds memory.
        negative_sampling: the proposal, ``uniform`` or ``popularity``.
        popularity_exponent: ``α`` of the popularity proposal ``q(i) ∝ count(i)^α``.
    """

    def __init__(
        self,
        train: sp.csr_matrix,
        batch_size: int,
        protocol: str = "interaction",
        seed: int = 0,
        num_negatives: int = 1,
        negative_sampling: str = "uniform",
        popularity_exponent: float = 1.0,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be 'interaction' or 'user_uniform', got {protocol!r}")
        if negative_sampling not in PROPOSALS:
            raise ValueError(
                f"negative_sampling must be 'uniform' or 'popularity', got {negative_sampling!r}"
            )
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be at least 1, got {num_negatives}")
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
        self.num_negatives = num_negatives
        self.rng = np.random.default_rng(seed)
        self.log_q: np.ndarray | None = None  # [I] log-proposal, popularity only
        self.cdf: np.ndarray | None = None
        if negative_sampling == "popularity":
            weight = np.bincount(self.indices, minlength=self.n_items) ** popularity_exponent
            q = weight / weight.sum()
            with np.errstate(divide="ignore"):  # items never trained on: q = 0, log q = -inf
                self.log_q = np.log(q)
            self.cdf = np.cumsum(q)
            self.cdf[-1] = 1.0  # searchsorted below never returns I
            # a user whose untried items all have q = 0 would never get a negative
            tried = np.add.reduceat(np.append(q[self.indices], 0.0), self.indptr[:-1])
            stuck = np.flatnonzero((self.degree > 0) & (tried >= 1.0 - 1e-12))
            if len(stuck):
                raise ValueError(
                    f"user {int(stuck[0])}: every item it has not trained on has probability 0 "
                    "under the popularity proposal (no training interactions); use "
                    "negative_sampling=uniform"
                )

    def __len__(self) -> int:
        return -(-len(self.keys) // self.batch_size)

    def state(self) -> dict:
        """The generator's state (plain ints and strings), for checkpoints."""
        return self.rng.bit_generator.state

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``[n]`` bool: whether each ``(users[k], items[k])`` is a training interaction."""
        keys = users * self.n_items + items
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, len(self.keys) - 1)
        return self.keys[pos] == keys

    def _propose(self, n: int) -> np.ndarray:
        if self.cdf is None:
            return self.rng.integers(0, self.n_items, size=n)
        return np.searchsorted(self.cdf, self.rng.random(n), side="right")

    def sample_negatives(self, users: np.ndarray) -> np.ndarray:
        """``[n]`` int64 items drawn from the proposal among those each user has not trained on
        (uniformly among them under the uniform proposal)."""
        negs = self._propose(len(users))
        todo = np.flatnonzero(self.is_positive(users, negs))
        while len(todo):
            negs[todo] = self._propose(len(todo))
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

    def epoch(self) -> Iterator[Batch]:
        """Yields the :class:`Batch` es of one epoch."""
        users, pos = self.epoch_pairs()
        k = self.num_negatives
        neg_all = self.sample_negatives(users) if k == 1 else None
        for start in range(0, len(users), self.batch_size):
            sl = slice(start, start + self.batch_size)
            u, p = users[sl], pos[sl]
            if neg_all is not None:
                n = neg_all[sl]
            else:
                n = self.sample_negatives(np.repeat(u, k)).reshape(len(u), k)
            batch = Batch(torch.from_numpy(u), torch.from_numpy(p), torch.from_numpy(n))
            if self.log_q is not None:
                batch.pos_log_q = torch.from_numpy(self.log_q[p])
                batch.neg_log_q = torch.from_numpy(self.log_q[n])
            yield batch
