"""layer_sum (the encoder as one node, Horner backward) against dense float64 autograd, and
LightGCN.encode against autograd through LightGCN.layers."""

from __future__ import annotations

import pytest
import torch

from sslrec.augment import UniformNoise
from sslrec.graph.layer_sum import layer_sum, layer_sum_views

NU, NI, D = 6, 9, 4


def _graph(seed: int, symmetric_norm: bool = True) -> torch.Tensor:
    """A dense float64 ``[NU+NI, NU+NI]`` bipartite adjacency, ``D^-1/2 A D^-1/2`` or (not
    symmetric) ``D^-0.6 A D^0.1``."""
    gen = torch.Generator().manual_seed(seed)
    r = (torch.rand(NU, NI, generator=gen) < 0.5).double()
    a = torch.zeros(NU + NI, NU + NI, dtype=torch.float64)
    a[:NU, NU:], a[NU:, :NU] = r, r.T
    deg = a.sum(1).clamp(min=1)
    if symmetric_norm:
        return a / deg.sqrt()[:, None] / deg.sqrt()[None, :]
    return a * deg.pow(-0.6)[:, None] * deg.pow(0.1)[None, :]


def _leaves(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xu = torch.randn(NU, D, generator=gen, dtype=torch.float64).requires_grad_()
    xi = torch.randn(NI, D, generator=gen, dtype=torch.float64).requires_grad_()
    return xu, xi


def _reference(xu, xi, dense_adjs, weights, taps, noise=None):
    """Plain autograd through every layer (``noise[k]`` added after layer ``k + 1``)."""
    x = torch.cat([xu, xi])
    layers = [x]
    for k, a in enumerate(dense_adjs):
        x = a @ x
        if noise is not None:
            x = x + noise[k]
        layers.append(x)
    final = sum(w * e for w, e in zip(weights, layers, strict=True))
    return (final[:NU], final[NU:]), [(layers[k][:NU], layers[k][NU:]) for k in taps]


def _objective(final, taps):
    """A loss that weighs every output differently, so each gradient path counts."""
    out = (final[0] ** 2).sum() + final[1].sin().sum()
    for j, (tu, ti) in enumerate(taps):
        out = out + (j + 2) * (tu * tu.detach().cos()).sum() + ti.pow(3).sum() / (j + 1)
    return out


@pytest.mark.parametrize(
    "weights,taps",
    [
        ([0.25, 0.25, 0.25, 0.25], ()),  # LightGCN
        ([0.0, 1 / 3, 1 / 3, 1 / 3], (1,)),  # XSimGCL: layers 1..K, CL on layer 1
        ([0.25, 0.25, 0.25, 0.25, 0.0], (0, 4)),  # NCL: depth 2h past K, ego and layer 2h
        ([0.2, 0.4, 0.4], (2, 2)),  # LightGCN++-like weights, a repeated tap
    ],
)
def test_values_and_gradients_equal_autograd_through_the_layers(weights, taps):
    adj = _graph(0)
    adjs = [adj.to_sparse_csr()] * (len(weights) - 1)
    xu, xi = _leaves(1)
    final, tapped = layer_sum(xu, xi, adjs, weights, taps=taps)
    got = torch.autograd.grad(_objective(final, tapped), (xu, xi))
    ref_final, ref_taps = _reference(xu, xi, [adj] * len(adjs), weights, taps)
    want = torch.autograd.grad(_objective(ref_final, ref_taps), (xu, xi))
    torch.testing.assert_close(final, ref_final, rtol=0, atol=1e-12)
    for t, r in zip(tapped, ref_taps, strict=True):
        torch.testing.assert_close(t, r, rtol=0, atol=1e-12)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-11)


