"""Matrix factorisation: the non-graph baseline (BPR-MF with the default loss)."""

from __future__ import annotations

import torch

from sslrec.models.base import EmbeddingRecommender


class MF(EmbeddingRecommender):
    """Matrix factorisation (BPR-MF, Rendle et al., UAI 2009, with the default ``loss=bpr``):
    the representations are the embeddings themselves."""

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.weight, self.item_embedding.weight
