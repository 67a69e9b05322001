"""LightGCL: one step's loss and gradients against a dense float64 computation, the SVD view,
the official CL formula on hand-made numbers, and a short lastfm run.

The references re-seed torch and redraw the edge-dropout masks (one ``F.dropout`` of the ``2E``
stored values per layer) and the paper setting's anchor masks (``rand > 0.5`` per layer and
side) in the order the model draws them; everything else is written out densely. With
``svd_rank = min(U, I)`` the randomised SVD reconstructs its matrix exactly, so the SVD view's
reference is the dense matrix itself.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from sslrec.__main__ import config_dir
from sslrec.data import Batch
from sslrec.graph import normalized_adjacency
from sslrec.losses import HingeLoss, breakdown, total
from sslrec.models.lightgcl import LightGCL
from sslrec.models.lightgcn import LightGCN
from sslrec.run import run
from tests.reference import dense_normalized_adjacency, random_graph

NU, NI, D = 6, 8, 4
USERS = torch.tensor([0, 3, 3, 5, 1])
POS = torch.tensor([2, 7, 1, 2, 0])
NEG = torch.tensor([5, 4, 6, 3, 3])


@pytest.fixture(scope="module")
def graph():
    u, i = random_graph(NU, NI, 0.5, seed=2)
    assert np.bincount(u, minlength=NU).min() > 0 and np.bincount(i, minlength=NI).min() > 0
    ut, it = torch.from_numpy(u), torch.from_numpy(i)
    return ut, it, normalized_adjacency(ut, it, NU, NI)


def _model(graph, scale: float = 0.7, **kw) -> LightGCL:
    _, _, adj = graph
    torch.manual_seed(0)
    kw = {"embedding_dim": D, "svd_rank": NU, **kw}
    model = LightGCL(NU, NI, adj, **kw)
    with torch.no_grad():  # larger than Xavier: positive logits beyond the ±5 clamp
        model.user_embedding.weight.copy_(torch.randn(NU, D) * scale)
        model.item_embedding.weight.copy_(torch.randn(NI, D) * scale)
    return model


# --------------------------------------------------------------------------------------------
# Dense references
# --------------------------------------------------------------------------------------------


def _dense(ut, it) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(Â [N, N], R̃ [U, I], R [U, I])`` in float64."""
    a = torch.from_numpy(dense_normalized_adjacency(ut.numpy(), it.numpy(), NU, NI))
    raw = torch.zeros(NU, NI, dtype=torch.float64)
    raw[ut, it] = 1.0
    return a, a[:NU, NU:], raw


def _redraw_dropped(ut, it, a: torch.Tensor, p: float, n_layers: int) -> list[torch.Tensor]:
    """The per-layer dropped matrices: each stored value of ``Â`` (CSR order: by row, then
    column) keeps ``Â_rc / (1 − p)`` or becomes 0, its mirror ``(c, r)`` independently."""
    n = NU + NI
    rows, cols = torch.cat([ut, it + NU]), torch.cat([it + NU, ut])
    order = torch.argsort(rows * n + cols)
    rows, cols = rows[order], cols[order]
    out = []
    for _ in range(n_layers):
        scale = F.dropout(torch.ones(rows.numel()), p=p).double()
        m = torch.zeros(n, n, dtype=torch.float64)
        m[rows, cols] = a[rows, cols] * scale
        out.append(m)
    return out


def _svd_view(r: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([r @ x[NU:], r.t() @ x[:NU]])


def _code_cl(g, e, ids, tau) -> torch.Tensor:
    """Official: mean_b log(Σ_j exp(g_b·e_j/τ) + 1e-8) − mean_b clamp(g_b·e_b/τ, −5, 5)."""
    neg = torch.stack([torch.log(torch.exp(e @ g[b] / tau).sum() + 1e-8) for b in ids.tolist()])
    pos = torch.stack([torch.clamp(g[b] @ e[b] / tau, -5.0, 5.0) for b in ids.tolist()])
    return neg.mean() - pos.mean()


def _paper_cl_side(z, g, w, ids, mask, tau) -> torch.Tensor:
    first = {}
    for k, b in enumerate(ids.tolist()):
        first.setdefault(b, k)
    uniq = list(first)
    # F.normalize's x / max(‖x‖, 1e-12): a node whose edges were all dropped has a zero row
    zn = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    hn = (g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)) @ w
    out = z.new_zeros(())
    for b in uniq:
        if not mask[first[b]]:
            continue
        pos = torch.exp(zn[b] @ hn[b] / tau)
        den = sum(torch.exp(zn[b] @ hn[j] / tau) for j in uniq)
        out = out - torch.log(pos / (den + 1e-8) + 1e-8)
    return out


