"""LightGCN and MF: propagation against the edge-list reference, loss against direct formulas."""

import pytest
import torch
import torch.nn.functional as F

from sslrec.data import Batch
from sslrec.graph import normalized_adjacency
from sslrec.losses import BPRLoss, L2Reg, breakdown
from sslrec.models import MF, LightGCN, layer_mean_weights
from tests.reference import edge_list_propagate, random_graph


@pytest.fixture
def tiny():
    u, i = random_graph(6, 8, 0.35, seed=3)
    ut, it = torch.from_numpy(u), torch.from_numpy(i)
    return ut, it, normalized_adjacency(ut, it, 6, 8)


def test_layer_weights():
    torch.testing.assert_close(layer_mean_weights(3), torch.full((4,), 0.25))
    torch.testing.assert_close(
        layer_mean_weights(3, include_layer0=False), torch.tensor([0.0, 1 / 3, 1 / 3, 1 / 3])
    )
    torch.testing.assert_close(
        layer_mean_weights(2, weights=[0.5, 0.25, 0.25]), torch.tensor([0.5, 0.25, 0.25])
    )
    with pytest.raises(ValueError):
        layer_mean_weights(2, weights=[1.0, 0.0])


@pytest.mark.parametrize(
    "include0,weights", [(True, None), (False, None), (True, [0.1, 0.2, 0.3, 0.4])]
)
def test_lightgcn_propagation_matches_reference(tiny, include0, weights):
    ut, it, adj = tiny
    torch.manual_seed(0)
    model = LightGCN(
        6, 8, adj, embedding_dim=4, num_layers=3, include_layer0=include0, layer_weights=weights
    )
    e = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach()
    layers = [e]
    for _ in range(3):
        layers.append(edge_list_propagate(ut, it, 6, layers[-1]))
    if weights is None:
        chosen = layers if include0 else layers[1:]
        ref = sum(chosen) / len(chosen)
    else:
        ref = sum(w * x for w, x in zip(weights, layers, strict=True))
    users, items = model.embeddings()
    torch.testing.assert_close(users, ref[:6])
    torch.testing.assert_close(items, ref[6:])


def test_lightgcn_loss_equals_direct_computation(tiny):
    _, _, adj = tiny
    torch.manual_seed(0)
    model = LightGCN(6, 8, adj, embedding_dim=4, num_layers=2, reg=L2Reg(weight=0.1))
    users, pos, neg = torch.tensor([0, 1, 1]), torch.tensor([2, 3, 0]), torch.tensor([5, 5, 7])
    out = breakdown(model.loss(Batch(users, pos, neg)))
    e0 = torch.cat([model.user_embedding.weight, model.item_embedding.weight])
    d = adj.to_dense()
    final = (e0 + d @ e0 + d @ (d @ e0)) / 3
    u, p, n = final[users], final[6 + pos], final[6 + neg]
    bpr = torch.log1p(torch.exp(-((u * p).sum(1) - (u * n).sum(1)))).mean()
    ego = (e0[users].pow(2).sum() + e0[6 + pos].pow(2).sum() + e0[6 + neg].pow(2).sum()) / 2
    torch.testing.assert_close(out["bpr"], bpr)
    torch.testing.assert_close(out["reg"], 0.1 * ego / 3)
    torch.testing.assert_close(out["total"], bpr + 0.1 * ego / 3)
    out["total"].backward()
    assert model.user_embedding.weight.grad[0].abs().sum() > 0


def test_mf_loss_and_propagated_reg():
    torch.manual_seed(0)
    reg = L2Reg(weight=0.5, reduction="sum", squared=False, apply_to="propagated")
    model = MF(3, 4, embedding_dim=2, reg=reg, loss=BPRLoss(reduction="sum"))
    users, pos, neg = torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([0, 0])
    out = breakdown(model.loss(Batch(users, pos, neg)))
    uw, iw = model.user_embedding.weight, model.item_embedding.weight
    u, p, n = uw[users], iw[pos], iw[neg]
    bpr = F.softplus((u * n).sum(1) - (u * p).sum(1)).sum()
    torch.testing.assert_close(out["bpr"], bpr)
    torch.testing.assert_close(out["reg"], 0.5 * (u.norm() + p.norm() + n.norm()))


def test_model_moves_adjacency_with_to(tiny):
    _, _, adj = tiny
    model = LightGCN(6, 8, adj, embedding_dim=4).to(torch.float64)
    assert model.adjacency.dtype == torch.float64
    users, _ = model.embeddings()
    assert users.dtype == torch.float64
