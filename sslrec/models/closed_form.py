"""What every closed-form recommender shares (EASE, ItemKNN): the fitted-once interface, binary
interaction matrices as CSR index arrays, the item-item scorer and the memory check.

**Closed-form models** (:class:`ClosedFormRecommender`): no parameters, no loss, no batches.
``Trainer.fit`` calls :meth:`~ClosedFormRecommender.fit` once instead of the epoch loop,
evaluates the selection split once (one ``metrics.jsonl`` record, epoch 1) and the test split;
``checkpoint.pt``'s ``model`` holds :meth:`~ClosedFormRecommender.fitted_state` (EASE's ``B``:
GBs on the benchmarks, ``model.save_fitted=false`` keeps none and ``sslrec recommend/evaluate``
fit again, deterministically). A resumed closed-form run fits again: there is no state to
resume. ``embeddings.npz`` holds zero-width ``user [U, 0]`` and ``item [I, 0]`` arrays: the
scores are ``x_u W`` with an ``[I, I]`` item-item ``W`` (:class:`ItemItemScorer`), not an inner
product of factors (``results.json``: ``"scoring": "model"``).

**Memory.** :func:`check_memory` refuses a fit, before anything is allocated, when its estimated
peak exceeds the device's free memory (:func:`available_memory`), with
:class:`InsufficientMemoryError` naming the need, the free memory and the option that skips the
check. Dense blocks built while fitting stay within :data:`BLOCK_BYTES`.
"""

from __future__ import annotations

import logging
import warnings
from typing import ClassVar

import torch

from sslrec.data.sampling import Batch
from sslrec.losses import Term
from sslrec.models.base import Recommender

log = logging.getLogger(__name__)

#: ``model.dtype`` names
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: the most bytes of one dense block built while fitting (a column block of X, one of XᵀX)
BLOCK_BYTES = 256 * 2**20


# -- memory ----------------------------------------------------------------------------------
class InsufficientMemoryError(MemoryError):
    """A dense fit would not fit in the device's free memory; nothing was allocated."""


