"""Build a model from its config node and the training data it needs."""

from __future__ import annotations

from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig

from sslrec.data import Interactions
from sslrec.graph import normalized_adjacency
from sslrec.models.base import Recommender


def build_model(model_cfg: DictConfig, data: Interactions, device: torch.device) -> Recommender:
    """Instantiate ``model_cfg`` (the ``model`` node) on ``device``, with the sizes of ``data``
    and the graph inputs its class lists in ``graph_inputs``: ``adjacency`` (the normalised
    training graph) and/or ``interactions`` (``train_users``/``train_items`` id tensors)."""
    users, items = (torch.from_numpy(a).to(device) for a in data.train_pairs())
    needs = get_class(model_cfg._target_).graph_inputs
    inputs: dict[str, Any] = {}
    if "adjacency" in needs:
        inputs["adjacency"] = normalized_adjacency(users, items, data.n_users, data.n_items)
    if "interactions" in needs:
        inputs.update(train_users=users, train_items=items)
    model = instantiate(model_cfg, n_users=data.n_users, n_items=data.n_items, **inputs)
    return model.to(device)
