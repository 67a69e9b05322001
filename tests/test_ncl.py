"""NCL: one step's loss against a dense float64 computation written out term by term, the
warm-up and its count across a resume, and a short lastfm run."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from sslrec.__main__ import config_dir
from sslrec.data import Batch
from sslrec.graph import normalized_adjacency
from sslrec.losses import BPRLoss, L2Reg, breakdown, info_nce
from sslrec.models.ncl import NCL
from sslrec.run import run
from tests.reference import dense_normalized_adjacency, random_graph

NU, NI, D = 6, 8, 4
BATCH = Batch(
    torch.tensor([0, 3, 3, 5, 1]),  # user 3 twice: NCL keeps duplicate anchors
    torch.tensor([2, 7, 1, 2, 0]),
    torch.tensor([5, 4, 6, 3, 3]),
)


@pytest.fixture(scope="module")
def graph():
    u, i = random_graph(NU, NI, 0.5, seed=2)
    assert np.bincount(u, minlength=NU).min() > 0 and np.bincount(i, minlength=NI).min() > 0
    ut, it = torch.from_numpy(u), torch.from_numpy(i)
    dense = torch.from_numpy(dense_normalized_adjacency(u, i, NU, NI))
    return normalized_adjacency(ut, it, NU, NI), dense


def make(graph, seed=0, **kw) -> NCL:
    torch.manual_seed(seed)
    args = {
        "n_users": NU,
        "n_items": NI,
        "adjacency": graph[0],
        "embedding_dim": D,
        "num_layers": 3,
        "ssl_temp": 0.3,
        "ssl_reg": 0.3,
        "alpha": 1.5,
        "proto_reg": 0.2,
        "hyper_layers": 1,
        "num_clusters": 2,
        "warm_up": 0,
        "reg": L2Reg(weight=0.1, squared=False),
    }
    return NCL(**(args | kw))


# --------------------------------------------------------------------------------------------
# Dense references
# --------------------------------------------------------------------------------------------


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def structure_reference(anchor_all, ego_all, ids, tau) -> torch.Tensor:
    """``Σ_b −log(exp(cos(a_b, e_b)/τ) / Σ_v exp(cos(a_b, e_v)/τ))``, all nodes ``v``."""
    total = torch.zeros((), dtype=torch.float64)
    for b in ids.tolist():
        a = unit(anchor_all[b])
        pos = torch.exp(a @ unit(ego_all[b]) / tau)
        den = sum(torch.exp(a @ unit(ego_all[v]) / tau) for v in range(len(ego_all)))
        total = total - torch.log(pos / den)
    return total


def numpy_kmeans(x: np.ndarray, init: np.ndarray, niter: int = 25):
    c = x[init].copy()
    for _ in range(niter):
        a = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        for j in range(len(c)):
            assert (a == j).any(), "the reference does not split empty clusters"
            c[j] = x[a == j].mean(0)
    return c, ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)


def proto_reference(ego_all, ids, centroids, clusters, tau) -> torch.Tensor:
    c = torch.from_numpy(centroids)
    c = c / c.norm(dim=1, keepdim=True)
    total = torch.zeros((), dtype=torch.float64)
    for b in ids.tolist():
        z = unit(ego_all[b])
        pos = torch.exp(z @ c[clusters[b]] / tau)
        den = sum(torch.exp(z @ c[j] / tau) for j in range(len(c)))
        total = total - torch.log(pos / den)
    return total


@pytest.mark.parametrize(("num_layers", "hyper_layers"), [(3, 1), (1, 1), (2, 2)])
def test_ncl_step_equals_dense_reference(graph, num_layers, hyper_layers):
    model = make(graph, num_layers=num_layers, hyper_layers=hyper_layers)
    torch.manual_seed(5)
    model.start_epoch()  # epoch 1 > warm_up 0: k-means on the layer-0 tables
    out = breakdown(model.loss(BATCH))
    assert list(out) == ["bpr", "ssl", "proto", "reg", "total"]

    users, pos, neg = BATCH.users, BATCH.pos, BATCH.neg
    e0 = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach().double()
    adj = graph[1]
    layers = [e0]
    for _ in range(max(num_layers, 2 * hyper_layers)):  # official: max(n_layers, 2·hyper)
        layers.append(adj @ layers[-1])
    final = sum(layers[: num_layers + 1]) / (num_layers + 1)  # mean of layers 0..K only
    u, p, n = final[users], final[NU + pos], final[NU + neg]
    bpr = torch.nn.functional.softplus((u * n).sum(1) - (u * p).sum(1)).mean()
    rows = (e0[users], e0[NU + pos], e0[NU + neg])
    reg = 0.1 * sum(r.norm() for r in rows) / len(users)  # unsquared, / B
    ctx = layers[2 * hyper_layers]
    ssl = structure_reference(ctx[:NU], e0[:NU], users, 0.3) + 1.5 * structure_reference(
        ctx[NU:], e0[NU:], pos, 0.3
    )
    # k-means redrawn from the same seed: user table then item table, k initial points each
    torch.manual_seed(5)
    init_u, init_i = torch.randperm(NU)[:2].numpy(), torch.randperm(NI)[:2].numpy()
    cu, au = numpy_kmeans(e0[:NU].numpy(), init_u)
    ci, ai = numpy_kmeans(e0[NU:].numpy(), init_i)
    np.testing.assert_array_equal(model.user_clusters.numpy(), au)
    np.testing.assert_array_equal(model.item_clusters.numpy(), ai)
    proto = proto_reference(e0[:NU], users, cu, au, 0.3) + proto_reference(
        e0[NU:], pos, ci, ai, 0.3
    )
    for name, ref in (("bpr", bpr), ("reg", reg), ("ssl", ssl), ("proto", proto)):
        torch.testing.assert_close(out[name].double(), ref, rtol=2e-5, atol=1e-6, msg=name)
    total = bpr + 0.3 * ssl + 0.2 * proto + reg
    torch.testing.assert_close(out["total"].double(), total, rtol=2e-5, atol=1e-6)


def test_structure_term_is_info_nce_with_all_negatives_summed(graph):
    """The helper the model uses, on its own: anchor layer 2, positive and negatives layer 0."""
    model = make(graph)
    layers = model.layers(depth=3)
    (eu, _), (cu, _) = model.split(layers[0]), model.split(layers[2])
    got = info_nce(cu, eu, BATCH.users, 0.3, negatives="all", reduction="sum")
    ref = structure_reference(cu.detach().double(), eu.detach().double(), BATCH.users, 0.3)
    torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=1e-6)


def test_prototype_gradient_reaches_the_batch_ego_rows(graph):
    model = make(graph)
    model.start_epoch()
    terms = model.loss(BATCH)
    terms["proto"].value.backward()
    grad = model.user_embedding.weight.grad
    assert (grad[BATCH.users].abs().sum(1) > 0).all()


# --------------------------------------------------------------------------------------------
# Warm-up, E-step, resume
# --------------------------------------------------------------------------------------------


def test_prototype_term_is_zero_during_warm_up_then_on(graph):
    model = make(graph, warm_up=2)
    seen = []
    for _ in range(4):
        model.start_epoch()
        terms = model.loss(BATCH)
        assert set(terms) == {"bpr", "ssl", "proto", "reg"}  # both SSL terms in every record
        seen.append(float(terms["proto"].value.detach()))
    assert seen[0] == seen[1] == 0.0
    assert seen[2] > 0 and seen[3] > 0
    assert model.user_centroids is not None
    torch.testing.assert_close(model.user_centroids.norm(dim=1), torch.ones(2))


def test_no_kmeans_during_warm_up(graph):
    model = make(graph, warm_up=3)
    model.start_epoch()
    assert model.user_centroids is None and int(model.epochs_started) == 1


def test_resume_continues_the_epoch_count_and_redraws_the_same_clusters(graph):
    model = make(graph, warm_up=2, num_clusters=3)
    torch.manual_seed(0)
    model.start_epoch()
    model.start_epoch()
    state = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()  # the trainer checkpoints torch's generator with the model
    assert int(state["epochs_started"]) == 2
    model.start_epoch()
    uninterrupted = (model.user_centroids.clone(), model.item_clusters.clone())
    loss_a = breakdown(model.loss(BATCH))["proto"]

    resumed = make(graph, seed=99, warm_up=2, num_clusters=3)
    resumed.load_state_dict(state)
    torch.set_rng_state(rng)
    resumed.start_epoch()
    assert int(resumed.epochs_started) == 3 and resumed.proto_active()
    assert torch.equal(resumed.user_centroids, uninterrupted[0])
    assert torch.equal(resumed.item_clusters, uninterrupted[1])
    assert torch.equal(breakdown(resumed.loss(BATCH))["proto"], loss_a)


def test_clusters_beyond_the_nodes_are_clamped(graph):
    model = make(graph, num_clusters=100)
    model.start_epoch()
    assert model.user_centroids.shape == (NU, D) and model.item_centroids.shape == (NI, D)
    assert model.user_clusters.tolist() == list(range(NU))


def test_constructor_refuses_bad_values(graph):
    for kw, word in (
        ({"ssl_temp": 0.0}, "ssl_temp"),
        ({"hyper_layers": 0}, "hyper_layers"),
        ({"num_clusters": 0}, "num_clusters"),
        ({"warm_up": -1}, "warm_up"),
    ):
        with pytest.raises(ValueError, match=word):
            make(graph, **kw)


def test_k_negatives_and_sum_losses_train(graph):
    model = make(graph, loss=BPRLoss(reduction="sum"))
    model.start_epoch()
    batch = Batch(BATCH.users, BATCH.pos, torch.randint(0, NI, (5, 4)))
    terms = model.loss(batch)
    assert torch.isfinite(sum(t.value for t in terms.values()))


# --------------------------------------------------------------------------------------------
# End to end on lastfm
# --------------------------------------------------------------------------------------------


def test_ncl_on_lastfm_beats_most_popular_and_logs_every_term(tmp_path):
    overrides = [
        "logger=none",
        "threads=1",
        "trainer.progress=false",
        "model=ncl",
        "model.warm_up=1",  # the prototype term (and k-means) runs in epochs 2 and 3
        "model.num_clusters=50",
        "trainer.epochs=3",
        "trainer.eval_every=3",
        "trainer.lr=1e-2",
    ]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    res = run(cfg, tmp_path / "run")
    assert res["test"]["recall@20"] > res["baselines"]["most_popular"]["recall@20"]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert records and all(
        {"bpr", "ssl", "proto", "reg", "total"} <= set(r["losses"]) for r in records
    )
    assert records[-1]["losses"]["proto"] > 0
