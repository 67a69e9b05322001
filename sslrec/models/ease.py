"""EASE (Steck, WWW 2019): a linear item-item autoencoder with a closed-form solution::

    min_B ‖X − X B‖²_F + λ ‖B‖²_F   subject to   diag(B) = 0
    P = (XᵀX + λ I)⁻¹,   B_ij = −P_ij / P_jj,   B_jj = 0       i.e. B = I − P · diagMat(1 / diag(P))
    S = X B                                    (a user's scores: x_u B, seen items masked)

``X`` is the binary ``[U, I]`` training matrix. The code follows RecBole's and a widely used
peer implementation (``RUCAIBox/RecBole@7b02be5 recbole/model/general_recommender/ease.py:34-51``,
``Darel13712/ease_rec@40d0bb1 model.py:28-33``; ``docs/zoo/ease.md``): ``G = XᵀX`` dense,
``G += λ`` on the diagonal, ``P = inv(G)``, ``B = P / −diag(P)`` (numpy broadcasting: column
``j`` divided by ``−P_jj``), diagonal zeroed. Here ``P`` comes from a Cholesky factorisation
(``XᵀX + λI`` is symmetric positive definite for ``λ > 0``: ``cholesky`` + ``cholesky_inverse``,
half the work and memory of ``inv``); ``solver=inverse`` is their ``inv``. RecBole solves in
float32 (its ``G`` stays float32 since f220b70), as ``dtype=float32`` here; the peer code's
``np.ones`` make it float64 (``dtype=float64``).

**Memory.** The fit holds dense ``[I, I]`` matrices: ``G``, its factor, ``P`` (``B`` is written
into ``P``). Measured peak on the CPU (``VmHWM``): 2 matrices with ``cholesky``, 3 with
``inverse``; on CUDA ``cholesky_inverse`` clones its input (ATen ``_cholesky_inverse_cusolver_
potrs_based``), so 3 and 4 are assumed there (not measured). One float32 matrix is ``4 I²``
bytes: lastfm's 4,489 items 81 MB, yelp2018's 38,048 items 5.8 GB, gowalla's 40,981 items
6.7 GB (float64 twice that). The model refuses, before allocating anything, when the estimate
exceeds the device's free memory (:class:`~sslrec.models.closed_form.InsufficientMemoryError`;
``model.memory_check=false`` forces the attempt).

Fitting once, checkpoints, scoring and ``embeddings.npz`` are
:class:`~sslrec.models.closed_form.ClosedFormRecommender`'s.
"""

from __future__ import annotations

import torch

from sslrec.models.closed_form import (
    BLOCK_BYTES,
    DTYPES,
    ClosedFormRecommender,
    check_memory,
    gram_matrix,
)

SOLVERS = ("cholesky", "inverse")
#: dense [I, I] matrices alive at the solve's peak, by (solver, device type): the CPU values
#: are measured (peak RSS of the fit over the baseline, I = 5,000); the CUDA ones are read
#: from ATen (cholesky_inverse clones its input; inv solves against an identity)
PEAK_MATRICES = {
    ("cholesky", "cpu"): 2,
    ("inverse", "cpu"): 3,
    ("cholesky", "cuda"): 3,
    ("inverse", "cuda"): 4,
}


def ease_memory(n_items: int, dtype: torch.dtype, solver: str, device: torch.device) -> int:
    """Peak bytes of :meth:`EASE.fit`: ``PEAK_MATRICES`` dense ``[I, I]`` matrices plus two
    fitting blocks (:data:`BLOCK_BYTES`)."""
    kind = "cuda" if device.type == "cuda" else "cpu"
    element = torch.empty(0, dtype=dtype).element_size()
    return PEAK_MATRICES[(solver, kind)] * n_items**2 * element + 2 * BLOCK_BYTES