def test_per_layer_graphs_and_a_transpose_for_the_backward():
    """SGL-RW's K different graphs; LightGCN++'s non-symmetric Â with its transpose."""
    graphs = [_graph(s) for s in (2, 3, 4)]
    xu, xi = _leaves(5)
    weights = [0.25] * 4
    final, _ = layer_sum(xu, xi, [g.to_sparse_csr() for g in graphs], weights)
    got = torch.autograd.grad(_objective(final, []), (xu, xi))
    ref, _ = _reference(xu, xi, graphs, weights, ())
    want = torch.autograd.grad(_objective(ref, []), (xu, xi))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-11)

    skew = _graph(6, symmetric_norm=False)
    assert not torch.equal(skew, skew.T)
    adjs, adjs_t = [skew.to_sparse_csr()] * 2, [skew.T.contiguous().to_sparse_csr()] * 2
    final, _ = layer_sum(xu, xi, adjs, [0.2, 0.4, 0.4], adjs_t)
    got = torch.autograd.grad(_objective(final, []), (xu, xi))
    ref, _ = _reference(xu, xi, [skew] * 2, [0.2, 0.4, 0.4], ())
    want = torch.autograd.grad(_objective(ref, []), (xu, xi))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-11)
    # the backward really used the transpose: with Â itself the gradient is different
    wrong, _ = layer_sum(xu, xi, adjs, [0.2, 0.4, 0.4])
    assert not torch.allclose(torch.autograd.grad(_objective(wrong, []), (xu,))[0], got[0])


def test_additive_noise_passes_the_gradient_through_and_draws_as_layers_does():
    """SimGCL's noise inside the node: the same draws (global generator, layer by layer) and
    the clean encoder's Jacobian."""
    adj = _graph(7)
    xu, xi = _leaves(8)
    noise = UniformNoise(0.1)
    weights = [0.0, 0.5, 0.5]
    torch.manual_seed(9)
    final, tapped = layer_sum(
        xu, xi, [adj.to_sparse_csr()] * 2, weights, taps=(1,), noise=noise.add_noise
    )
    got = torch.autograd.grad(_objective(final, tapped), (xu, xi))
    torch.manual_seed(9)  # replay the draws on a plain autograd graph
    x, drawn = torch.cat([xu, xi]).detach(), []
    for _ in range(2):
        x = adj @ x
        noisy = noise(x)
        drawn.append(noisy - x)
        x = noisy
    ref_final, ref_taps = _reference(xu, xi, [adj] * 2, weights, (1,), noise=drawn)
    want = torch.autograd.grad(_objective(ref_final, ref_taps), (xu, xi))
    torch.testing.assert_close(final, ref_final, rtol=0, atol=1e-12)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-11)


def test_gradcheck():
    adj = _graph(10).to_sparse_csr()
    xu, xi = _leaves(11)

    def f(a, b):
        final, ((tu, ti),) = layer_sum(a, b, [adj] * 3, [0.1, 0.2, 0.3, 0.4], taps=(2,))
        return final[0], final[1], tu, ti

    assert torch.autograd.gradcheck(f, (xu, xi))


def test_only_one_side_used_and_bad_arguments():
    adj = _graph(12).to_sparse_csr()
    xu, xi = _leaves(13)
    (fu, _), _ = layer_sum(xu, xi, [adj] * 2, [1 / 3] * 3)
    gu, gi = torch.autograd.grad(fu.sum(), (xu, xi))
    dense = _graph(12)
    ref = (dense @ dense + dense + torch.eye(NU + NI, dtype=torch.float64)) / 3
    torch.testing.assert_close(gi, ref[:NU, NU:].sum(0)[:, None].expand(NI, D), rtol=0, atol=1e-12)
    torch.testing.assert_close(gu, ref[:NU, :NU].sum(0)[:, None].expand(NU, D), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="need 3 weights"):
        layer_sum(xu, xi, [adj] * 2, [0.5, 0.5])
    with pytest.raises(ValueError, match="taps must be layers 0..2"):
        layer_sum(xu, xi, [adj] * 2, [1 / 3] * 3, taps=(3,))


