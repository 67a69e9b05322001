"""The objective's vocabulary: named, weighted terms, and the interface of a ranking loss.

A model's ``loss(batch)`` returns ``{name: Term(value, weight)}`` (e.g. ``bpr``, ``ssl``,
``reg``); :func:`total` sums ``weight · value`` and is what the optimiser minimises; every term
is logged under its own name, unweighted (``reg`` carries its coefficient inside, as
:class:`~sslrec.losses.L2Reg` always applied it).

A ranking loss (``conf/loss/``, chosen with ``loss=NAME``) is a frozen dataclass that sees a
:class:`RankingBatch`: the scores of each positive and its sampled negatives, and, for models
that have them, the user and item representations behind the scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch


class Term(NamedTuple):
    """One named part of the objective: a scalar ``value`` entering the total with ``weight``."""

    value: torch.Tensor
    weight: float = 1.0


def total(terms: Mapping[str, Term]) -> torch.Tensor:
    """``Σ weight · value`` over ``terms``, in their order.

    Terms of weight 0 are left out (so a non-finite term that is switched off cannot poison the
    total); weight 1 is not multiplied, so the sum is bit-identical to adding the values.
    """
    out: torch.Tensor | None = None
    for term in terms.values():
        if term.weight == 0:
            continue
        value = term.value if term.weight == 1 else term.weight * term.value
        out = value if out is None else out + value
    if out is None:
        raise ValueError(f"every loss term has weight 0: {sorted(terms)}")
    return out


def breakdown(terms: Mapping[str, Term]) -> dict[str, torch.Tensor]:
    """Each term's (unweighted) value plus ``total``: what a run logs per batch."""
    return {name: term.value for name, term in terms.items()} | {"total": total(terms)}


@dataclass
class RankingBatch:
    """What a ranking loss sees of one batch of ``B`` users, each with one positive and ``k``
    sampled negatives (``neg_*`` are ``[B]`` when ``k = 1``, else ``[B, k]``).

    Attributes:
        pos_scores: ``[B]`` model scores ``s⁺`` of the positives.
        neg_scores: ``[B]`` or ``[B, k]`` scores ``s⁻`` of the negatives.
        user: ``[B, d]`` user representations, or ``None`` for a model that scores pairs with
            a network (NeuMF); losses on representations refuse such models.
        pos: ``[B, d]`` positive-item representations (or ``None``).
        neg: ``[B, d]`` or ``[B, k, d]`` negative-item representations (or ``None``).
        pos_logits, neg_logits: pointwise logits for BCE-type terms when a model has a separate
            head for them (the joint ranking + CTR model); ``None`` means the scores.
        pos_log_q, neg_log_q: log-probabilities of the items under the negative sampler's
            proposal, for the sampled-softmax log-Q correction; ``None`` for uniform sampling.
    """

    pos_scores: torch.Tensor
    neg_scores: torch.Tensor
    user: torch.Tensor | None = None
    pos: torch.Tensor | None = None
    neg: torch.Tensor | None = None
    pos_logits: torch.Tensor | None = None
    neg_logits: torch.Tensor | None = None
    pos_log_q: torch.Tensor | None = None
    neg_log_q: torch.Tensor | None = None

    def representations(self, loss: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(user [B, d], pos [B, d], neg [B, (k,) d])``, or an error naming ``loss``."""
        if self.user is None or self.pos is None or self.neg is None:
            raise ValueError(
                f"loss={loss} works on user and item representations, but this model scores "
                "pairs with a network and has none; pick a score-based loss (bpr, hinge, "
                "softmax, npair, listwise, bce)"
            )
        return self.user, self.pos, self.neg

    def logits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pos [B], neg [B] or [B, k])`` pointwise logits: the head's, else the scores."""
        if self.pos_logits is not None and self.neg_logits is not None:
            return self.pos_logits, self.neg_logits
        return self.pos_scores, self.neg_scores


def check_reduction(reduction: str) -> None:
    """Refuse a reduction other than ``mean`` or ``sum`` (at construction, before any work)."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """``mean`` or ``sum`` of every element of ``loss``; anything else is an error."""
    check_reduction(reduction)
    return loss.mean() if reduction == "mean" else loss.sum()


def pair_up(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """``pos`` ``[B]`` shaped to broadcast against ``neg`` ``[B]`` or ``[B, k]``."""
    return pos.unsqueeze(-1) if neg.dim() == pos.dim() + 1 else pos


@dataclass(frozen=True, kw_only=True)
class RankingLoss:
    """Base of the ranking losses: ``terms(batch)`` → ``{name: Term(self(batch), weight)}``.

    Attributes:
        weight: the term's weight in the total (0 drops it: e.g. "CL only" for an SSL model).
    """

    weight: float = 1.0

    #: the key under which the term is logged (``bpr``, ``hinge``, ...)
    name: ClassVar[str] = "ranking"
    #: whether the loss reads representations (``RankingBatch.user``/``pos``/``neg``)
    needs_representations: ClassVar[bool] = False
    #: whether the loss shapes only the angles of the representations and leaves their norms
    #: free (CCL): an embedding model trained with it then ranks by cosine, on its L2-normalised
    #: representations, as the loss's own model does (MF-CCL, SimpleX)
    ranks_by_cosine: ClassVar[bool] = False
    #: whether the loss trains Euclidean distances (contrastive, triplet): an embedding model
    #: trained with it then ranks by ``−‖u − i‖²``, as metric learning does (CML)
    ranks_by_distance: ClassVar[bool] = False

    def __call__(self, batch: RankingBatch) -> torch.Tensor:
        """The loss of ``batch``, a scalar tensor."""
        raise NotImplementedError

    def terms(self, batch: RankingBatch) -> dict[str, Term]:
        """The named, weighted terms this loss adds to the objective."""
        return {self.name: Term(self(batch), self.weight)}
