"""DirectAU (Wang et al., KDD 2022): alignment and uniformity on the hypersphere.

``L = align(ũ, ĩ) + γ · (unif(ũ) + unif(ĩ)) / 2`` over a batch of ``B`` positive pairs, with
``ũ = u/‖u‖`` and ``ĩ = i/‖i‖`` the encoder's representations normalised:

* ``align = mean_b ‖ũ_b − ĩ_b‖²``;
* ``unif(x) = log mean_{a<b} exp(−2 ‖x_a − x_b‖²)`` over every pair of the batch's rows,
  duplicates included (a user twice in the batch is a pair at distance 0, as ``torch.pdist``).

The loss is :class:`~sslrec.losses.AlignUniformLoss` (``loss=directau``, logged as ``align``
and ``uniform``); this class only fixes the official defaults around it. Official code
(THUwangcy/DirectAU, ``recbole/model/general_recommender/directau.py``; notes section 2):

* encoder ``MF`` (its default: ``model.num_layers=0`` here) or ``LightGCN`` (mean of layers
  ``0..K``, the :class:`LightGCN` propagation);
* the batch is shuffled positive interactions, no negatives (``training_neg_sample_num: 0``):
  sslrec's sampler still draws one negative per positive (one vectorised draw per epoch, ~1% of
  a lastfm epoch) and the loss never reads it;
* ranking by the raw inner product of the *un-normalised* representations (``full_sort_predict``),
  :class:`~sslrec.evaluation.scoring.InnerProductScorer` of :meth:`propagate`;
* no regulariser in the loss (``reg.weight = 0``); L2 comes from Adam's weight decay on every
  parameter (``trainer.weight_decay``, official ``1e-6``);
* embeddings ``xavier_normal_`` (RecBole's ``xavier_normal_initialization``).

SELFRec's re-implementation (Coder-Yu/SELFRec ``model/graph/DirectAU.py``, the Yelp2018 figure
0.0695/0.0583) differs: LightGCN encoder, ``xavier_uniform_`` init, no weight decay, and its
``l2_reg_loss`` (``model/reg=selfrec``: ``λ (‖U‖ + ‖P‖) / B`` on the propagated rows, λ 1e-4).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sslrec.losses import AlignUniformLoss, L2Reg, RankingLoss
from sslrec.models.lightgcn import LightGCN

INITS = ("xavier_normal", "xavier_uniform")


class DirectAU(LightGCN):
    """A :class:`LightGCN` (``num_layers=0``: MF) encoder trained with DirectAU's loss.

    Scores ``s(u, i) = ⟨e_u, e_i⟩`` of the final (un-normalised) representations ``[U, d]``,
    ``[I, d]``; the loss sees the batch's ``user [B, d]`` and ``pos [B, d]`` rows.

    Args:
        loss: the ranking loss; :class:`AlignUniformLoss` (``γ = 1``, the official default and
            its Yelp2018 value; Gowalla 5, Beauty 0.5, SELFRec's Yelp2018 2).
        reg: L2 in the loss; weight 0 (official: weight decay only). SELFRec:
            ``model/reg=selfrec model.reg.weight=1e-4``.
        init: ``xavier_normal`` (official RecBole) or ``xavier_uniform`` (SELFRec, LightGCN).
        num_layers: ``K`` of the LightGCN encoder (3: SELFRec's, whose Yelp2018 figure is
            published); 0 is the official default MF encoder.
        **kwargs: the other :class:`LightGCN` arguments.
    """

    def __init__(
        self,
        loss: RankingLoss = AlignUniformLoss(),  # noqa: B008 (frozen dataclass)
        reg: L2Reg = L2Reg(weight=0.0),
        init: str = "xavier_normal",
        **kwargs: Any,
    ) -> None:
        super().__init__(loss=loss, reg=reg, **kwargs)
        if init not in INITS:
            raise ValueError(f"model.init must be one of {INITS}, got {init!r}")
        self.init = init
        if init == "xavier_normal":  # the parent drew xavier_uniform_; same variance
            nn.init.xavier_normal_(self.user_embedding.weight)
            nn.init.xavier_normal_(self.item_embedding.weight)
