"""Augmenters: graph views (SGL ED/ND/RW) and embedding perturbations (SimGCL noise)."""

from sslrec.augment.base import EmbeddingAugmenter, GraphAugmenter
from sslrec.augment.edge_dropout import EdgeDropout, drop_edges
from sslrec.augment.node_dropout import NodeDropout
from sslrec.augment.noise import UniformNoise
from sslrec.augment.random_walk import RandomWalk

__all__ = [
    "EdgeDropout",
    "EmbeddingAugmenter",
    "GraphAugmenter",
    "NodeDropout",
    "RandomWalk",
    "UniformNoise",
    "drop_edges",
]