@pytest.mark.parametrize("model", ["lightgcn", "xsimgcl", "ncl", "reweighted"])
def test_encode_equals_autograd_through_layers(model, lastfm):
    """The models' encoders (one node) against the layer-by-layer autograd path: the same
    values and gradients up to float32 rounding."""
    from omegaconf import OmegaConf

    from sslrec.factory import build_model

    target = {
        "lightgcn": "sslrec.models.LightGCN",
        "xsimgcl": "sslrec.models.xsimgcl.XSimGCL",
        "ncl": "sslrec.models.ncl.NCL",
        "reweighted": "sslrec.models.LightGCN",  # D^-0.6 A D^0.1: the transpose backward
    }[model]
    cfg = {"_target_": target}
    if model == "reweighted":
        cfg |= {"norm_alpha": 0.6, "norm_beta": -0.1, "gamma": 0.2}
    torch.manual_seed(0)
    m = build_model(OmegaConf.create(cfg), lastfm, torch.device("cpu"))
    taps = {"xsimgcl": (1,), "ncl": (0, 2)}.get(model, ())
    depth = getattr(m, "depth", None)
    perturb = UniformNoise(0.1) if model == "xsimgcl" else None
    torch.manual_seed(1)
    final, tapped = m.encode(perturb=perturb, taps=taps, depth=depth)
    params = (m.user_embedding.weight, m.item_embedding.weight)
    got = torch.autograd.grad(_objective(final, tapped), params)
    torch.manual_seed(1)
    layers = m.layers(perturb=perturb, depth=depth)
    ref_final = m.split(m.combine(layers[: m.num_layers + 1]))
    ref_taps = [m.split(layers[k]) for k in taps]
    want = torch.autograd.grad(_objective(ref_final, ref_taps), params)
    for a, b in zip([*final, *sum(tapped, ())], [*ref_final, *sum(ref_taps, ())], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


def _views_objective(views):
    """Each view's users and items weighed differently, so every view's gradient counts."""
    return sum((v + 1) * (u**2).sum() + (i * (v + 2)).sin().sum() for v, (u, i) in enumerate(views))


def _assert_views_match(views, got, refs, leaves) -> None:
    """Views and their gradients ``got`` against float64 autograd references ``refs``."""
    want = torch.autograd.grad(_views_objective(refs), leaves)
    for (u, i), (ru, ri) in zip(views, refs, strict=True):
        torch.testing.assert_close(u, ru, rtol=0, atol=1e-12)
        torch.testing.assert_close(i, ri, rtol=0, atol=1e-12)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-11)


@pytest.mark.parametrize("transposed", [False, True])
def test_views_side_by_side_equal_separate_autograd_references(transposed):
    """SimGCL's clean and two noisy views as one [N, 3d] node: values and gradients against
    a plain autograd reference per view (the noise replayed), with and without a transpose."""
    adj = _graph(20, symmetric_norm=not transposed)
    adjs = [adj.to_sparse_csr()] * 3
    adjs_t = [adj.T.contiguous().to_sparse_csr()] * 3 if transposed else None
    xu, xi = _leaves(21)
    noise = UniformNoise(0.1)
    weights = [0.0, 1 / 3, 1 / 3, 1 / 3]
    torch.manual_seed(22)
    views = layer_sum_views(xu, xi, adjs, weights, [None, noise.add_noise, noise.add_noise], adjs_t)
    got = torch.autograd.grad(_views_objective(views), (xu, xi))
    # replay: the draws go layer by layer, view by view within a layer
    torch.manual_seed(22)
    xs = [torch.cat([xu, xi]).detach() for _ in range(3)]
    drawn: list[list[torch.Tensor]] = [[], [], []]
    for _ in range(3):
        for v in range(3):
            xs[v] = adj @ xs[v]
            if v:
                drawn[v].append(noise.additive_noise(xs[v]).clone())
                xs[v] = xs[v] + drawn[v][-1]
    refs = [
        _reference(xu, xi, [adj] * 3, weights, (), noise=drawn[v] if v else None)[0]
        for v in range(3)
    ]
    _assert_views_match(views, got, refs, (xu, xi))
    # noise really differs between the views and one view's gradient is not another's
    assert not torch.allclose(views[1][0], views[2][0])


def test_views_gradcheck_and_unused_parts():
    adj = _graph(23).to_sparse_csr()
    xu, xi = _leaves(24)

    def f(a, b):
        views = layer_sum_views(a, b, [adj] * 2, [0.2, 0.3, 0.5], [None, None])
        return tuple(t for view in views for t in view)

    assert torch.autograd.gradcheck(f, (xu, xi))
    # only view 1's items reach the loss: the gradient is that of one plain view's items
    views = layer_sum_views(xu, xi, [adj] * 2, [0.2, 0.3, 0.5], [None, None])
    got = torch.autograd.grad(views[1][1].sum(), (xu, xi))
    (_, ref_items), _ = layer_sum(xu, xi, [adj] * 2, [0.2, 0.3, 0.5])
    want = torch.autograd.grad(ref_items.sum(), (xu, xi))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="at least one view"):
        layer_sum_views(xu, xi, [adj] * 2, [0.2, 0.3, 0.5], [])


