"""LightGCN++ as LightGCN encoder options: ``D^-α A D^-β`` and its transpose, the spmm backward
against dense float64 autograd, a step against a dense reference, the defaults bit-identical to
the original LightGCN code, configs, and a short lastfm run."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from sslrec.augment import EdgeDropout, UniformNoise
from sslrec.data import Batch
from sslrec.graph import normalized_adjacency, symmetric_spmm
from sslrec.graph.adjacency import reweighted_adjacency
from sslrec.graph.spmm import transposed_spmm
from sslrec.losses import L2Reg, breakdown, total
from sslrec.models import SGL, LightGCN, SimGCL, XSimGCL
from sslrec.models.lightgcn import combine_layers
from sslrec.models.ncl import NCL
from sslrec.run import run
from tests.conftest import compose_quiet

NU, NI, D = 5, 7, 4
# user 4 and item 6 have no interactions: their rows and columns must stay 0 (no inf, and no
# 0^0.1 = 0 surprise with β < 0)
EDGES = [(0, 0), (0, 1), (0, 3), (1, 1), (1, 2), (2, 0), (2, 4), (2, 5), (3, 1), (3, 5), (0, 5)]
BATCH = Batch(
    torch.tensor([0, 2, 2, 3, 1]), torch.tensor([1, 4, 0, 5, 2]), torch.tensor([6, 3, 1, 0, 4])
)


@pytest.fixture(scope="module")
def edges():
    u = torch.tensor([e[0] for e in EDGES])
    i = torch.tensor([e[1] for e in EDGES])
    return u, i


def dense_adjacency(alpha: float, beta: float) -> np.ndarray:
    """``D^-α A D^-β`` in float64 with explicit loops (``α`` on the row, ``β`` on the column)."""
    n = NU + NI
    a = np.zeros((n, n))
    for u, i in EDGES:
        a[u, NU + i] = a[NU + i, u] = 1.0
    deg = a.sum(1)
    out = np.zeros((n, n))
    for r in range(n):
        for c in range(n):
            if a[r, c]:
                out[r, c] = deg[r] ** -alpha * deg[c] ** -beta
    return out


# --------------------------------------------------------------------------------------------
# Adjacency and propagation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("alpha", "beta"), [(0.6, -0.1), (0.5, 0.5), (0.4, 0.1), (1.0, 0.0)])
def test_normalised_adjacency_equals_dense_reference(edges, alpha, beta):
    u, i = edges
    ref = dense_adjacency(alpha, beta)
    built = normalized_adjacency(u, i, NU, NI, alpha=alpha, beta=beta)
    np.testing.assert_allclose(built.to_dense().double().numpy(), ref, rtol=1e-6, atol=0)
    # the same from the pattern of LightGCN's symmetric adjacency
    pattern = normalized_adjacency(u, i, NU, NI)
    again = reweighted_adjacency(pattern, alpha, beta)
    np.testing.assert_allclose(again.to_dense().double().numpy(), ref, rtol=1e-6, atol=0)
    # the transpose is the swapped exponents on the same pattern
    swapped = reweighted_adjacency(pattern, beta, alpha).to_dense().double().numpy()
    np.testing.assert_allclose(swapped, ref.T, rtol=1e-6, atol=0)


def test_default_adjacency_is_bit_identical_to_the_original_code(edges):
    u, i = edges
    n = NU + NI
    # the original normalized_adjacency, verbatim
    rows = torch.cat([u, i + NU])
    cols = torch.cat([i + NU, u])
    deg = torch.bincount(rows, minlength=n).to(torch.float32)
    dinv = deg.pow(-0.5)
    dinv[deg == 0] = 0.0
    order = torch.argsort(rows * n + cols)
    rows, cols = rows[order], cols[order]
    values = dinv[rows] * dinv[cols]
    built = normalized_adjacency(u, i, NU, NI)
    assert torch.equal(built.col_indices(), cols) and torch.equal(built.values(), values)


def test_transposed_spmm_backward_matches_dense_float64_autograd(edges):
    u, i = edges
    adj = normalized_adjacency(u, i, NU, NI, alpha=0.6, beta=-0.1).to(torch.float64)
    adj_t = normalized_adjacency(u, i, NU, NI, alpha=-0.1, beta=0.6).to(torch.float64)
    dense = torch.from_numpy(dense_adjacency(0.6, -0.1))
    assert not torch.allclose(dense, dense.t())
    torch.manual_seed(0)
    x = torch.randn(NU + NI, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(NU + NI, 3, dtype=torch.float64)
    y = transposed_spmm(adj, adj_t, transposed_spmm(adj, adj_t, x))
    (y * w).sum().backward()
    x_ref = x.detach().clone().requires_grad_(True)
    (((dense @ (dense @ x_ref)) * w).sum()).backward()
    torch.testing.assert_close(y, dense @ (dense @ x.detach()))
    torch.testing.assert_close(x.grad, x_ref.grad)
    # the trap this avoids: a backward of Â G is wrong for a non-symmetric Â
    x2 = x.detach().clone().requires_grad_(True)
    (symmetric_spmm(adj, x2) * w).sum().backward()
    assert not torch.allclose(x2.grad, dense.t() @ w)


# --------------------------------------------------------------------------------------------
# The model against a dense reference
# --------------------------------------------------------------------------------------------


def plusplus(edges, gamma=0.2, num_layers=2, alpha=0.6, beta=-0.1, seed=0, cls=LightGCN, **kw):
    u, i = edges
    torch.manual_seed(seed)
    return cls(
        n_users=NU,
        n_items=NI,
        adjacency=normalized_adjacency(u, i, NU, NI),
        embedding_dim=D,
        num_layers=num_layers,
        norm_alpha=alpha,
        norm_beta=beta,
        layer_norm=True,
        gamma=gamma,
        reg=L2Reg(weight=0.1),
        **kw,
    )


def dense_plusplus(e0, alpha, beta, gamma, num_layers):
    """LightGCN++ code/model.py ``computer``: normalise each layer's input, propagate, then
    ``γ·e0 + (1 − γ)·mean(e1..eK)`` with the raw ``e0``."""
    adj = torch.from_numpy(dense_adjacency(alpha, beta))
    layers, x = [e0], e0
    for _ in range(num_layers):
        x = x / (torch.norm(x, dim=1) + 1e-12)[:, None]
        x = adj @ x
        layers.append(x)
    return gamma * e0 + (1 - gamma) * torch.mean(torch.stack(layers[1:], dim=1), dim=1)


@pytest.mark.parametrize(("gamma", "num_layers"), [(0.2, 2), (0.0, 3), (0.5, 1)])
def test_plusplus_step_and_gradients_equal_dense_reference(edges, gamma, num_layers):
    model = plusplus(edges, gamma=gamma, num_layers=num_layers).to(torch.float64)
    out = breakdown(model.loss(BATCH))
    total(model.loss(BATCH)).backward()

    e0 = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach()
    e0 = e0.clone().requires_grad_(True)
    final = dense_plusplus(e0, 0.6, -0.1, gamma, num_layers)
    users, pos, neg = BATCH.users, BATCH.pos, BATCH.neg
    u, p, n = final[users], final[NU + pos], final[NU + neg]
    bpr = torch.mean(torch.nn.functional.softplus((u * n).sum(1) - (u * p).sum(1)))
    reg = (
        0.1
        * 0.5
        * (e0[users].norm().pow(2) + e0[NU + pos].norm().pow(2) + e0[NU + neg].norm().pow(2))
        / len(users)
    )
    torch.testing.assert_close(out["bpr"], bpr)
    torch.testing.assert_close(out["reg"], reg)
    (bpr + reg).backward()
    grad = torch.cat([model.user_embedding.weight.grad, model.item_embedding.weight.grad])
    torch.testing.assert_close(grad, e0.grad)
    # isolated nodes: their propagated rows are 0, so only γ·e0 is left
    final_users, _ = model.propagate()
    torch.testing.assert_close(final_users[4], gamma * model.user_embedding.weight[4])


def test_symmetric_alpha_equal_beta_uses_the_fast_path(edges):
    model = plusplus(edges, alpha=0.4, beta=0.4)
    assert model.adjacency_t is None
    ref = torch.from_numpy(dense_adjacency(0.4, 0.4))
    np.testing.assert_allclose(model.adjacency.to_dense().double(), ref, rtol=1e-6)
    assert plusplus(edges).adjacency_t is not None


def test_fused_views_equal_separate_propagations_with_the_options(edges):
    model = plusplus(edges, cls=SimGCL, include_layer0=False)
    double = [None, lambda x: 2.0 * x]
    for a, b in zip(
        model.layers_of_views(double, fused=True),
        model.layers_of_views(double, fused=False),
        strict=True,
    ):
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y)


def test_ssl_models_gain_the_options(edges):
    for cls, kw in ((SimGCL, {"fused": True}), (XSimGCL, {}), (NCL, {"num_clusters": 2})):
        model = plusplus(edges, cls=cls, **kw)
        model.start_epoch()
        terms = model.loss(BATCH)
        total(terms).backward()
        assert model.adjacency_t is not None and "ssl" in terms
        assert torch.isfinite(model.user_embedding.weight.grad).all()


def test_sgl_views_refuse_the_reweighted_graph(edges):
    u, i = edges
    model = plusplus(
        edges, cls=SGL, train_users=u, train_items=i, augmenter=EdgeDropout(0.2), gamma=None
    )
    with pytest.raises(ValueError, match="norm_alpha/norm_beta reweight the training graph"):
        model.loss(BATCH)


def test_option_errors(edges):
    with pytest.raises(ValueError, match="layer_weights or gamma"):
        plusplus(edges, layer_weights=[0.2, 0.4, 0.4])
    with pytest.raises(ValueError, match="needs K >= 1"):
        plusplus(edges, num_layers=0)
    with pytest.raises(ValueError, match="init_std"):
        plusplus(edges, init_std=0.0)


def test_init_std_draws_normal_embeddings(edges):
    model = plusplus(edges, init_std=0.1)
    w = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach()
    torch.manual_seed(0)
    for n in (NU, NI):  # the base class' draws come first: nn.Embedding's, then Xavier's
        torch.nn.Embedding(n, D)
    torch.nn.init.xavier_uniform_(torch.empty(NU, D))
    torch.nn.init.xavier_uniform_(torch.empty(NI, D))
    u = torch.empty(NU, D).normal_(std=0.1)
    i = torch.empty(NI, D).normal_(std=0.1)
    assert torch.equal(w, torch.cat([u, i]))


# --------------------------------------------------------------------------------------------
# The defaults are the original LightGCN, bit for bit
# --------------------------------------------------------------------------------------------


def original_layers(model, adjacency=None, perturb=None) -> list[torch.Tensor]:
    """``LightGCN.layers`` before the options, verbatim."""
    if isinstance(adjacency, Sequence):
        adjs = adjacency
    else:
        adjs = [adjacency] * model.num_layers
    x = torch.cat([model.user_embedding.weight, model.item_embedding.weight])
    out = [x]
    for adj in adjs:
        x = symmetric_spmm(model.adjacency if adj is None else adj, x)
        if perturb is not None:
            x = perturb(x)
        out.append(x)
    return out


def original_fused(model, perturbs) -> list[list[torch.Tensor]]:
    """``LightGCN.layers_of_views(fused=True)`` before the options, verbatim."""
    x0 = torch.cat([model.user_embedding.weight, model.item_embedding.weight])
    outs = [[x0] for _ in perturbs]
    x = x0.repeat(1, len(perturbs))
    for _ in range(model.num_layers):
        parts = symmetric_spmm(model.adjacency, x).split(model.embedding_dim, dim=1)
        parts = [part if p is None else p(part) for p, part in zip(perturbs, parts, strict=True)]
        for out, part in zip(outs, parts, strict=True):
            out.append(part)
        x = torch.cat(parts, dim=1)
    return outs


def grads(model) -> torch.Tensor:
    return torch.cat([model.user_embedding.weight.grad, model.item_embedding.weight.grad])


def base(edges, cls=LightGCN, **kw):
    u, i = edges
    torch.manual_seed(3)
    return cls(
        n_users=NU, n_items=NI, adjacency=normalized_adjacency(u, i, NU, NI), embedding_dim=D, **kw
    )


def test_lightgcn_defaults_are_bit_identical(edges):
    model = base(edges)
    assert model.adjacency_t is None and not model.reweighted
    got = model.combine(model.layers())
    ref = combine_layers(original_layers(model), model.host_weights)
    assert torch.equal(got, ref)
    total(model.loss(BATCH)).backward()
    g = grads(model).clone()
    model.zero_grad()
    u, i = model.split(ref)
    total(model.ranking_terms(u, i, BATCH)).backward()
    assert torch.equal(g, grads(model))


@pytest.mark.parametrize("fused", [False, True])
def test_simgcl_and_xsimgcl_defaults_are_bit_identical(edges, fused):
    noise = UniformNoise(0.1)
    model = base(edges, cls=SimGCL, fused=fused)
    torch.manual_seed(11)
    views = model.layers_of_views([None, noise, noise], fused)
    torch.manual_seed(11)
    if fused:
        ref = original_fused(model, [None, noise, noise])
    else:
        ref = [original_layers(model, perturb=p) for p in (None, noise, noise)]
    for a, b in zip(views, ref, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

    model = base(edges, cls=XSimGCL)
    torch.manual_seed(12)
    got = model.layers(perturb=noise)
    torch.manual_seed(12)
    assert all(
        torch.equal(x, y) for x, y in zip(got, original_layers(model, perturb=noise), strict=True)
    )


def test_sgl_views_are_bit_identical(edges):
    u, i = edges
    model = base(edges, cls=SGL, train_users=u, train_items=i, augmenter=EdgeDropout(0.2))
    torch.manual_seed(1)
    view = model.draw_view()
    got = model.layers(view)
    assert all(torch.equal(x, y) for x, y in zip(got, original_layers(model, view), strict=True))


# --------------------------------------------------------------------------------------------
# Configs and lastfm
# --------------------------------------------------------------------------------------------

PLUSPLUS = {"norm_alpha": 0.6, "norm_beta": -0.1, "layer_norm": True, "gamma": 0.0}


compose_cfg = compose_quiet  # the run config with no logger and no progress bar


def test_lightgcn_with_the_options_from_the_command_line_is_lightgcnpp(tiny_dataset_dir):
    from sslrec.data import DatasetSpec, load_dataset
    from sslrec.factory import build_model

    plain = compose_cfg("model=lightgcn")
    # "model.KEY=" once conf/model/lightgcn.yaml lists the options, "+model.KEY=" before
    opts = [
        f"{'' if key in plain.model else '+'}model.{key}={str(value).lower()}"
        for key, value in PLUSPLUS.items()
    ]
    cfg = compose_cfg("model=lightgcn", "model.num_layers=2", *opts)
    pp = compose_cfg("model=lightgcnpp")
    assert pp.model._target_.endswith("LightGCNpp")
    data = load_dataset(DatasetSpec(name="tiny", path=str(tiny_dataset_dir)))
    models = []
    for c in (cfg, pp):
        torch.manual_seed(0)
        models.append(build_model(c.model, data, torch.device("cpu")))
    a, b = models
    assert (a.norm_alpha, a.norm_beta, a.layer_norm, a.gamma, a.num_layers) == (
        b.norm_alpha,
        b.norm_beta,
        b.layer_norm,
        b.gamma,
        b.num_layers,
    )
    assert all(torch.equal(x, y) for x, y in zip(a.propagate(), b.propagate(), strict=True))


def test_lightgcnpp_on_lastfm_beats_most_popular_and_logs_its_terms(tmp_path):
    cfg = compose_cfg(
        "threads=1",
        "model=lightgcnpp",
        "trainer.epochs=5",
        "trainer.eval_every=5",
        "trainer.lr=1e-2",
    )
    res = run(cfg, tmp_path / "run")
    assert res["test"]["recall@20"] > res["baselines"]["most_popular"]["recall@20"]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert records and all({"bpr", "reg", "total"} <= set(r["losses"]) for r in records)