class EASE(ClosedFormRecommender):
    """EASE: ``B = I − P · diagMat(1 / diag(P))`` with ``P = (XᵀX + λI)⁻¹``, ``diag(B) = 0``;
    scores ``S = X B`` (module docstring).

    Args:
        n_users, n_items, train_users, train_items: see
            :class:`~sslrec.models.closed_form.ClosedFormRecommender`.
        reg_weight: ``λ > 0``. The default 200 was chosen on lastfm's validation split
            (``conf/model/ease.yaml``); RecBole's default is 250, BARS used 300 on yelp18.
        dtype: ``float32`` (default) or ``float64`` for ``G``, the solve and ``B``.
        solver: ``cholesky`` (``cholesky`` + ``cholesky_inverse``: ``XᵀX + λI`` is SPD) or
            ``inverse`` (``torch.linalg.inv``, the official code's ``np.linalg.inv``).
        memory_check: refuse (:class:`~sslrec.models.closed_form.InsufficientMemoryError`)
            before allocating when the fit's peak (:func:`ease_memory`) exceeds the free
            memory; ``False`` tries anyway.
        save_fitted: ``checkpoint.pt`` keeps ``B`` (``4 I²`` bytes in float32); ``False``
            keeps none, and ``sslrec recommend``/``evaluate`` fit again from the run's data.
    """

    fitted_buffers = ("B",)
    config_name = "ease"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        train_users: torch.Tensor,
        train_items: torch.Tensor,
        reg_weight: float = 200.0,
        dtype: str = "float32",
        solver: str = "cholesky",
        memory_check: bool = True,
        save_fitted: bool = True,
    ) -> None:
        if isinstance(reg_weight, bool) or not isinstance(reg_weight, int | float):
            raise ValueError(f"model.reg_weight must be a number > 0, got {reg_weight!r}")
        if not reg_weight > 0:
            raise ValueError(
                f"model.reg_weight must be > 0 (XᵀX is singular when an item has no training "
                f"interaction), got {reg_weight}"
            )
        if dtype not in DTYPES:
            raise ValueError(f"model.dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if solver not in SOLVERS:
            raise ValueError(f"model.solver must be one of {SOLVERS}, got {solver!r}")
        super().__init__(n_users, n_items, train_users, train_items)
        self.reg_weight = float(reg_weight)
        self.dtype = dtype
        self.solver = solver
        self.memory_check = memory_check
        self.save_fitted = save_fitted
        # at construction too, so that a run refuses before its directory is written
        self.check_memory()

    def memory_needed(self) -> int:
        """Peak bytes of :meth:`fit` on this model's device."""
        return ease_memory(self.n_items, DTYPES[self.dtype], self.solver, self.device)

    def check_memory(self) -> None:
        """The closed-form memory check for this fit (``closed_form.check_memory``), unless
        ``memory_check`` is off."""
        if not self.memory_check:
            return
        check_memory(
            self.memory_needed(),
            self.device,
            f"model=ease on {self.n_items:,} items ({self.dtype}, {self.solver}: "
            f"{PEAK_MATRICES[(self.solver, 'cuda' if self.device.type == 'cuda' else 'cpu')]} "
            f"dense {self.n_items:,}x{self.n_items:,} matrices)",
            "model.memory_check",
        )

    @torch.no_grad()
    def fit(self) -> None:
        self.check_memory()
        self.B = None  # a refit frees the old B first
        gram = gram_matrix(self.history_t(), DTYPES[self.dtype])
        gram.diagonal().add_(self.reg_weight)
        if self.solver == "cholesky":
            factor, info = torch.linalg.cholesky_ex(gram)
            del gram  # peak: two matrices (G and its factor, then the factor and P)
            if int(info) != 0:
                raise ValueError(
                    f"model=ease: XᵀX + λI is not numerically positive definite in "
                    f"{self.dtype} (leading minor {int(info)} failed, λ = {self.reg_weight}); "
                    "use model.dtype=float64 or a larger model.reg_weight"
                )
            p = torch.cholesky_inverse(factor)
            del factor
        else:
            p = torch.linalg.inv(gram)
            del gram
        # B_ij = -P_ij / P_jj: column j divided by -P_jj, in place (P becomes B)
        p.div_(p.diagonal().neg())
        p.fill_diagonal_(0.0)
        self.B = p

    def fitted_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"B": (self.n_items, self.n_items)}

    def fitted_state(self) -> dict[str, torch.Tensor]:
        return super().fitted_state() if self.save_fitted else {}

    def load_fitted(self, state: dict[str, torch.Tensor]) -> None:
        super().load_fitted(state)
        self.B = self.B.to(DTYPES[self.dtype])

    def item_item(self) -> torch.Tensor:
        return self.B