def _bpr(e, users, pos, neg) -> torch.Tensor:
    u, p, n = e[users], e[NU + pos], e[NU + neg]
    return torch.log1p(torch.exp((u * n).sum(1) - (u * p).sum(1))).mean()


def _reference(model: LightGCL, graph, seed: int, hinge: bool = False):
    """``(terms, leaves)`` of the model's loss written out densely in float64, with ``leaves``
    the float64 copies of its parameters (for gradients)."""
    ut, it, _ = graph
    a, r_norm, r_raw = _dense(ut, it)
    paper = model.setting == "paper"
    e0 = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach().double()
    e0.requires_grad_(True)
    ws = [w.detach().double().requires_grad_(True) for w in getattr(model, "contrast_maps", [])]
    k, tau = model.num_layers, model.temperature
    torch.manual_seed(seed)
    mats = _redraw_dropped(ut, it, a, model.edge_dropout, k) if model.edge_dropout else [a] * k
    x, e_layers, g_layers, z_layers = e0, [e0], [e0], [e0]
    for m in mats:
        z, g = m @ x, _svd_view(r_raw if paper else r_norm, x)
        if paper:
            z, g = F.leaky_relu(z, 0.5), F.leaky_relu(g, 0.5)
            x = z + x
        else:
            x = z
        e_layers.append(x)
        g_layers.append(g)
        z_layers.append(z)
    e = sum(e_layers)
    items = torch.cat([POS, NEG])
    if paper:
        ssl = e0.new_zeros(())
        for layer in range(1, k + 1):
            zl, gl, w = z_layers[layer], g_layers[layer], ws[layer - 1]
            for lo, hi, ids in ((0, NU, USERS), (NU, NU + NI, items)):
                mask = (torch.rand(len(ids)) > 0.5).tolist()
                ssl = ssl + _paper_cl_side(zl[lo:hi], gl[lo:hi], w, ids, mask, tau)
    else:
        g = sum(g_layers)
        ssl = _code_cl(g[:NU], e[:NU], USERS, tau) + _code_cl(g[NU:], e[NU:], items, tau)
    if hinge:
        u, p, n = e[USERS], e[NU + POS], e[NU + NEG]
        rank = {"hinge": torch.relu(1 - (u * p).sum(1) + (u * n).sum(1)).mean()}
    else:
        rank = {"bpr": _bpr(e, USERS, POS, NEG)}
    reg = model.reg_weight * (e0.pow(2).sum() + sum(w.pow(2).sum() for w in ws))
    return rank | {"ssl": ssl, "reg": reg}, [e0, *ws]


def _check_step(model: LightGCL, graph, hinge: bool = False) -> dict:
    torch.manual_seed(11)
    terms = model.loss(Batch(USERS, POS, NEG))
    got = breakdown(terms)
    total(terms).backward()
    ref, leaves = _reference(model, graph, seed=11, hinge=hinge)
    for name, value in ref.items():
        torch.testing.assert_close(got[name].double(), value, rtol=2e-5, atol=1e-6, msg=name)
    ref_total = sum(v if n != "ssl" else model.ssl_weight * v for n, v in ref.items())
    torch.testing.assert_close(got["total"].double(), ref_total, rtol=2e-5, atol=1e-6)
    ref_total.backward()
    grad_e0 = torch.cat([model.user_embedding.weight.grad, model.item_embedding.weight.grad])
    torch.testing.assert_close(grad_e0.double(), leaves[0].grad, rtol=1e-4, atol=1e-6)
    for w, ref_w in zip(getattr(model, "contrast_maps", []), leaves[1:], strict=True):
        torch.testing.assert_close(w.grad.double(), ref_w.grad, rtol=1e-4, atol=1e-6)
    return got


# --------------------------------------------------------------------------------------------
# One step against the references
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_code_setting_step_equals_dense_reference(graph, dropout):
    model = _model(graph, scale=0.3, edge_dropout=dropout, ssl_weight=0.3, reg_weight=1e-3)
    got = _check_step(model, graph)
    assert set(got) == {"bpr", "ssl", "reg", "total"}
    if dropout:
        return
    # the clamp was active for some anchors and not for others (it is exercised, both ways)
    g_u = sum(model.views()[1])[:NU].detach()
    e_u = sum(model.views(training=False)[0])[:NU].detach()
    logits = (g_u[USERS] * e_u[USERS]).sum(1) / model.temperature
    assert (logits.abs() > 5).any() and (logits.abs() < 5).any()


