"""Matrix factorisation with BPR: the non-graph baseline."""

from __future__ import annotations

import torch

from sslrec.models.base import Recommender


class MF(Recommender):
    """BPR-MF (Rendle et al., UAI 2009): the representations are the embeddings themselves."""

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.weight, self.item_embedding.weight
