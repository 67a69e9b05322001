"""Graph construction (normalised adjacency) and fast propagation."""

from sslrec.graph.adjacency import normalized_adjacency
from sslrec.graph.spmm import symmetric_spmm

__all__ = ["normalized_adjacency", "symmetric_spmm"]
