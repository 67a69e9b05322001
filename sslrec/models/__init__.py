"""Recommenders: MF and LightGCN (the self-supervised models build on LightGCN)."""

from sslrec.models.base import Recommender
from sslrec.models.lightgcn import LightGCN, layer_mean_weights
from sslrec.models.mf import MF

__all__ = ["MF", "LightGCN", "Recommender", "layer_mean_weights"]
