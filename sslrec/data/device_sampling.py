"""Training batches drawn on the model's device, with a seeded torch generator.

The same protocols and proposals as :class:`~sslrec.data.sampling.BPRSampler` (whose numpy
stream every CPU run is seeded with), for accelerators: the training pairs live on the device,
an epoch's users, positives and negatives are drawn there at the epoch's start, and batches
are views of them, so no batch crosses from the host and no step waits for it. Rejecting the
user's training items takes a few rounds per epoch (each round one host check of whether any
draw is left to redo), never one per batch.

The stream differs from the numpy sampler's: a run seeded with ``s`` on a GPU draws other
batches than the same run on the CPU (each is reproducible on its device).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch

from sslrec.data.sampling import PROPOSALS, PROTOCOLS, Batch

#: above this many negatives an epoch (e.g. SimpleX's 1,000 per positive) they are drawn batch
#: by batch instead, bounding memory at the price of a few host checks per batch
EPOCH_DRAW_LIMIT = 1 << 26


class DeviceSampler:
    """Draws epochs of :class:`Batch` es on ``device`` from a binary ``[U, I]`` train CSR.

    Args:
        train: the binary training matrix (any scipy sparse layout).
        batch_size: positives per batch (the last batch may be smaller).
        protocol: ``interaction`` (every pair once, shuffled) or ``user_uniform``.
        seed: seeds the sampler's own torch generator on ``device`` (its state is checkpointed).
        num_negatives: ``k``; ``neg`` is ``[B]`` for 1, else ``[B, k]``.
        negative_sampling: ``uniform`` or ``popularity`` (``q(i) ∝ count(i)^α``).
        popularity_exponent: ``α``.
        device: where everything is drawn.
    """

    def __init__(
        self,
        train: sp.spmatrix,
        batch_size: int,
        protocol: str = "interaction",
        seed: int = 0,
        num_negatives: int = 1,
        negative_sampling: str = "uniform",
        popularity_exponent: float = 1.0,
        device: torch.device | str = "cpu",
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be 'interaction' or 'user_uniform', got {protocol!r}")
        if negative_sampling not in PROPOSALS:
            raise ValueError(
                f"negative_sampling must be 'uniform' or 'popularity', got {negative_sampling!r}"
            )
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be at least 1, got {num_negatives}")
        train = sp.csr_matrix(train)
        if not train.has_canonical_format:
            train = train.copy()
            train.sum_duplicates()
        self.device = torch.device(device)
        self.n_users, self.n_items = train.shape
        degree = np.diff(train.indptr)
        if (degree >= self.n_items).any():
            user = int(np.flatnonzero(degree >= self.n_items)[0])
            raise ValueError(f"user {user} interacted with every item; no negative can be drawn")

        def on(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a.astype(np.int64), device=self.device)

        self.indptr, self.indices, self.degree = on(train.indptr), on(train.indices), on(degree)
        self.rows = torch.repeat_interleave(
            torch.arange(self.n_users, device=self.device), self.degree
        )
        self.keys = self.rows * self.n_items + self.indices  # sorted: rows, then columns
        self.active_users = on(np.flatnonzero(degree > 0))
        self.batch_size = batch_size
        self.protocol = protocol
        self.num_negatives = num_negatives
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.log_q: torch.Tensor | None = None
        self.cdf: torch.Tensor | None = None
        if negative_sampling == "popularity":
            count = np.bincount(train.indices, minlength=self.n_items).astype(np.float64)
            q = count**popularity_exponent
            q /= q.sum()
            with np.errstate(divide="ignore"):
                self.log_q = torch.as_tensor(np.log(q), dtype=torch.float32, device=self.device)
            cdf = np.cumsum(q)
            cdf[-1] = 1.0
            self.cdf = torch.as_tensor(cdf, dtype=torch.float64, device=self.device)
            tried = np.add.reduceat(np.append(q[train.indices], 0.0), train.indptr[:-1])
            stuck = np.flatnonzero((degree > 0) & (tried >= 1.0 - 1e-12))
            if len(stuck):
                raise ValueError(
                    f"user {int(stuck[0])}: every item it has not trained on has probability 0 "
                    "under the popularity proposal (no training interactions); use "
                    "negative_sampling=uniform"
                )

    def __len__(self) -> int:
        return -(-self.keys.numel() // self.batch_size)

    def state(self) -> torch.Tensor:
        """The generator's state (a uint8 tensor on the CPU), for checkpoints."""
        return self.generator.get_state()

    def load_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state.cpu())

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Whether each ``(users[k], items[k])`` is a training interaction (same shape)."""
        keys = users * self.n_items + items
        pos = torch.searchsorted(self.keys, keys).clamp(max=self.keys.numel() - 1)
        return self.keys[pos] == keys

    def _propose(self, n: int) -> torch.Tensor:
        if self.cdf is None:
            return torch.randint(
                0, self.n_items, (n,), generator=self.generator, device=self.device
            )
        u = torch.rand(n, generator=self.generator, device=self.device, dtype=torch.float64)
        return torch.searchsorted(self.cdf, u, right=True)

    def sample_negatives(self, users: torch.Tensor) -> torch.Tensor:
        """``[n]`` items from the proposal among those each user has not trained on."""
        negs = self._propose(users.numel())
        todo = torch.nonzero(self.is_positive(users, negs)).squeeze(1)
        while todo.numel():  # one host check per round; a few rounds per epoch
            negs[todo] = self._propose(todo.numel())
            todo = todo[self.is_positive(users[todo], negs[todo])]
        return negs

    def epoch_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``([n_train], [n_train])`` users and positives of one epoch, in batch order."""
        n = self.keys.numel()
        if self.protocol == "interaction":
            order = torch.randperm(n, generator=self.generator, device=self.device)
            return self.rows[order], self.indices[order]
        pick = torch.randint(
            0, self.active_users.numel(), (n,), generator=self.generator, device=self.device
        )
        users = self.active_users[pick]
        r = torch.rand(n, generator=self.generator, device=self.device, dtype=torch.float64)
        offsets = (r * self.degree[users]).long()
        return users, self.indices[self.indptr[users] + offsets]

    def epoch(self) -> Iterator[Batch]:
        """Yields the epoch's batches: slices of tensors drawn on the device at its start."""
        users, pos = self.epoch_pairs()
        k = self.num_negatives
        whole = users.numel() * k <= EPOCH_DRAW_LIMIT
        neg_all = self._negatives(users) if whole else None
        for start in range(0, users.numel(), self.batch_size):
            sl = slice(start, start + self.batch_size)
            neg = neg_all[sl] if neg_all is not None else self._negatives(users[sl])
            batch = Batch(users[sl], pos[sl], neg)
            if self.log_q is not None:
                batch.pos_log_q, batch.neg_log_q = self.log_q[pos[sl]], self.log_q[neg]
            yield batch

    def _negatives(self, users: torch.Tensor) -> torch.Tensor:
        """``[n]`` (k = 1) or ``[n, k]`` negatives for ``users`` ``[n]``."""
        k = self.num_negatives
        if k == 1:
            return self.sample_negatives(users)
        return self.sample_negatives(users.repeat_interleave(k)).view(-1, k)