@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_paper_setting_step_equals_dense_reference(graph, dropout):
    model = _model(
        graph,
        setting="paper",
        edge_dropout=dropout,
        ssl_weight=0.5,
        temperature=0.5,
        reg_weight=1e-3,
        loss=HingeLoss(),
    )
    got = _check_step(model, graph, hinge=True)
    assert set(got) == {"hinge", "ssl", "reg", "total"}


def test_edge_dropout_redraws_per_layer_and_side_and_scores_without_it(graph):
    model = _model(graph, edge_dropout=0.5)
    torch.manual_seed(3)
    first = [x.detach() for x in model.views()[0]]
    again = [x.detach() for x in model.views()[0]]
    assert not torch.equal(first[1], again[1])  # fresh masks every forward
    # scoring: the undropped graph, deterministic
    ut, it, _ = graph
    a, _, _ = _dense(ut, it)
    e0 = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach().double()
    ref = e0 + a @ e0 + a @ (a @ e0)
    users, items = model.propagate()
    torch.testing.assert_close(torch.cat([users, items]).double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.propagate()[0], users, rtol=0, atol=0)


def test_paper_scoring_has_activation_and_residual(graph):
    model = _model(graph, setting="paper", edge_dropout=0.25)
    ut, it, _ = graph
    a, _, _ = _dense(ut, it)
    x = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach().double()
    layers = [x]
    for _ in range(model.num_layers):
        x = F.leaky_relu(a @ x, 0.5) + x
        layers.append(x)
    got = torch.cat(model.propagate()).double()
    torch.testing.assert_close(got, sum(layers), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# The special parts: the CL formula, the SVD view
# --------------------------------------------------------------------------------------------


def test_code_cl_equals_the_official_formula_in_numpy(graph):
    """Hand-made rows: positive logits beyond +5 and below −5 (clamped), and an anchor whose
    logits are all ≤ −32, where the official ``+ 1e-8`` inside the log dominates."""
    model = _model(graph, temperature=0.5)
    g = torch.tensor([[4.0, 0.0], [-4.0, 0.5], [0.1, 0.2], [-8.0, 0.0]])
    e = torch.tensor([[3.0, 1.0], [2.0, -1.0], [3.0, -0.2], [2.5, 0.0]])
    ids = torch.tensor([0, 1, 2, 2, 3])  # duplicates count twice in the mean, as official
    got = model._code_side(g, e, ids)
    gn, en, tau, idx = g.double().numpy(), e.double().numpy(), 0.5, ids.numpy()
    neg = np.log(np.exp(gn[idx] @ en.T / tau).sum(1) + 1e-8).mean()
    pos = np.clip((gn[idx] * en[idx]).sum(1) / tau, -5.0, 5.0).mean()
    assert got.item() == pytest.approx(neg - pos, rel=1e-6)
    logits = (gn[idx] * en[idx]).sum(1) / tau
    assert logits.max() > 5 and logits.min() < -5
    # without the 1e-8 the last anchor's term would be ~ -32, not ~ log 1e-8
    assert np.log(np.exp(gn[3] @ en.T / tau).sum() + 1e-8) == pytest.approx(math.log(1e-8), 1e-3)


def test_code_cl_never_builds_the_anchor_by_node_block(graph, monkeypatch):
    """The all-node term goes through the tiled kernel with each distinct anchor once."""
    import sslrec.models.lightgcl as module

    calls = []
    real = module.tiled_logsumexp

    def spy(a, c, tile=None, weights=None):
        calls.append((tuple(a.shape), tuple(c.shape), float(weights.sum())))
        return real(a, c, tile, weights=weights)

    monkeypatch.setattr(module, "tiled_logsumexp", spy)
    model = _model(graph)
    model.loss(Batch(USERS, POS, NEG))
    n_users, n_items = len(set(USERS.tolist())), len(set(torch.cat([POS, NEG]).tolist()))
    # the weights (count / B) sum to 1: the kernel knows the mean it will be differentiated in
    assert [c[:2] for c in calls] == [((n_users, D), (NU, D)), ((n_items, D), (NI, D))]
    assert [c[2] for c in calls] == pytest.approx([1.0, 1.0])


def test_code_cl_backward_scales_the_forwards_gradients(graph, monkeypatch):
    """On the CPU the all-node term's ∂/∂e comes from the kernel's forward, weighted by the
    anchors' counts, and is only scaled in the backward: never recomputed."""
    from sslrec.losses import tiled

    recomputed = []
    real = tiled._recomputed_grads
    monkeypatch.setattr(tiled, "_recomputed_grads", lambda *a: recomputed.append(1) or real(*a))
    model = _model(graph)
    terms = model.loss(Batch(USERS, POS, NEG))
    total(terms).backward()
    assert recomputed == []


def test_svd_view_is_the_seeded_low_rank_reconstruction():
    n_users, n_items = 30, 40
    u, i = random_graph(n_users, n_items, 0.2, seed=3)
    adj = normalized_adjacency(torch.from_numpy(u), torch.from_numpy(i), n_users, n_items)
    r = dense_normalized_adjacency(u, i, n_users, n_items)[:n_users, n_users:]
    left, sv, right = np.linalg.svd(r)
    state = torch.get_rng_state()
    for q in (2, 5):
        model = LightGCL(n_users, n_items, adj, embedding_dim=4, svd_rank=q)
        us, vt = model.u_mul_s.double().numpy(), model.vt.double().numpy()
        vs, ut = model.v_mul_s.double().numpy(), model.ut.double().numpy()
        np.testing.assert_allclose(ut @ ut.T, np.eye(q), atol=1e-5)  # orthonormal factors
        np.testing.assert_allclose(vt @ vt.T, np.eye(q), atol=1e-5)
        np.testing.assert_allclose(vs @ ut, (us @ vt).T, atol=1e-6)  # the same Û Ŝ V̂ᵀ
        best = np.linalg.norm(r - (left[:, :q] * sv[:q]) @ right[:q])
        assert np.linalg.norm(r - us @ vt) <= 1.1 * best  # randomised, niter 2: near-optimal
        # a projection of R: its singular values never exceed R's
        assert (np.linalg.svd(us, compute_uv=False) <= sv[:q] + 1e-6).all()
        again = LightGCL(n_users, n_items, adj, embedding_dim=4, svd_rank=q)
        assert torch.equal(again.u_mul_s, model.u_mul_s)  # seeded
        other = LightGCL(n_users, n_items, adj, embedding_dim=4, svd_rank=q, svd_seed=1)
        assert not torch.equal(other.u_mul_s, model.u_mul_s)
    full = LightGCL(n_users, n_items, adj, embedding_dim=4, svd_rank=n_users)
    np.testing.assert_allclose(full.u_mul_s.double() @ full.vt.double(), r, atol=1e-5)
    raw = LightGCL(n_users, n_items, adj, embedding_dim=4, svd_rank=n_users, setting="paper")
    binary = np.zeros((n_users, n_items))
    binary[u, i] = 1.0
    np.testing.assert_allclose(raw.u_mul_s.double() @ raw.vt.double(), binary, atol=1e-4)
    # the SVD's random draws leave the global generator where LightGCN's inits leave it
    torch.set_rng_state(state)
    LightGCN(n_users, n_items, adj, embedding_dim=4)
    expected = torch.rand(3)
    torch.set_rng_state(state)
    LightGCL(n_users, n_items, adj, embedding_dim=4, svd_rank=2)
    assert torch.equal(torch.rand(3), expected)


def test_several_negatives_join_the_item_anchors(graph):
    model = _model(graph)
    neg = torch.stack([NEG, torch.tensor([1, 1, 4, 6, 7])], dim=1)  # [B, 2]
    terms = breakdown(model.loss(Batch(USERS, POS, neg)))
    assert torch.isfinite(terms["total"])


def test_constructor_checks(graph):
    _, _, adj = graph
    for kw, match in (
        ({"setting": "old"}, "setting"),
        ({"num_layers": 0}, "num_layers"),
        ({"temperature": 0.0}, "temperature"),
        ({"edge_dropout": 1.0}, "edge_dropout"),
        ({"svd_rank": NU + 1}, "svd_rank"),
        ({"norm_alpha": 0.6}, "LightGCN\\+\\+ options"),  # would be silently ignored
        ({"layer_norm": True}, "LightGCN\\+\\+ options"),
    ):
        with pytest.raises(ValueError, match=match):
            LightGCL(NU, NI, adj, **kw)


# --------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------


def test_lightgcl_beats_most_popular_on_lastfm_and_logs_its_terms(tmp_path):
    """Three epochs at lr 5e-3 with batches of 8192 (fewer, larger CL blocks: the all-node
    term's cost per epoch falls with the number of distinct anchors per batch)."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "model=lightgcl",
                "logger=none",
                "threads=1",
                "trainer.progress=false",
                "trainer.epochs=3",
                "trainer.eval_every=3",
                "trainer.batch_size=8192",
                "trainer.lr=5e-3",
            ],
        )
    res = run(cfg, tmp_path)
    model, pop = res["test"]["recall@20"], res["baselines"]["most_popular"]["recall@20"]
    assert model > pop, (model, pop)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records and all({"bpr", "ssl", "reg"} <= set(r["losses"]) for r in records)
