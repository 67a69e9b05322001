"""L2 regularisation of the embeddings a batch touches."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class L2Reg:
    """``weight · ½ Σ_t ‖E_t‖² / B`` over the batch's embedding tables ``E_t`` (defaults).

    The defaults are the official LightGCN code (``tf.nn.l2_loss`` of the layer-0 user, positive
    and negative embeddings, divided by the batch size ``B``) and LightGCN-PyTorch.

    Attributes:
        weight: the coefficient λ (``reg`` in the papers' configs).
        reduction: ``mean`` divides by the batch size ``B``; ``sum`` does not (official
            SGL-Torch, whose BPR is also a sum).
        squared: ``True`` uses ``½‖E‖²_F``; ``False`` uses ``‖E‖_F`` (SELFRec's ``l2_reg_loss``
            for SimGCL/XSimGCL uses the unsquared norm).
        apply_to: ``ego`` regularises layer-0 embeddings (official); ``propagated`` the final ones.
        include_negative: regularise the negative items' rows too (LightGCN, SGL); SELFRec's
            SimGCL/XSimGCL regularise only the user and positive-item rows.
    """

    weight: float = 1e-4
    reduction: str = "mean"
    squared: bool = True
    apply_to: str = "ego"
    include_negative: bool = True

    def __post_init__(self) -> None:
        if self.reduction not in ("mean", "sum"):
            raise ValueError(f"reg reduction must be 'mean' or 'sum', got {self.reduction!r}")
        if self.apply_to not in ("ego", "propagated"):
            raise ValueError(f"reg apply_to must be 'ego' or 'propagated', got {self.apply_to!r}")

    def __call__(self, *embeddings: torch.Tensor) -> torch.Tensor:
        """``embeddings``: tensors ``[B, d]`` (user, positive, negative rows). Returns a scalar."""
        if self.squared:
            total = sum(0.5 * e.pow(2).sum() for e in embeddings)
        else:
            total = sum(e.norm(p=2) for e in embeddings)
        if self.reduction == "mean":
            total = total / embeddings[0].shape[0]
        return self.weight * total
