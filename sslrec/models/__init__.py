"""Recommenders: MF, LightGCN and the self-supervised LightGCN variants."""

from sslrec.models.base import EmbeddingRecommender, Recommender
from sslrec.models.lightgcn import LightGCN, layer_mean_weights
from sslrec.models.mf import MF
from sslrec.models.sgl import SGL
from sslrec.models.simgcl import SimGCL
from sslrec.models.xsimgcl import XSimGCL

__all__ = [
    "MF",
    "SGL",
    "EmbeddingRecommender",
    "LightGCN",
    "Recommender",
    "SimGCL",
    "XSimGCL",
    "layer_mean_weights",
]
