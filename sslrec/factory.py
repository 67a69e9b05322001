"""Build a model from its config node and the training data it needs."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig

from sslrec.data import Interactions
from sslrec.graph import normalized_adjacency
from sslrec.models.base import Recommender


def build_model(model_cfg: DictConfig, data: Interactions, device: torch.device) -> Recommender:
    """Instantiate ``model_cfg`` (the ``model`` node) on ``device``, with the sizes of ``data``
    and the graph inputs its class lists in ``graph_inputs``: ``adjacency`` (the normalised
    training graph), ``interactions`` (``train_users``/``train_items`` id tensors) and/or
    ``features`` (``user_features``/``item_features``: the dataset's side features as binary
    sparse CSR ``[U, F_u]``/``[I, F_i]`` float32 tensors, ``None`` for a side without them)."""
    users, items = (torch.from_numpy(a).to(device) for a in data.train_pairs())
    needs = get_class(model_cfg._target_).graph_inputs
    inputs: dict[str, Any] = {}
    if "adjacency" in needs:
        inputs["adjacency"] = normalized_adjacency(users, items, data.n_users, data.n_items)
    if "interactions" in needs:
        inputs.update(train_users=users, train_items=items)
    if "features" in needs:
        inputs.update(user_features=None, item_features=None)
        for side in ("user", "item"):
            feats = getattr(data.features, side, None)  # None without features
            if feats is not None:
                inputs[f"{side}_features"] = _sparse_csr(feats.matrix).to(device)
    model = instantiate(model_cfg, n_users=data.n_users, n_items=data.n_items, **inputs)
    return model.to(device)


def _sparse_csr(matrix: sp.csr_matrix) -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR float32 tensor (int64 indices)."""
    return torch.sparse_csr_tensor(
        torch.from_numpy(matrix.indptr.astype(np.int64)),
        torch.from_numpy(matrix.indices.astype(np.int64)),
        torch.from_numpy(matrix.data.astype(np.float32)),
        size=matrix.shape,
        check_invariants=True,  # O(nnz), once; also opts out of torch's warning about skipping it
    )
