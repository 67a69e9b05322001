"""Datasets: readers with checked input, the ``Interactions`` container, splits and sampling."""

from sslrec.data.dataset import DatasetSpec, load_dataset
from sslrec.data.interactions import Interactions, build_interactions, split_validation
from sslrec.data.readers import DataFormatError, IdMap, read_adjacency_list, read_triples
from sslrec.data.sampling import Batch, BPRSampler

__all__ = [
    "BPRSampler",
    "Batch",
    "DataFormatError",
    "DatasetSpec",
    "IdMap",
    "Interactions",
    "build_interactions",
    "load_dataset",
    "read_adjacency_list",
    "read_triples",
    "split_validation",
]