def available_memory(device: torch.device) -> int | None:
    """Bytes that can still be allocated on ``device``: CUDA's free memory plus what torch's
    caching allocator holds unused; on the CPU ``/proc/meminfo``'s ``MemAvailable`` (``None``
    where it cannot be told)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def check_memory(needed: int, device: torch.device, what: str, override: str) -> None:
    """Raise :class:`InsufficientMemoryError` when ``needed`` bytes exceed the free memory of
    ``device`` (a warning where it cannot be told).

    Args:
        what: the sentence's subject, e.g. ``"EASE on 40,981 items (float32, cholesky)"``.
        override: the option that skips this check, named in the message.
    """
    free = available_memory(device)
    if free is None:
        log.warning("%s needs ~%s; %s free memory unknown", what, gib(needed), device)
        return
    if needed > free:
        raise InsufficientMemoryError(
            f"{what} needs ~{gib(needed)} on {device} at its peak, but only {gib(free)} is "
            f"free there; nothing was allocated. Use a device with more memory (device=cuda), "
            f"fewer items, or pass {override}=false to try anyway"
        )


# -- binary interaction matrices -------------------------------------------------------------
def csr(
    indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """A torch sparse CSR tensor from valid parts (no invariant check, no beta warning)."""
    with warnings.catch_warnings():  # torch flags sparse CSR as beta on every construction
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(indptr, indices, values, size=shape, check_invariants=False)


class BinaryMatrix:
    """A binary ``[R, C]`` matrix as CSR index arrays (``indptr [R + 1]``, ``indices [nnz]``,
    column ids sorted within each row) on one device.

    Args:
        indptr, indices: the CSR arrays (int64).
        n_cols: ``C``.
    """

    def __init__(self, indptr: torch.Tensor, indices: torch.Tensor, n_cols: int) -> None:
        self.indptr = indptr
        self.indices = indices
        self.n_rows = indptr.shape[0] - 1
        self.n_cols = n_cols

    @classmethod
    def from_pairs(
        cls, rows: torch.Tensor, cols: torch.Tensor, n_rows: int, n_cols: int
    ) -> BinaryMatrix:
        """The matrix with ones at the unique ``(rows[k], cols[k])`` ``[nnz]`` pairs."""
        keys = torch.unique(rows.long() * n_cols + cols.long())  # sorted, duplicates merged
        rows, cols = keys // n_cols, keys % n_cols
        counts = torch.bincount(rows, minlength=n_rows)
        indptr = torch.zeros(n_rows + 1, dtype=torch.int64, device=rows.device)
        indptr[1:] = torch.cumsum(counts, 0)
        return cls(indptr, cols, n_cols)

    def counts(self) -> torch.Tensor:
        """``[R]`` int64: ones per row."""
        return self.indptr[1:] - self.indptr[:-1]

    def sparse(self, dtype: torch.dtype) -> torch.Tensor:
        """The whole matrix as a sparse CSR ``[R, C]`` tensor of ``dtype`` ones."""
        ones = torch.ones(self.indices.shape[0], dtype=dtype, device=self.indices.device)
        return csr(self.indptr, self.indices, ones, (self.n_rows, self.n_cols))

    def select_rows(self, rows: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Sparse CSR ``[b, C]``: rows ``rows`` ``[b]`` (int64, on this device), in order."""
        starts, stops = self.indptr[rows], self.indptr[rows + 1]
        counts = stops - starts
        indptr = torch.zeros(rows.shape[0] + 1, dtype=torch.int64, device=rows.device)
        indptr[1:] = torch.cumsum(counts, 0)
        # position k of the gathered entries reads entry starts[r] + (k - indptr[r]) of row r
        offsets = torch.repeat_interleave(starts - indptr[:-1], counts)
        positions = torch.arange(offsets.shape[0], device=rows.device) + offsets
        ones = torch.ones(positions.shape[0], dtype=dtype, device=rows.device)
        return csr(indptr, self.indices[positions], ones, (rows.shape[0], self.n_cols))

    def dense_rows_t(self, r0: int, r1: int, dtype: torch.dtype) -> torch.Tensor:
        """Dense ``[C, r1 − r0]``: rows ``r0:r1``, transposed (a column block of the
        transposed matrix, the right operand of ``sparse @ dense``)."""
        lo, hi = int(self.indptr[r0]), int(self.indptr[r1])
        block = torch.zeros(self.n_cols, r1 - r0, dtype=dtype, device=self.indices.device)
        local_rows = torch.repeat_interleave(
            torch.arange(r1 - r0, device=self.indices.device), self.counts()[r0:r1]
        )
        block[self.indices[lo:hi], local_rows] = 1
        return block

    def block_rows(self, dtype: torch.dtype) -> int:
        """Rows per :meth:`dense_rows_t` block within :data:`BLOCK_BYTES` (a ``[C, b]`` block
        and the ``[R, b]`` product it yields)."""
        element = torch.empty(0, dtype=dtype).element_size()
        return max(1, BLOCK_BYTES // (max(self.n_rows, self.n_cols) * element))


def gram_matrix(xt: BinaryMatrix, dtype: torch.dtype) -> torch.Tensor:
    """``G = XᵀX`` dense ``[I, I]`` from ``xt = Xᵀ`` ``[I, U]``, one block of columns at a time
    (``Xᵀ @ X[:, c0:c1]``; ``G`` is symmetric, so the block is written as rows ``c0:c1``):
    besides ``G``, at most two blocks of :data:`BLOCK_BYTES`."""
    n = xt.n_rows
    gram = torch.empty(n, n, dtype=dtype, device=xt.indices.device)
    left = xt.sparse(dtype)
    step = xt.block_rows(dtype)
    for c0 in range(0, n, step):
        c1 = min(c0 + step, n)
        gram[c0:c1] = torch.sparse.mm(left, xt.dense_rows_t(c0, c1, dtype)).T
    return gram


# -- scoring ---------------------------------------------------------------------------------
class ItemItemScorer:
    """``s(u, ·) = x_u W``: a user's binary training row times an item-item ``W`` ``[I, I]``
    (EASE's dense ``B``; ItemKNN's sparse top-k similarity), one block of users at a time.

    Args:
        history: ``X`` ``[U, I]`` (the training interactions).
        weights: ``W``, dense ``[I, I]`` or sparse CSR ``[I, I]``.
    """

    block_users = None

    def __init__(self, history: BinaryMatrix, weights: torch.Tensor) -> None:
        self.history = history
        self.sparse = weights.layout == torch.sparse_csr
        # the trainer checks every tensor field for NaN/inf; a CSR tensor cannot be checked,
        # so it is kept in a tuple and its values are exposed instead
        self.matrix = (weights,)
        self.weights = weights.values() if self.sparse else weights
        self.dtype = self.weights.dtype
        self.n_items = history.n_cols
        self.device = history.indices.device

    @torch.no_grad()
    def full_scores(self, users: torch.Tensor) -> torch.Tensor:
        rows = self.history.select_rows(users.to(self.device), self.dtype)  # [b, I] sparse
        scores = rows @ self.matrix[0]
        return scores.to_dense() if self.sparse else scores

    @torch.no_grad()
    def score(self, users: torch.Tensor, items: torch.Tensor, block: int = 1024) -> torch.Tensor:
        """``users`` ``[B]``, ``items`` ``[B]`` or ``[B, k]`` → scores of ``items``'s shape,
        ``block`` users' ``[b, I]`` scores at a time."""
        cols = items.unsqueeze(1) if items.dim() == 1 else items
        out = torch.cat(
            [
                self.full_scores(users[s : s + block]).gather(1, cols[s : s + block])
                for s in range(0, users.shape[0], block)
            ]
        )
        return out.squeeze(1) if items.dim() == 1 else out


# -- the closed-form interface ---------------------------------------------------------------
class ClosedFormRecommender(Recommender):
    """A model fitted once, in closed form, on the training interactions it is built with.

    ``Trainer.fit`` calls :meth:`fit` instead of the epoch loop (``closed_form``); there is no
    loss, optimiser or sampler. Subclasses implement :meth:`fit` (setting the buffers named in
    ``fitted_buffers``) and :meth:`item_item` (the scorer's ``W``).

    Args:
        n_users, n_items: ``U``, ``I``.
        train_users, train_items: ``[nnz]`` ids of the training interactions (``X``), on the
            model's device (``graph_inputs = ("interactions",)``: the factory passes them).
    """

    closed_form: ClassVar[bool] = True
    inner_product: ClassVar[bool] = False
    graph_inputs: ClassVar[tuple[str, ...]] = ("interactions",)
    #: what :meth:`fit` computes: the buffers ``checkpoint.pt`` keeps
    fitted_buffers: ClassVar[tuple[str, ...]] = ()
    #: the ``model=`` name, for messages
    config_name: ClassVar[str] = ""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        train_users: torch.Tensor,
        train_items: torch.Tensor,
    ) -> None:
        super().__init__(n_users, n_items)
        x = BinaryMatrix.from_pairs(train_users, train_items, n_users, n_items)
        xt = BinaryMatrix.from_pairs(train_items, train_users, n_items, n_users)
        # index arrays: moved by .to(device), rebuilt from the data, never saved
        self.register_buffer("x_indptr", x.indptr, persistent=False)
        self.register_buffer("x_items", x.indices, persistent=False)
        self.register_buffer("xt_indptr", xt.indptr, persistent=False)
        self.register_buffer("xt_users", xt.indices, persistent=False)
        for name in self.fitted_buffers:
            self.register_buffer(name, None)

    @property
    def device(self) -> torch.device:
        return self.x_indptr.device

    def history(self) -> BinaryMatrix:
        """``X`` ``[U, I]``."""
        return BinaryMatrix(self.x_indptr, self.x_items, self.n_items)

    def history_t(self) -> BinaryMatrix:
        """``Xᵀ`` ``[I, U]``."""
        return BinaryMatrix(self.xt_indptr, self.xt_users, self.n_users)

    @property
    def fitted(self) -> bool:
        return bool(self.fitted_buffers) and all(
            getattr(self, name) is not None for name in self.fitted_buffers
        )

    def fit(self) -> None:
        """Compute the fitted buffers from ``X`` (deterministic)."""
        raise NotImplementedError

    def fitted_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape each fitted buffer must have (checked by :meth:`load_fitted`)."""
        raise NotImplementedError

    def item_item(self) -> torch.Tensor:
        """``W`` ``[I, I]`` (dense or sparse CSR) with scores ``S = X W``."""
        raise NotImplementedError

    def fitted_state(self) -> dict[str, torch.Tensor]:
        """What ``checkpoint.pt`` keeps as ``model``: the fitted buffers."""
        return {name: getattr(self, name) for name in self.fitted_buffers}

    def load_fitted(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`fitted_state` (onto this model's device).

        Raises:
            ValueError: a buffer is missing or has another shape (another dataset's ids).
        """
        for name, shape in self.fitted_shapes().items():
            value = state.get(name)
            if value is None or tuple(value.shape) != shape:
                got = None if value is None else tuple(value.shape)
                raise ValueError(
                    f"model={self.config_name}: fitted {name!r} should have shape {shape} "
                    f"for {self.n_users} users and {self.n_items} items, got {got}"
                )
            setattr(self, name, value.to(self.device))

    def loss(self, batch: Batch) -> dict[str, Term]:
        raise TypeError(
            f"model={self.config_name} is fitted in closed form (Trainer.fit calls its fit() "
            "once); it has no loss and trains on no batches"
        )

    def scorer(self) -> ItemItemScorer:
        if not self.fitted:
            raise RuntimeError(f"model={self.config_name} is not fitted yet: call fit() first")
        return ItemItemScorer(self.history(), self.item_item())

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.scorer().score(users, items)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-width ``(user [U, 0], item [I, 0])``: ``embeddings.npz`` keeps the output
        contract's arrays, but the scores are no inner product of factors."""
        return torch.zeros(self.n_users, 0), torch.zeros(self.n_items, 0)
