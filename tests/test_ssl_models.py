"""SGL, SimGCL and XSimGCL: one step's loss against a direct dense computation.

Every reference re-seeds torch and redraws the augmentation itself (``randperm`` per edge-dropped
graph, ``rand`` per noisy layer, in the order the model draws them), so it shares no code with
the augmenters or the models beyond the seed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslrec.augment import EdgeDropout, RandomWalk, UniformNoise
from sslrec.data import Batch
from sslrec.graph import normalized_adjacency
from sslrec.losses import BPRLoss, InfoNCEHead, L2Reg, breakdown
from sslrec.models import SGL, SimGCL, XSimGCL
from sslrec.models.lightgcn import combine_layers
from tests.reference import dense_normalized_adjacency, random_graph

NU, NI, D = 6, 8, 4
BATCH = (
    torch.tensor([0, 3, 3, 5, 1]),
    torch.tensor([2, 7, 1, 2, 0]),
    torch.tensor([5, 4, 6, 3, 3]),
)


@pytest.fixture(scope="module")
def graph():
    u, i = random_graph(NU, NI, 0.5, seed=2)
    # every node has an edge, so no propagated row is exactly zero (signs are well defined)
    assert np.bincount(u, minlength=NU).min() > 0 and np.bincount(i, minlength=NI).min() > 0
    ut, it = torch.from_numpy(u), torch.from_numpy(i)
    return ut, it, normalized_adjacency(ut, it, NU, NI)


# --------------------------------------------------------------------------------------------
# Dense references
# --------------------------------------------------------------------------------------------


def _ego(model) -> torch.Tensor:
    return torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach().double()


def _dense_adj(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(dense_normalized_adjacency(users.numpy(), items.numpy(), NU, NI))


def _documented_draw(shape: tuple[int, ...], chunk: int = 1 << 20) -> np.ndarray:
    """float32 U(0, 1) as the CPU noise documents: one ``randint(0, 2**62)`` of torch's generator
    seeds a ``SeedSequence``; chunk ``j`` of ``chunk`` numbers comes from its ``j``-th child's
    PCG64."""
    seed = int(torch.randint(0, 2**62, (1,)))
    n = int(np.prod(shape))
    children = np.random.SeedSequence(seed).spawn(max(1, -(-n // chunk)))
    parts = [
        np.random.Generator(np.random.PCG64(c)).random(min(chunk, n - j * chunk), np.float32)
        for j, c in enumerate(children)
    ]
    return np.concatenate(parts).reshape(shape)


def _propagate(e0: torch.Tensor, adjs: list[torch.Tensor], noise_eps: float | None = None):
    """``[E^(0), ..., E^(K)]`` with layer ``k`` using ``adjs[k-1]``; with ``noise_eps``, uniform
    noise ``ε · sign(x) ⊙ Δ/‖Δ‖`` after every layer, ``Δ`` drawn as the CPU noise documents
    (:func:`_documented_draw`)."""
    out, x = [e0], e0
    for a in adjs:
        x = a @ x
        if noise_eps is not None:
            delta = torch.from_numpy(_documented_draw(tuple(x.shape))).double()
            x = x + noise_eps * torch.sign(x) * delta / delta.norm(dim=1, keepdim=True)
        out.append(x)
    return out


def _mean(layers: list[torch.Tensor], include0: bool) -> torch.Tensor:
    chosen = layers if include0 else layers[1:]
    return sum(chosen) / len(chosen)


def _infonce(v1, v2, anchors, tau, negatives, reduction) -> torch.Tensor:
    """``−log(exp(cos(a₁,a₂)/τ) / Σ_b exp(cos(a₁,b₂)/τ))`` per anchor, written out directly."""
    if negatives == "in_batch":
        anchors = torch.tensor(sorted(set(anchors.tolist())))
        cand = v2[anchors]
    else:
        cand = v2
    terms = []
    for a in anchors.tolist():
        x = v1[a] / v1[a].norm()
        pos = torch.exp(x @ (v2[a] / v2[a].norm()) / tau)
        den = torch.exp((cand / cand.norm(dim=1, keepdim=True)) @ x / tau).sum()
        terms.append(-torch.log(pos / den))
    t = torch.stack(terms)
    return t.sum() if reduction == "sum" else t.mean()


def _bpr(final: torch.Tensor, users, pos, neg) -> torch.Tensor:
    u, p, n = final[users], final[NU + pos], final[NU + neg]
    return torch.log1p(torch.exp(-((u * p).sum(1) - (u * n).sum(1)))).mean()


def _reg_ego(e0, users, pos, neg, weight) -> torch.Tensor:
    rows = (e0[users], e0[NU + pos], e0[NU + neg])
    return weight * sum(0.5 * r.pow(2).sum() for r in rows) / len(users)


def _reg_propagated_unsquared(final, users, pos, neg, weight) -> torch.Tensor:
    rows = (final[users], final[NU + pos], final[NU + neg])
    return weight * sum(r.norm() for r in rows) / len(users)


def _close(got: torch.Tensor, ref: torch.Tensor) -> None:
    torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# SGL
# --------------------------------------------------------------------------------------------


def _sgl(graph, augmenter, num_layers=2, regenerate="epoch", seed=0):
    ut, it, adj = graph
    torch.manual_seed(seed)
    return SGL(
        train_users=ut,
        train_items=it,
        augmenter=augmenter,
        ssl_weight=0.3,
        regenerate=regenerate,
        n_users=NU,
        n_items=NI,
        adjacency=adj,
        embedding_dim=D,
        num_layers=num_layers,
        loss=BPRLoss(),  # a mean, unlike SGL-Torch's sum (the default), as the reference below
        reg=L2Reg(weight=0.1),
    )


def _redraw_edge_dropped(ut, it, ratio, n_graphs) -> list[torch.Tensor]:
    n_keep = int(ut.numel() * (1.0 - ratio))
    out = []
    for _ in range(n_graphs):
        keep = torch.randperm(ut.numel())[:n_keep]
        out.append(_dense_adj(ut[keep], it[keep]))
    return out


@pytest.mark.parametrize("kind", ["ED", "RW"])
def test_sgl_loss_equals_direct_computation(graph, kind):
    ut, it, adj = graph
    K, ratio = 2, 0.3
    aug = EdgeDropout(ratio) if kind == "ED" else RandomWalk(ratio)
    model = _sgl(graph, aug, num_layers=K)
    users, pos, neg = BATCH
    torch.manual_seed(42)
    model.start_epoch()
    out = breakdown(model.loss(Batch(users, pos, neg)))

    torch.manual_seed(42)
    per_view = 1 if kind == "ED" else K
    g1 = _redraw_edge_dropped(ut, it, ratio, per_view)
    g2 = _redraw_edge_dropped(ut, it, ratio, per_view)
    if kind == "ED":
        g1, g2 = g1 * K, g2 * K
    # the model's views are the redrawn graphs
    for mine, theirs in zip(g1 + g2, model.views[0] + model.views[1], strict=True):
        torch.testing.assert_close(theirs.to_dense().double(), mine, rtol=1e-6, atol=0)

    e0 = _ego(model)
    clean = _mean(_propagate(e0, [adj.to_dense().double()] * K), include0=True)
    v1 = _mean(_propagate(e0, g1), include0=True)
    v2 = _mean(_propagate(e0, g2), include0=True)
    ssl = _infonce(v1[:NU], v2[:NU], users, 0.2, "all", "sum") + _infonce(
        v1[NU:], v2[NU:], pos, 0.2, "all", "sum"
    )
    bpr = _bpr(clean, users, pos, neg)
    reg = _reg_ego(e0, users, pos, neg, 0.1)
    _close(out["bpr"], bpr)
    _close(out["reg"], reg)
    _close(out["ssl"], ssl)
    _close(out["total"], bpr + 0.3 * ssl + reg)

    if kind == "RW":  # the per-layer graphs matter: layer 1's graph for both layers differs
        w1 = _mean(_propagate(e0, [g1[0]] * K), include0=True)
        w2 = _mean(_propagate(e0, [g2[0]] * K), include0=True)
        wrong = _infonce(w1[:NU], w2[:NU], users, 0.2, "all", "sum") + _infonce(
            w1[NU:], w2[NU:], pos, 0.2, "all", "sum"
        )
        assert not torch.allclose(wrong, ssl, rtol=1e-4)


def _dense_views(model) -> list[torch.Tensor]:
    return [a.to_dense() for view in model.views for a in view]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_sgl_views_fixed_within_epoch_and_redrawn_by_start_epoch(graph):
    model = _sgl(graph, EdgeDropout(0.3))
    users, pos, neg = BATCH
    torch.manual_seed(1)
    model.start_epoch()
    views = model.views
    first = _dense_views(model)
    assert not _same(first[:2], first[2:])  # the two views differ from each other
    l1 = breakdown(model.loss(Batch(users, pos, neg)))["ssl"]
    l2 = breakdown(model.loss(Batch(users, pos, neg)))["ssl"]
    assert model.views is views
    assert _same(_dense_views(model), first)
    torch.testing.assert_close(l1, l2, rtol=0, atol=0)
    model.start_epoch()
    assert not _same(_dense_views(model), first)
    assert not torch.allclose(breakdown(model.loss(Batch(users, pos, neg)))["ssl"], l1)


def test_sgl_draws_views_on_first_loss_without_start_epoch(graph):
    model = _sgl(graph, EdgeDropout(0.3))
    assert model.views is None
    breakdown(model.loss(Batch(*BATCH)))
    assert model.views is not None
    first = _dense_views(model)
    breakdown(model.loss(Batch(*BATCH)))
    assert _same(_dense_views(model), first)


def test_sgl_batch_regeneration_redraws_every_loss(graph):
    model = _sgl(graph, EdgeDropout(0.3), regenerate="batch")
    torch.manual_seed(1)
    model.start_epoch()  # no-op for per-batch views
    assert model.views is None
    l1 = breakdown(model.loss(Batch(*BATCH)))["ssl"]
    first = _dense_views(model)
    l2 = breakdown(model.loss(Batch(*BATCH)))["ssl"]
    assert not _same(_dense_views(model), first)
    assert not torch.allclose(l1, l2)


def test_sgl_invalid_regenerate(graph):
    with pytest.raises(ValueError):
        _sgl(graph, EdgeDropout(0.3), regenerate="step")


# --------------------------------------------------------------------------------------------
# SimGCL
# --------------------------------------------------------------------------------------------


def _simgcl(graph, num_layers=2, reg=None):
    _, _, adj = graph
    torch.manual_seed(0)
    return SimGCL(
        n_users=NU,
        n_items=NI,
        adjacency=adj,
        embedding_dim=D,
        num_layers=num_layers,
        ssl_weight=0.5,
        reg=reg or L2Reg(weight=0.05, squared=False, apply_to="propagated"),
    )


def test_simgcl_loss_equals_direct_computation(graph):
    _, _, adj = graph
    K = 2
    model = _simgcl(graph, num_layers=K)
    users, pos, neg = BATCH
    torch.manual_seed(7)
    out = breakdown(model.loss(Batch(users, pos, neg)))

    torch.manual_seed(7)
    e0, a = _ego(model), adj.to_dense().double()
    clean = _mean(_propagate(e0, [a] * K), include0=False)
    n1 = _mean(_propagate(e0, [a] * K, noise_eps=0.1), include0=False)
    n2 = _mean(_propagate(e0, [a] * K, noise_eps=0.1), include0=False)
    ssl = _infonce(n1[:NU], n2[:NU], users, 0.2, "in_batch", "mean") + _infonce(
        n1[NU:], n2[NU:], pos, 0.2, "in_batch", "mean"
    )
    bpr = _bpr(clean, users, pos, neg)
    reg = _reg_propagated_unsquared(clean, users, pos, neg, 0.05)
    _close(out["bpr"], bpr)
    _close(out["reg"], reg)
    _close(out["ssl"], ssl)
    _close(out["total"], bpr + 0.5 * ssl + reg)


@pytest.mark.parametrize("which", ["simgcl", "simgcl-fused", "xsimgcl"])
def test_noise_drawn_ahead_trains_bit_for_bit_as_drawn_one_by_one(graph, monkeypatch, which):
    """At 2 threads the noisy encoders announce their draws (``drawn_ahead``: SimGCL 2·K,
    XSimGCL K per step); three steps give the same losses, gradients and generator state as
    with the draws made one by one (``DRAW_AHEAD`` off)."""
    from sslrec.augment import noise as noise_mod

    calls = []
    real_next = noise_mod._Ahead.next
    monkeypatch.setattr(
        noise_mod._Ahead, "next", lambda self, key: calls.append(1) or real_next(self, key)
    )

    def run(ahead: bool):
        monkeypatch.setattr(noise_mod, "DRAW_AHEAD", ahead)
        model = _xsimgcl(graph) if which == "xsimgcl" else _simgcl(graph, num_layers=3)
        model.fused = which == "simgcl-fused"
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        torch.manual_seed(11)
        seen = []
        for _ in range(3):
            terms = breakdown(model.loss(Batch(*BATCH)))
            opt.zero_grad()
            terms["total"].backward()
            seen += [terms["total"].detach().clone()]
            seen += [p.grad.clone() for p in model.parameters()]
            opt.step()
        return [*seen, torch.get_rng_state()]

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got, want = run(True), run(False)
    finally:
        torch.set_num_threads(before)
    draws_per_step = 3 if which == "xsimgcl" else 6
    assert len(calls) == 3 * draws_per_step
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)


# --------------------------------------------------------------------------------------------
# XSimGCL
# --------------------------------------------------------------------------------------------


def _xsimgcl(graph, cl_layer=1, num_layers=3):
    _, _, adj = graph
    torch.manual_seed(0)
    return XSimGCL(
        cl_layer=cl_layer,
        noise=UniformNoise(0.2),
        ssl_weight=0.2,
        n_users=NU,
        n_items=NI,
        adjacency=adj,
        embedding_dim=D,
        num_layers=num_layers,
        reg=L2Reg(weight=0.05, squared=False, apply_to="propagated"),
    )


def _xsimgcl_reference(model, adj, cl_layer, K, seed):
    users, pos, neg = BATCH
    torch.manual_seed(seed)
    layers = _propagate(_ego(model), [adj.to_dense().double()] * K, noise_eps=0.2)
    final = _mean(layers, include0=False)
    target = layers[cl_layer]
    ssl = _infonce(final[:NU], target[:NU], users, 0.15, "in_batch", "mean") + _infonce(
        final[NU:], target[NU:], pos, 0.15, "in_batch", "mean"
    )
    bpr = _bpr(final, users, pos, neg)
    reg = _reg_propagated_unsquared(final, users, pos, neg, 0.05)
    return bpr, ssl, reg


@pytest.mark.parametrize("cl_layer", [1, 2, 3])
def test_xsimgcl_loss_equals_direct_computation(graph, cl_layer):
    _, _, adj = graph
    model = _xsimgcl(graph, cl_layer=cl_layer)
    torch.manual_seed(5)
    out = breakdown(model.loss(Batch(*BATCH)))
    bpr, ssl, reg = _xsimgcl_reference(model, adj, cl_layer, 3, seed=5)
    _close(out["bpr"], bpr)
    _close(out["reg"], reg)
    _close(out["ssl"], ssl)
    _close(out["total"], bpr + 0.2 * ssl + reg)


def test_xsimgcl_cl_layer_changes_the_contrast_target(graph):
    _, _, adj = graph
    m1, m2 = _xsimgcl(graph, cl_layer=1), _xsimgcl(graph, cl_layer=2)
    torch.manual_seed(5)
    o1 = breakdown(m1.loss(Batch(*BATCH)))
    torch.manual_seed(5)
    o2 = breakdown(m2.loss(Batch(*BATCH)))
    torch.testing.assert_close(o1["bpr"], o2["bpr"])  # same noisy pass, same final
    assert not torch.allclose(o1["ssl"], o2["ssl"], rtol=1e-4)
    # cl_layer=2's value is layer 2's reference, not layer 1's
    _, ssl_l1, _ = _xsimgcl_reference(m2, adj, 1, 3, seed=5)
    _, ssl_l2, _ = _xsimgcl_reference(m2, adj, 2, 3, seed=5)
    _close(o2["ssl"], ssl_l2)
    assert not torch.allclose(o2["ssl"].double(), ssl_l1, rtol=1e-4)


def test_xsimgcl_invalid_cl_layer(graph):
    for bad in (0, 4):
        with pytest.raises(ValueError):
            _xsimgcl(graph, cl_layer=bad, num_layers=3)


# --------------------------------------------------------------------------------------------
# Shared: clean ranking embeddings, gradients
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [_simgcl, _xsimgcl], ids=["SimGCL", "XSimGCL"])
def test_ranking_embeddings_are_clean(graph, make):
    _, _, adj = graph
    model = make(graph)
    K = model.num_layers
    state = torch.get_rng_state()
    u1, i1 = model.embeddings()
    u2, i2 = model.embeddings()
    assert torch.equal(torch.get_rng_state(), state)  # no noise drawn
    assert torch.equal(u1, u2) and torch.equal(i1, i2)
    clean = _mean(_propagate(_ego(model), [adj.to_dense().double()] * K), include0=False)
    _close(u1, clean[:NU])
    _close(i1, clean[NU:])


def _all_models(graph):
    return {
        "SGL-ED": _sgl(graph, EdgeDropout(0.3)),
        "SGL-RW": _sgl(graph, RandomWalk(0.3)),
        "SimGCL": _simgcl(graph),
        "XSimGCL": _xsimgcl(graph),
    }


@pytest.mark.parametrize("name", ["SGL-ED", "SGL-RW", "SimGCL", "XSimGCL"])
def test_gradients_reach_embeddings(graph, name):
    model = _all_models(graph)[name]
    torch.manual_seed(3)
    model.start_epoch()
    out = breakdown(model.loss(Batch(*BATCH)))
    for term in ("ssl", "total"):
        model.zero_grad()
        out[term].backward(retain_graph=True)
        for table in (model.user_embedding.weight, model.item_embedding.weight):
            assert table.grad is not None and torch.isfinite(table.grad).all()
            assert table.grad.abs().sum() > 0, (name, term)


def test_simgcl_and_xsimgcl_defaults(graph):
    """The constructors' defaults: the lastfm-validated λ, SELFRec's heads, reg and layer mean."""
    _, _, adj = graph
    kw = {"n_users": NU, "n_items": NI, "adjacency": adj, "embedding_dim": D}
    model = SimGCL(**kw)
    assert model.noise == UniformNoise(0.1, "uniform") and model.ssl_weight == 0.1
    assert model.head == InfoNCEHead(0.2, "in_batch", "mean")
    assert model.reg == L2Reg(squared=False, apply_to="propagated", include_negative=False)
    assert model.weights[0] == 0  # mean over layers 1..K
    x = XSimGCL(**kw)
    assert (x.noise.eps, x.ssl_weight, x.cl_layer) == (0.1, 0.05, 1)
    assert x.head == InfoNCEHead(0.15, "in_batch", "mean")


def test_noisy_views_differ_from_clean(graph):
    model = _simgcl(graph)
    torch.manual_seed(0)
    nu, _ = model.split(combine_layers(model.layers(perturb=model.noise), model.weights))
    cu, _ = model.embeddings()
    diff = (nu.detach() - cu).norm(dim=1)
    assert diff.min() > 0


def test_fused_views_equal_separate_propagations(graph):
    """One [N, 3d] product per layer gives exactly the three separate propagations."""
    model = _simgcl(graph)

    def shift(x):  # deterministic, so both paths see the same perturbation
        return x + 0.1 * torch.sign(x)

    def scale(x):
        return 0.9 * x

    perturbs = [None, shift, scale]
    fused = model.layers_of_views(perturbs, fused=True)
    separate = model.layers_of_views(perturbs, fused=False)
    for f_layers, s_layers in zip(fused, separate, strict=True):
        for f, s in zip(f_layers, s_layers, strict=True):
            torch.testing.assert_close(f, s)


def test_fused_simgcl_loss_matches_separate_in_distribution(graph):
    """Fused and separate SimGCL give the same BPR and reg (clean view) and a finite SSL term."""
    model = _simgcl(graph)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    torch.manual_seed(0)
    sep = breakdown(model.loss(Batch(users, pos, neg)))
    model.fused = True
    torch.manual_seed(0)
    fus = breakdown(model.loss(Batch(users, pos, neg)))
    torch.testing.assert_close(fus["bpr"], sep["bpr"])
    torch.testing.assert_close(fus["reg"], sep["reg"])
    assert torch.isfinite(fus["ssl"]) and fus["ssl"] > 0


@pytest.mark.parametrize("name", ["SGL-ED", "SGL-RW", "SimGCL", "XSimGCL"])
def test_cl_only_drops_bpr_from_the_total(graph, name):
    """loss.weight=0 ("CL only"): total = λ·ssl + reg, with the same draws as with BPR."""
    full, cl_only = _all_models(graph)[name], _all_models(graph)[name]
    cl_only.load_state_dict(full.state_dict())
    cl_only.ranking_loss = BPRLoss(weight=0.0, reduction=full.ranking_loss.reduction)
    outs = []
    for model in (full, cl_only):
        torch.manual_seed(3)
        model.start_epoch()
        outs.append(breakdown(model.loss(Batch(*BATCH))))
    a, b = outs
    close = torch.testing.assert_close
    lam = full.ssl_weight
    close(a["total"], a["bpr"] + lam * a["ssl"] + a["reg"])
    close(b["total"], lam * b["ssl"] + b["reg"])
    for key in ("bpr", "ssl", "reg"):
        close(a[key], b[key])
    assert (a["total"] - b["total"]).abs() > 1e-6
