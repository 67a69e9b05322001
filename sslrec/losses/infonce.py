"""InfoNCE between two views of the same nodes, with cosine similarity and temperature τ."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sslrec.devices import host_paths
from sslrec.graph.rows import Rows, take
from sslrec.losses.normalize import unit_rows
from sslrec.losses.tiled import tiled_logsumexp


def info_nce(
    view1: torch.Tensor | Rows,
    view2: torch.Tensor | Rows,
    anchors: torch.Tensor,
    temperature: float,
    negatives: str = "all",
    reduction: str = "sum",
    fused: bool = True,
    precision: str = "fp32",
) -> torch.Tensor:
    """``Σ_a −log( exp(s(a₁, a₂)/τ) / Σ_{b ∈ N} exp(s(a₁, b₂)/τ) )`` with ``s`` the cosine.

    Args:
        view1, view2: ``[N, d]`` the two views of all ``N`` nodes of one kind (users or items);
            either may be the :class:`~sslrec.graph.rows.Rows` that hold the anchors, ``view2``
            only with ``in_batch`` negatives (``all`` takes every row of it).
        anchors: ``[B]`` int64 node ids in the batch.
        temperature: ``τ``.
        negatives: ``all``: anchors are the batch ids as given (duplicates included: the fused
            CPU path takes each distinct id once, weighted by its count) and ``N`` is every node
            of ``view2`` (official SGL). ``in_batch``: anchors are the unique batch
            ids and ``N`` is those same ids in ``view2`` (official SimGCL/XSimGCL).
        reduction: ``sum`` (SGL) or ``mean`` (SimGCL/XSimGCL) over anchors.
        fused: the tiled logsumexp (:func:`tiled_logsumexp`: the ``[B, N]`` logits are never
            materialised, forward nor backward); ``False`` builds the block (the reference
            path; both are tested equal). With ``in_batch`` negatives on the CPU the block is
            only ``[B, B]``, yet the tiled kernel is faster there too: 16 MB of logits re-read
            by every pass against one more GEMM, 0.61-0.87 of the block's time at B = 2048
            (``experiments/bench_infonce.py --B 2048 --N 2048``). On an accelerator
            ``in_batch`` keeps its masked block.
        precision: ``fp32``, or ``bf16``: the logits' matmuls take bfloat16 copies of the
            normalised anchors and candidates (tensor cores on a GPU; 8 significant bits per
            logit); sums, the positive term and the result stay in float32.

    Returns:
        scalar.
    """
    if negatives not in ("all", "in_batch"):
        raise ValueError(f"negatives must be 'all' or 'in_batch', got {negatives!r}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    if negatives == "all" and isinstance(view2, Rows):
        raise ValueError("negatives='all' needs view2 as a whole [N, d] table, not some Rows")
    if negatives == "in_batch" and not host_paths(anchors.device):
        # torch.unique's output size is data-dependent: on an accelerator it syncs the host
        return _in_batch_masked(view1, view2, anchors, temperature, reduction, precision)
    n_anchors = anchors.shape[0]
    counts = None
    if negatives == "in_batch":
        anchors = torch.unique(anchors)
    elif fused and host_paths(anchors.device):
        # Each distinct anchor once, weighted by its count: the same loss and gradients with
        # ~8% fewer B·N·d GEMMs on gowalla's batches (lastfm's repeat ~40% of their ids). Not on
        # accelerators, where torch.unique's data-dependent size would sync with the host.
        anchors, counts = torch.unique(anchors, return_counts=True)
    # 1/τ is folded into the [B, d] anchors rather than applied to the [B, N] logits block.
    a = unit_rows(take(view1, anchors)) / temperature
    p = unit_rows(take(view2, anchors))
    candidates = p if negatives == "in_batch" else unit_rows(view2)
    a_lp, c_lp = (a, candidates) if precision == "fp32" else (a.bfloat16(), candidates.bfloat16())
    weights = None if counts is None else counts.to(a.dtype)
    if fused:
        lse = tiled_logsumexp(a_lp, c_lp, weights=weights).to(a.dtype)
    else:
        lse = torch.logsumexp((a_lp @ c_lp.t()).to(a.dtype), dim=1)
    loss = lse - (a * p).sum(-1)
    if weights is None:
        return loss.sum() if reduction == "sum" else loss.mean()
    total = (loss * weights).sum()
    return total if reduction == "sum" else total / n_anchors


def first_occurrence(ids: torch.Tensor) -> torch.Tensor:
    """``[..., B]`` bool: ``True`` at the first position of each distinct id along the last
    dimension (each row on its own; no host sync)."""
    order = torch.argsort(ids, dim=-1, stable=True)
    sorted_ids = ids.gather(-1, order)
    first = torch.ones_like(ids, dtype=torch.bool)
    first[..., 1:] = sorted_ids[..., 1:] != sorted_ids[..., :-1]
    return torch.empty_like(first).scatter_(-1, order, first)


def _in_batch_masked(
    view1: torch.Tensor | Rows,
    view2: torch.Tensor | Rows,
    anchors: torch.Tensor,
    temperature: float,
    reduction: str,
    precision: str = "fp32",
) -> torch.Tensor:
    """In-batch InfoNCE over the unique anchors without ``torch.unique``: duplicate ids are
    masked out as anchors and as candidates, so the value equals the unique-id form (up to
    summation order) with shapes that do not depend on the data."""
    return _in_batch_masked_sides([(view1, view2, anchors)], temperature, reduction, precision)


def _in_batch_masked_sides(
    sides: Sequence[tuple[torch.Tensor | Rows, torch.Tensor | Rows, torch.Tensor]],
    temperature: float,
    reduction: str,
    precision: str = "fp32",
) -> torch.Tensor:
    """``Σ_s`` :func:`_in_batch_masked` ``(view1_s, view2_s, anchors_s)`` over ``sides`` whose
    anchors are all ``[B]``, computed for every side at once: a ``[S, B, B]`` block, one
    kernel per step for all sides (an accelerator's step is bound by its launches; for
    SimGCL/XSimGCL's users and items this halves the head's)."""
    anchors = torch.stack([ids for _, _, ids in sides])  # [S, B]
    keep = first_occurrence(anchors)
    a = unit_rows(torch.stack([take(v1, ids) for v1, _, ids in sides])) / temperature
    p = unit_rows(torch.stack([take(v2, ids) for _, v2, ids in sides]))
    dt = torch.bfloat16 if precision == "bf16" else a.dtype
    logits = torch.bmm(a.to(dt), p.to(dt).transpose(1, 2)).to(a.dtype)  # [S, B, B]
    logits = logits.masked_fill(~keep[:, None, :], float("-inf"))
    loss = (torch.logsumexp(logits, dim=-1) - (a * p).sum(-1)) * keep  # [S, B]
    per_side = loss.sum(-1)
    if reduction == "mean":
        per_side = per_side / keep.sum(-1)
    return per_side.sum()


@dataclass(frozen=True)
class InfoNCEHead:
    """The user-view and item-view InfoNCE terms of a batch, summed.

    Attributes:
        temperature: ``τ``.
        negatives: ``all`` (official SGL) or ``in_batch`` (official SimGCL/XSimGCL).
        reduction: ``sum`` (SGL) or ``mean`` (SimGCL/XSimGCL), per view.
        fused: the tiled logsumexp (on an accelerator ``in_batch`` keeps its masked block);
            ``False``: the block.
        precision: ``fp32`` or ``bf16`` logits (:func:`info_nce`).
    """

    temperature: float = 0.2
    negatives: str = "all"
    reduction: str = "sum"
    fused: bool = True
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if not self.temperature > 0:  # also refuses NaN
            raise ValueError(f"InfoNCE temperature must be > 0, got {self.temperature}")
        if self.negatives not in ("all", "in_batch"):
            raise ValueError(f"negatives must be 'all' or 'in_batch', got {self.negatives!r}")
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {self.reduction!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")

    def __call__(
        self,
        view1: tuple[torch.Tensor | Rows, torch.Tensor | Rows],
        view2: tuple[torch.Tensor | Rows, torch.Tensor | Rows],
        users: torch.Tensor,
        items: torch.Tensor,
    ) -> torch.Tensor:
        """``InfoNCE(users) + InfoNCE(items)``.

        Args:
            view1, view2: ``(users [U, d], items [I, d])`` of each view, or the
                :class:`~sslrec.graph.rows.Rows` that hold the anchors (:func:`info_nce`).
            users: ``[B]`` batch users (user-side anchors).
            items: ``[B]`` batch positive items (item-side anchors).
        """
        if (
            self.negatives == "in_batch"
            and not host_paths(users.device)
            and users.shape == items.shape
        ):  # both sides in one block: half the kernels (on the host, torch.unique's sizes)
            sides = [(view1[0], view2[0], users), (view1[1], view2[1], items)]
            return _in_batch_masked_sides(sides, self.temperature, self.reduction, self.precision)
        kw = {
            "temperature": self.temperature,
            "negatives": self.negatives,
            "reduction": self.reduction,
            "fused": self.fused,
            "precision": self.precision,
        }
        return info_nce(view1[0], view2[0], users, **kw) + info_nce(view1[1], view2[1], items, **kw)