@pytest.mark.parametrize("reweighted", [False, True])
def test_simgcl_fused_encoder_equals_its_autograd_path(reweighted, lastfm):
    """SimGCL(fused=True) through encode_views against layers_of_views(fused=True) + autograd,
    the same seed: the same draws, values and gradients to float32 rounding."""
    from omegaconf import OmegaConf

    from sslrec.factory import build_model

    cfg = {"_target_": "sslrec.models.simgcl.SimGCL", "fused": True}
    if reweighted:
        cfg |= {"norm_alpha": 0.6, "norm_beta": -0.1}
    torch.manual_seed(0)
    m = build_model(OmegaConf.create(cfg), lastfm, torch.device("cpu"))
    perturbs = [None, m.noise, m.noise]
    params = (m.user_embedding.weight, m.item_embedding.weight)
    torch.manual_seed(1)
    views = m.encode_views(perturbs)
    got = torch.autograd.grad(_views_objective(views), params)
    torch.manual_seed(1)
    refs = [m.split(m.combine(v)) for v in m.layers_of_views(perturbs, fused=True)]
    want = torch.autograd.grad(_views_objective(refs), params)
    for (u, i), (ru, ri) in zip(views, refs, strict=True):
        torch.testing.assert_close(u, ru, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(i, ri, rtol=1e-5, atol=1e-6)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


def test_scratch_buffers_are_per_thread():
    """Models trained in threads of one process never share a layer's buffer: the same thread
    reuses its two, another thread gets its own."""
    import threading

    from sslrec.graph.layer_sum import _scratch

    like = torch.empty(NU + NI, D)
    mine = [_scratch(like, 0), _scratch(like, 1)]
    assert _scratch(like, 2) is mine[0] and mine[0] is not mine[1]
    theirs: list[torch.Tensor | None] = []
    worker = threading.Thread(target=lambda: theirs.extend(_scratch(like, k) for k in (0, 1)))
    worker.start()
    worker.join()
    assert all(t is not m for t in theirs for m in mine)
    assert _scratch(like, 0) is mine[0]  # the other thread's shape left this one's alone


def test_threads_of_one_process_get_their_own_results():
    """Two threads propagating graphs of the same shape at once (the shared buffers' case)
    each get what they get alone."""
    from concurrent.futures import ThreadPoolExecutor

    big = 400  # layers large enough to overlap in time
    gen = torch.Generator().manual_seed(3)
    adjs = [(torch.rand(2 * big, 2 * big, generator=gen) < 0.05).float().to_sparse_csr()]

    def job(seed: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        xu = torch.randn(big, 32, generator=g).requires_grad_()
        xi = torch.randn(big, 32, generator=g).requires_grad_()
        out = []
        for _ in range(20):
            final, _ = layer_sum(xu, xi, adjs * 3, [0.25] * 4)
            grads = torch.autograd.grad(final[0].sum() + final[1].square().sum(), (xu, xi))
            out += [final[0].detach(), *grads]
        return out

    alone = [job(s) for s in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(job, (1, 2)))
    for a, t in zip(alone, together, strict=True):
        for x, y in zip(a, t, strict=True):
            torch.testing.assert_close(y, x, rtol=0, atol=0)


@pytest.mark.parametrize(
    "weights,transposed",
    [
        ([0.0, 1 / 3, 1 / 3, 1 / 3], False),  # SimGCL
        ([0.25, 0.25, 0.25, 0.25], True),  # layer 0 too, a transpose
        ([0.2, 0.8], False),  # one layer: only the shared product
        ([0.5, 0.5, 0.0], True),  # a last layer of weight 0
    ],
)
def test_shared_first_layer_equals_separate_autograd_references(weights, transposed):
    """The views one after another with Â_1 E^(0) taken once (and Â_1ᵀ once backward): values
    and gradients against plain autograd per view, the noise replayed view by view."""
    depth = len(weights) - 1
    adj = _graph(30, symmetric_norm=not transposed)
    adjs = [adj.to_sparse_csr()] * depth
    adjs_t = [adj.T.contiguous().to_sparse_csr()] * depth if transposed else None
    xu, xi = _leaves(31)
    noise = UniformNoise(0.1)
    noises = [None, noise.add_noise, noise.add_noise]
    torch.manual_seed(32)
    views = layer_sum_views(xu, xi, adjs, weights, noises, adjs_t, layout="shared")
    got = torch.autograd.grad(_views_objective(views), (xu, xi))
    torch.manual_seed(32)  # replay: view 1's layers, then view 2's
    drawn: list[list[torch.Tensor] | None] = [None]
    for _ in range(2):
        x, layers = torch.cat([xu, xi]).detach(), []
        for _ in range(depth):
            x = adj @ x
            layers.append(noise.additive_noise(x).clone())
            x = x + layers[-1]
        drawn.append(layers)
    refs = [_reference(xu, xi, [adj] * depth, weights, (), noise=n)[0] for n in drawn]
    _assert_views_match(views, got, refs, (xu, xi))
    assert not torch.allclose(views[1][0], views[2][0])


def test_shared_first_layer_gradcheck_unused_views_and_bad_arguments():
    adj = _graph(33).to_sparse_csr()
    xu, xi = _leaves(34)

    def f(a, b):
        views = layer_sum_views(a, b, [adj] * 2, [0.2, 0.3, 0.5], [None, None], layout="shared")
        return tuple(t for view in views for t in view)

    assert torch.autograd.gradcheck(f, (xu, xi))
    views = layer_sum_views(xu, xi, [adj] * 2, [0.2, 0.3, 0.5], [None, None], layout="shared")
    got = torch.autograd.grad(views[1][1].sum(), (xu, xi))  # only view 1's items count
    (_, ref_items), _ = layer_sum(xu, xi, [adj] * 2, [0.2, 0.3, 0.5])
    want = torch.autograd.grad(ref_items.sum(), (xu, xi))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="at least one layer"):
        layer_sum_views(xu, xi, [], [1.0], [None], layout="shared")
    with pytest.raises(ValueError, match="layout must be wide or shared"):
        layer_sum_views(xu, xi, [adj], [0.5, 0.5], [None], layout="tall")


def test_shared_first_layer_takes_two_products_fewer_per_extra_view(monkeypatch):
    """SimGCL's three views over 3 layers: 7 sparse products forward and 7 backward (separate
    encoders: 9 and 9)."""
    import sslrec.graph.layer_sum as ls

    calls = []
    spmm = ls.spmm
    monkeypatch.setattr(ls, "spmm", lambda *a, **k: calls.append(1) or spmm(*a, **k))
    adj = _graph(35).to_sparse_csr()
    xu, xi = _leaves(36)
    noise = UniformNoise(0.1).add_noise
    views = layer_sum_views(
        xu, xi, [adj] * 3, [0, 1 / 3, 1 / 3, 1 / 3], [None, noise, noise], layout="shared"
    )
    assert len(calls) == 7
    torch.autograd.grad(_views_objective(views), (xu, xi))
    assert len(calls) == 14


@pytest.mark.parametrize("reweighted", [False, True])
def test_simgcl_default_encoder_equals_three_separate_encoders(reweighted, lastfm):
    """SimGCL's default path (shared first product) against three LightGCN.encode calls, the
    same seed: the same draws and values bit for bit, gradients to float32 rounding."""
    from omegaconf import OmegaConf

    from sslrec.factory import build_model

    cfg = {"_target_": "sslrec.models.simgcl.SimGCL"}
    if reweighted:
        cfg |= {"norm_alpha": 0.6, "norm_beta": -0.1}
    torch.manual_seed(0)
    m = build_model(OmegaConf.create(cfg), lastfm, torch.device("cpu"))
    perturbs = [None, m.noise, m.noise]
    params = (m.user_embedding.weight, m.item_embedding.weight)
    torch.manual_seed(1)
    views = m.encode_views(perturbs, "shared")
    got = torch.autograd.grad(_views_objective(views), params)
    torch.manual_seed(1)
    refs = [m.encode(perturb=p)[0] for p in perturbs]
    want = torch.autograd.grad(_views_objective(refs), params)
    for (u, i), (ru, ri) in zip(views, refs, strict=True):
        assert torch.equal(u, ru) and torch.equal(i, ri)
    for g, w in zip(got, want, strict=True):  # Â_1ᵀ Σ_v y_v against Σ_v Â_1ᵀ y_v
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
