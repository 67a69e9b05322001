"""The joint ranking + CTR model: its two scores against hand computations, the joint loss's
α = 1 / α = 0 ends equal to their parts, ranking by either score, and lastfm training."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from sslrec.__main__ import config_dir
from sslrec.data import Batch
from sslrec.evaluation.ranker import rank_top_k
from sslrec.graph import normalized_adjacency
from sslrec.losses import BCELoss, BPRLoss, JointLoss, L2Reg, total
from sslrec.models import LightGCN
from sslrec.models.ctr import RankCTR
from sslrec.models.neumf import TILE_ITEMS
from sslrec.run import run
from tests.reference import random_graph

NU, NI = 6, 9


def feature_matrices(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    xu = (rng.random((NU, 3)) < 0.5).astype(np.float32)
    xi = (rng.random((NI, 4)) < 0.5).astype(np.float32)
    xi[0] = 0.0  # an item without features
    return torch.from_numpy(xu).to_sparse_csr(), torch.from_numpy(xi).to_sparse_csr()


def joint(features: bool = True, alpha: float = 0.5, n_items: int = NI, **kw) -> RankCTR:
    xu, xi = feature_matrices() if features and n_items == NI else (None, None)
    model = RankCTR(
        NU,
        n_items,
        user_features=xu,
        item_features=xi,
        embedding_dim=4,
        hidden=[5, 3],
        loss=JointLoss(alpha=alpha),
        reg=L2Reg(weight=0.0),
        **kw,
    ).double()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return model


def head_reference(model: RankCTR, u: int, i: int) -> float:
    """The CTR logit by hand: ``[e_u, mean f_u, e_i, mean f_i]`` through the ReLU MLP."""
    users, items = (t.detach() for t in model.encoder.propagate())

    def mean_features(side: str, row: int, n_rows: int) -> torch.Tensor:
        bag = getattr(model, f"{side}_bag")
        lo, hi = int(bag.indptr[row]), int(bag.indptr[row + 1])
        table = getattr(model, f"{side}_feature_embedding").weight.detach()
        if hi == lo:
            return torch.zeros(table.shape[1], dtype=table.dtype)
        return table[bag.indices[lo:hi]].mean(0)

    x = torch.cat([users[u], mean_features("user", u, NU), items[i], mean_features("item", i, NI)])
    for lin in model.head:
        x = torch.relu(lin.weight.detach() @ x + lin.bias.detach())
    return float(model.head_out.weight.detach()[0] @ x + model.head_out.bias.detach()[0])


def test_head_logits_match_a_hand_computation():
    model = joint()
    users, items = torch.tensor([0, 2, 5, 5]), torch.tensor([0, 8, 3, 4])
    got = model.score  # rank_by=encoder: the inner product
    u_all, i_all = model.encoder.propagate()
    torch.testing.assert_close(got(users, items), (u_all[users] * i_all[items]).sum(-1))
    logits = model.ctr_logits(u_all[users], i_all[items], users, items)
    want = [head_reference(model, int(u), int(i)) for u, i in zip(users, items, strict=True)]
    np.testing.assert_allclose(logits.detach().numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("encoder", ["mf", "lightgcn"])
def test_joint_loss_ends_equal_their_parts(encoder):
    u, i = random_graph(NU, NI, 0.4, seed=1)
    adj = normalized_adjacency(torch.from_numpy(u), torch.from_numpy(i), NU, NI)
    batch = Batch(
        torch.tensor([0, 1, 4]), torch.tensor([2, 3, 6]), torch.tensor([[5, 1], [0, 0], [7, 8]])
    )
    parts = {}
    for alpha in (1.0, 0.0, 0.5):
        model = joint(alpha=alpha, encoder=encoder, adjacency=adj)
        terms = model.loss(batch)
        u_all, i_all = model.encoder.propagate()
        ue, pe, ne = u_all[batch.users], i_all[batch.pos], i_all[batch.neg]
        pos_s, neg_s = (ue * pe).sum(-1), (ue[:, None] * ne).sum(-1)
        bpr = -F.logsigmoid(pos_s[:, None] - neg_s).mean()
        pos_l = model.ctr_logits(ue, pe, batch.users, batch.pos)
        neg_l = model.ctr_logits(ue, ne, batch.users, batch.neg)
        labels = torch.cat([torch.ones(3), torch.zeros(6)]).double()
        bce = F.binary_cross_entropy_with_logits(torch.cat([pos_l, neg_l.reshape(-1)]), labels)
        torch.testing.assert_close(terms["bpr"].value, bpr)
        torch.testing.assert_close(terms["bce"].value, bce)
        parts[alpha] = total(terms)
        want = {1.0: bpr, 0.0: bce, 0.5: 0.5 * bpr + 0.5 * bce}[alpha]
        torch.testing.assert_close(parts[alpha], want)
    # α = 1 is the ranking loss alone and α = 0 the BCE alone, as separate losses would be
    ranking_only = joint(alpha=1.0, encoder=encoder, adjacency=adj)
    ranking_only.ranking_loss = BPRLoss()
    torch.testing.assert_close(total(ranking_only.loss(batch)), parts[1.0])
    bce_only = joint(alpha=0.0, encoder=encoder, adjacency=adj)
    bce_only.ranking_loss = BCELoss()
    torch.testing.assert_close(total(bce_only.loss(batch)), parts[0.0])


def test_lightgcn_encoder_is_lightgcn():
    u, i = random_graph(NU, NI, 0.4, seed=1)
    adj = normalized_adjacency(torch.from_numpy(u), torch.from_numpy(i), NU, NI)
    model = joint(encoder="lightgcn", adjacency=adj, num_layers=2)
    assert isinstance(model.encoder, LightGCN) and model.encoder.num_layers == 2
    ref = LightGCN(NU, NI, adj, embedding_dim=4, num_layers=2).double()
    ref.load_state_dict(model.encoder.state_dict())
    for got, want in zip(model.embeddings(), ref.embeddings(), strict=True):
        torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="needs the training graph"):
        RankCTR(NU, NI, encoder="lightgcn")
    with pytest.raises(ValueError, match="encoder must be one of"):
        RankCTR(NU, NI, encoder="ngcf")


@pytest.mark.parametrize("features", [True, False])
def test_ctr_scorer_equals_the_per_pair_head(features):
    n_items = NI if features else TILE_ITEMS + 5  # several tiles when there are no features
    model = joint(features=features, n_items=n_items, rank_by="ctr")
    assert not model.inner_product and joint().inner_product
    users = torch.arange(NU)
    with torch.no_grad():
        full = model.scorer().full_scores(users)
        items = torch.arange(n_items)
        naive = torch.stack([model.score(torch.full_like(items, u), items) for u in range(NU)])
    torch.testing.assert_close(full, naive, rtol=1e-10, atol=1e-10)
    exclude = sp.csr_matrix((NU, n_items))
    with torch.no_grad():
        by_encoder = rank_top_k(
            joint(features, n_items=n_items).scorer(), np.arange(NU), exclude, 3
        )
    u_all, i_all = joint(features, n_items=n_items).embeddings()
    assert torch.equal(by_encoder, torch.topk(u_all @ i_all.t(), 3, dim=1).indices)


def test_head_gradient_reaches_the_encoder_and_the_feature_embeddings():
    model = joint(alpha=0.0)
    batch = Batch(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    total(model.loss(batch)).backward()
    assert model.encoder.user_embedding.weight.grad.abs().sum() > 0
    assert model.item_feature_embedding.weight.grad.abs().sum() > 0


def test_joint_beats_most_popular_on_lastfm(tmp_path):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "model=joint",
                "logger=none",
                "trainer.progress=false",
                "trainer.epochs=10",
                "trainer.eval_every=5",
                "trainer.lr=1e-2",
            ],
        )
    assert cfg.loss._target_ == "sslrec.losses.JointLoss"
    res = run(cfg, tmp_path / "run")
    assert res["scoring"] == "inner_product"
    model, pop = res["test"]["recall@20"], res["baselines"]["most_popular"]["recall@20"]
    assert model > 1.5 * pop, (model, pop)
