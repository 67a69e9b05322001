"""Losses: one function or small class per formula, reused by every model.

``base`` holds the objective's vocabulary (``Term``, ``total``, ``RankingBatch``,
``RankingLoss``); each family file holds its formulas and the classes ``conf/loss/`` names:
``pairwise`` (BPR, hinge), ``softmax`` (sampled softmax, N-pair), ``listwise`` (pairwise
logistic over lists), ``metric`` (contrastive, triplet), ``pointwise`` (BCE, joint),
``cosine`` (SimpleX's CCL), ``alignment`` (DirectAU), ``infonce`` (the SSL heads) and
``regularization`` (L2).
"""

from sslrec.losses.alignment import AlignUniformLoss
from sslrec.losses.base import RankingBatch, RankingLoss, Term, breakdown, total
from sslrec.losses.cosine import CCLLoss, ccl_loss
from sslrec.losses.infonce import InfoNCEHead, info_nce
from sslrec.losses.listwise import ListwiseLoss, pairwise_logistic
from sslrec.losses.metric import ContrastiveLoss, TripletLoss, contrastive_loss
from sslrec.losses.pairwise import BPRLoss, HingeLoss, bpr_loss, hinge_loss
from sslrec.losses.pointwise import BCELoss, JointLoss, bce_loss
from sslrec.losses.regularization import L2Reg
from sslrec.losses.softmax import NPairLoss, SoftmaxLoss, sampled_softmax

__all__ = [
    "AlignUniformLoss",
    "BCELoss",
    "BPRLoss",
    "CCLLoss",
    "ContrastiveLoss",
    "HingeLoss",
    "InfoNCEHead",
    "JointLoss",
    "L2Reg",
    "ListwiseLoss",
    "NPairLoss",
    "RankingBatch",
    "RankingLoss",
    "SoftmaxLoss",
    "Term",
    "TripletLoss",
    "bce_loss",
    "bpr_loss",
    "breakdown",
    "ccl_loss",
    "contrastive_loss",
    "hinge_loss",
    "info_nce",
    "pairwise_logistic",
    "sampled_softmax",
    "total",
]
