"""Non-finite training (NaN or inf): an epoch's loss values per batch with the first bad one, the
check of the representations at evaluation, and the error that ends a run that diverged.

With ``trainer.on_nonfinite=stop`` (the default) nothing is read to the host per batch: on a GPU
a sync per batch costs more than the step. :class:`EpochLosses` keeps every batch's loss terms
on the device; the trainer reads them once, at the end of the epoch (as it always read the
epoch's loss sums), finds the first batch whose total or a weighted term is not finite, and then
fails with :class:`NonFiniteLossError` before anything of that epoch is saved. ``skip_batch``
checks each batch before its optimiser step instead (:func:`batch_is_finite`, one sync per
batch).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch

from sslrec.losses import Term


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss term or representation; the run stops.

    Attributes:
        epoch: the epoch it happened in.
        batch: the 1-based batch of that epoch (``None`` for representations at evaluation).
        terms: the names of the non-finite terms (or representations).
    """

    def __init__(
        self, message: str, epoch: int, batch: int | None = None, terms: Iterable[str] = ()
    ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.terms = list(terms)


class EpochLosses:
    """One epoch's loss values per batch (each term unweighted, plus ``total``), kept on the
    device in a ``[batches, terms]`` float64 buffer (one copy per batch, no sync) and read to
    the host once, at the end (:meth:`read`).

    Only terms of non-zero weight and the total can fail a run: ``losses.total`` leaves
    weight-0 terms out, so they cannot poison the parameters (they are still logged).
    """

    def __init__(self, device: torch.device, batches: int) -> None:
        self.device = device
        self.capacity = max(1, batches)
        self.names: list[str] | None = None
        self.checked: list[str] = []  # the names that fail a run: weighted terms and total
        self.values: torch.Tensor | None = None  # [capacity, terms] float64
        self.batches = 0

    def add(self, terms: Mapping[str, Term], loss: torch.Tensor) -> None:
        """Record one batch (``loss``: its total); no host sync."""
        names = [*terms, "total"]
        if self.values is None:
            self.names = names
            self.checked = [k for k, t in terms.items() if t.weight != 0] + ["total"]
            self.values = torch.empty(
                (self.capacity, len(names)), dtype=torch.float64, device=self.device
            )
        elif names != self.names:
            raise RuntimeError(f"the loss terms changed within an epoch: {self.names} → {names}")
        if self.batches == len(self.values):  # more batches than announced: grow
            self.values = torch.cat([self.values, torch.empty_like(self.values)])
        self.values[self.batches] = torch.stack(
            [t.value.detach().to(torch.float64) for t in terms.values()]
            + [loss.detach().to(torch.float64)]
        )
        self.batches += 1

    def read(self) -> tuple[dict[str, float], int | None, dict[str, float]]:
        """One host read: ``(sum per name, the first batch (0-based) whose total or weighted
        term is not finite, or None, and that batch's values per name)``.

        The sums add the batches in order in float64, as the device would have.
        """
        if self.values is None or self.names is None:
            return {}, None, {}
        rows = self.values[: self.batches].tolist()
        columns = [self.names.index(name) for name in self.checked]
        sums = dict(zip(self.names, rows[0], strict=True))
        for row in rows[1:]:
            for name, value in zip(self.names, row, strict=True):
                sums[name] += value
        first = next(
            (b for b, row in enumerate(rows) if not all(math.isfinite(row[c]) for c in columns)),
            None,
        )
        bad = dict(zip(self.names, rows[first], strict=True)) if first is not None else {}
        return sums, first, bad


def batch_is_finite(
    terms: Mapping[str, Term], loss: torch.Tensor, params: Iterable[torch.nn.Parameter]
) -> bool:
    """Whether a batch's total, weighted terms and gradients are all finite (one host sync):
    the ``skip_batch`` check, made after ``backward`` and before the optimiser step."""
    checks = [torch.isfinite(t.value.detach()).all() for t in terms.values() if t.weight != 0]
    checks.append(torch.isfinite(loss.detach()).all())
    checks += [torch.isfinite(p.grad).all() for p in params if p.grad is not None]
    return bool(torch.stack(checks).all())


def nonfinite_tensors(named: Mapping[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors in ``named`` holding a NaN or inf (one host
    sync for all of them)."""
    floats = {k: v for k, v in named.items() if torch.is_floating_point(v)}
    if not floats:
        return []
    ok = torch.stack([torch.isfinite(v.detach()).all() for v in floats.values()]).tolist()
    return [name for name, fine in zip(floats, ok, strict=True) if not fine]
