"""An encoder run for a batch's rows only (sslrec.graph.rows, layer_sum's ``rows``): the
row-subset product and its transpose against dense matrices, and every value and gradient
against the whole encoder, from layer_sum up to LightGCN's and SGL's losses: bit for bit at
``d = 64`` (MKL sums each row's entries in order from 32 columns up on this CPU; at 8 or 16 it
keeps partial sums that skipped zero rows regroup, a last-bit difference: checked close)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sslrec.graph.rows as rows_mod
from sslrec.augment import EdgeDropout
from sslrec.data import Batch
from sslrec.graph import normalized_adjacency
from sslrec.graph.layer_sum import layer_sum
from sslrec.graph.rows import (
    MAX_SHARE,
    Rows,
    _sorted_transpose,
    row_subset,
    take,
    transposed,
    worth_restricting,
)
from sslrec.graph.spmm import spmm
from sslrec.losses import BPRLoss, InfoNCEHead, L2Reg
from sslrec.models import SGL, LightGCN
from sslrec.models.lightgcn import LightGCNpp
from tests.reference import random_graph

NU, NI, D = 60, 90, 64


@pytest.fixture(scope="module")
def graph():
    u, i = random_graph(NU, NI, 0.08, seed=3)
    ut, it = torch.from_numpy(u), torch.from_numpy(i)
    return ut, it, normalized_adjacency(ut, it, NU, NI)


def _rows(seed: int, n: int = NU + NI, k: int = 12) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.unique(torch.randint(0, n, (k,), generator=gen))


# --------------------------------------------------------------------------------------------
# The matrices
# --------------------------------------------------------------------------------------------


def test_row_subset_is_the_dense_rows_in_stored_order(graph):
    adj = graph[2]
    rows = _rows(0)
    sub = row_subset(adj, rows)
    assert sub.shape == (len(rows), adj.shape[1])
    torch.testing.assert_close(sub.to_dense(), adj.to_dense()[rows], rtol=0, atol=0)
    assert sub.col_indices().dtype == adj.col_indices().dtype
    for j, r in enumerate(rows.tolist()):  # each row's entries as adj stores them
        a0, a1 = adj.crow_indices()[r], adj.crow_indices()[r + 1]
        s0, s1 = sub.crow_indices()[j], sub.crow_indices()[j + 1]
        assert torch.equal(sub.col_indices()[s0:s1], adj.col_indices()[a0:a1])


def test_row_subset_of_no_rows_and_of_empty_rows(graph):
    adj = graph[2]
    assert row_subset(adj, torch.zeros(0, dtype=torch.int64))._nnz() == 0
    crow = torch.tensor([0, 0, 2, 2])  # rows 0 and 2 empty
    a = torch.sparse_csr_tensor(crow, torch.tensor([0, 2]), torch.tensor([1.0, 2.0]), (3, 3))
    sub = row_subset(a, torch.tensor([0, 1, 2]))
    torch.testing.assert_close(sub.to_dense(), a.to_dense(), rtol=0, atol=0)


@pytest.mark.parametrize("transpose", [transposed, _sorted_transpose])
def test_transpose_is_dense_transpose_with_rows_in_column_order(graph, transpose):
    sub = row_subset(graph[2], _rows(1))
    t = transpose(sub)
    assert t.shape == (sub.shape[1], sub.shape[0])
    torch.testing.assert_close(t.to_dense(), sub.to_dense().T, rtol=0, atol=0)
    crow, cols = t.crow_indices(), t.col_indices()
    for r in range(t.shape[0]):
        seg = cols[crow[r] : crow[r + 1]]
        assert torch.equal(seg, seg.sort().values)
    assert cols.dtype == sub.col_indices().dtype and crow.dtype == sub.crow_indices().dtype


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("d", [8, 64])
def test_products_equal_the_whole_products(graph, threads, d):
    """``Â[R, :] X`` is rows R of ``Â X``; ``(Â[R, :])ᵀ G_R`` is ``Âᵀ G`` for G zero off R:
    bit for bit at d = 64, to the last bit at d = 8 (see the module's docstring)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        adj = graph[2]
        rows = _rows(2, k=40)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(adj.shape[0], d, generator=gen)
        sub = row_subset(adj, rows)
        assert torch.equal(spmm(sub, x), spmm(adj, x)[rows])
        g = torch.zeros_like(x)
        g[rows] = torch.randn(len(rows), d, generator=gen)
        got, want = spmm(transposed(sub), g[rows]), spmm(adj, g)
        if d == 64:
            assert torch.equal(got, want)
        else:
            torch.testing.assert_close(got, want, rtol=2e-7, atol=2e-7)
        exact = adj.to_dense().double() @ g.double()
        torch.testing.assert_close(got.double(), exact, rtol=1e-6, atol=1e-6)
    finally:
        torch.set_num_threads(before)


def test_worth_restricting_counts_the_rows_entries():
    # 4 nodes, entries per row 3, 1, 0, 4 (8 in all)
    crow = torch.tensor([0, 3, 4, 4, 8])
    cols = torch.tensor([1, 2, 3, 0, 0, 1, 2, 3])
    a = torch.sparse_csr_tensor(crow, cols, torch.ones(8), (4, 4))
    assert MAX_SHARE == 0.5
    assert worth_restricting(a, torch.tensor([0, 1]))  # 4 of 8
    assert worth_restricting(a, torch.tensor([1, 2]))  # 1 of 8
    assert not worth_restricting(a, torch.tensor([0, 1, 2, 3]))
    assert not worth_restricting(a, torch.tensor([3, 2, 1]))  # 5 of 8
    assert not worth_restricting(a.to_sparse_coo(), torch.tensor([2]))  # not CSR


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def test_rows_take_reads_like_the_table_and_its_gradient_lands_on_the_rows():
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(10, 3, generator=gen, requires_grad=True)
    ids = torch.tensor([1, 4, 5, 9])
    held = Rows(table[ids], ids)
    wanted = torch.tensor([[9, 1], [4, 4], [1, 1]])  # [B, k], duplicates
    got, ref = held.take(wanted), take(table, wanted)
    assert torch.equal(got, ref) and got.shape == (3, 2, 3)
    (g1,) = torch.autograd.grad((got * torch.arange(3.0)[:, None, None]).sum(), table)
    (g2,) = torch.autograd.grad((ref * torch.arange(3.0)[:, None, None]).sum(), table)
    assert torch.equal(g1, g2)


@pytest.mark.parametrize("missing", [[2], [10], [-1], [0, 9, 3]])
def test_rows_take_refuses_a_row_it_does_not_hold(missing):
    held = Rows(torch.zeros(4, 2), torch.tensor([1, 4, 5, 9]))
    with pytest.raises(IndexError, match="not among the 4 rows held"):
        held.take(torch.tensor(missing))


def test_rows_needs_one_id_per_row():
    with pytest.raises(ValueError, match="3 ids for 4 rows"):
        Rows(torch.zeros(4, 2), torch.tensor([1, 2, 3]))


# --------------------------------------------------------------------------------------------
# layer_sum
# --------------------------------------------------------------------------------------------


def _leaves(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xu = torch.randn(NU, D, generator=gen).requires_grad_()
    xi = torch.randn(NI, D, generator=gen).requires_grad_()
    return xu, xi


def _objective(final, tapped, pick):
    """A loss that weighs every returned row differently, read through ``pick(table, ids)``."""
    gen = torch.Generator().manual_seed(5)
    users = torch.randint(0, NU, (30,), generator=gen) % 7  # among the rows below
    items = torch.randint(0, NI, (30,), generator=gen) % 5
    out = (pick(final[0], users) * pick(final[1], items)).sum(-1).sigmoid().sum()
    for j, (tu, ti) in enumerate(tapped):
        out = out + (j + 2) * pick(tu, users).pow(2).sum() + pick(ti, items).sin().sum()
    return out


@pytest.mark.parametrize(
    "weights,taps",
    [
        ([0.25, 0.25, 0.25, 0.25], ()),  # LightGCN
        ([0.0, 1 / 3, 1 / 3, 1 / 3], (1,)),  # XSimGCL-like: no layer 0, a middle tap
        ([0.25, 0.25, 0.25, 0.25, 0.0], (0, 4)),  # NCL-like: a zero-weight last layer, tapped
        ([0.5, 0.5, 0.0], ()),  # the last layer weighs 0: the backward starts below it
        ([0.2, 0.8], (1, 1)),  # one layer, a repeated tap
    ],
)
@pytest.mark.parametrize("symmetric", [True, False])
def test_layer_sum_at_rows_equals_the_whole_encoder_bit_for_bit(graph, weights, taps, symmetric):
    adj = graph[2]
    adj_t = None
    if not symmetric:
        from sslrec.graph.adjacency import reweighted_adjacency

        adj, adj_t = reweighted_adjacency(adj, 0.6, -0.1), reweighted_adjacency(adj, -0.1, 0.6)
    depth = len(weights) - 1
    adjs = [adj] * depth
    adjs_t = None if adj_t is None else [adj_t] * depth
    rows = torch.unique(torch.cat([torch.arange(7), NU + torch.arange(5), torch.tensor([33])]))
    xu, xi = _leaves(1)
    full = layer_sum(xu, xi, adjs, weights, adjs_t, taps)
    ref = _objective(full[0], full[1], take)
    ref_grads = torch.autograd.grad(ref, (xu, xi))
    final, tapped = layer_sum(xu, xi, adjs, weights, adjs_t, taps, rows=rows)
    m_users = int((rows < NU).sum())
    assert final[0].shape == (m_users, D) and final[1].shape == (len(rows) - m_users, D)
    ids = (rows[:m_users], rows[m_users:] - NU)
    assert torch.equal(final[0], full[0][0][ids[0]]) and torch.equal(final[1], full[0][1][ids[1]])
    for k, (tu, ti), (fu, fi) in zip(taps, tapped, full[1], strict=True):
        if k == 0:  # layer 0 comes whole
            assert torch.equal(tu, fu) and torch.equal(ti, fi)
        else:
            assert torch.equal(tu, fu[ids[0]]) and torch.equal(ti, fi[ids[1]])

    def held(table, wanted):
        if table.shape[0] in (NU, NI):  # a whole table (layer 0's)
            return take(table, wanted)
        return Rows(table, ids[0 if table.shape[0] == m_users else 1]).take(wanted)

    got = _objective(final, tapped, held)
    assert torch.equal(got, ref)
    for g, r in zip(torch.autograd.grad(got, (xu, xi)), ref_grads, strict=True):
        assert torch.equal(g, r)


def test_layer_sum_at_rows_refuses_no_layers():
    xu, xi = _leaves(0)
    with pytest.raises(ValueError, match="rows needs at least one layer"):
        layer_sum(xu, xi, [], [1.0], rows=torch.tensor([0, NU]))


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

BATCH = Batch(
    users=torch.tensor([0, 3, 3, 5, 1, 17, 40]),
    pos=torch.tensor([2, 7, 1, 2, 0, 55, 80]),
    neg=torch.tensor([5, 4, 6, 3, 3, 12, 70]),
)


def _grads(model, loss_fn):
    model.zero_grad()
    terms = loss_fn()
    total = sum(t.weight * t.value for t in terms.values())
    total.backward()
    return (
        {k: t.value.detach().clone() for k, t in terms.items()},
        [p.grad.clone() for p in model.parameters()],
    )


def _assert_same_with_and_without_rows(model, monkeypatch, seed: int = 0):
    """One loss and backward with the batch's rows and one without, bit for bit; ``seed``
    before each: the noise models draw alike."""
    rows = model.node_rows(BATCH.users, BATCH.pos, BATCH.neg)
    assert rows is not None  # the batch is small enough to restrict
    torch.manual_seed(seed)
    with_rows = _grads(model, lambda: model.loss(BATCH))
    monkeypatch.setattr(type(model), "node_rows", lambda self, *a: None)
    torch.manual_seed(seed)
    without = _grads(model, lambda: model.loss(BATCH))
    assert with_rows[0].keys() == without[0].keys()
    for k in with_rows[0]:
        assert torch.equal(with_rows[0][k], without[0][k]), k
    for a, b in zip(with_rows[1], without[1], strict=True):
        assert torch.equal(a, b)


def test_lightgcn_loss_at_the_batch_rows_equals_the_whole_encoder(graph, monkeypatch):
    torch.manual_seed(0)
    model = LightGCN(NU, NI, graph[2], embedding_dim=D, num_layers=3)
    _assert_same_with_and_without_rows(model, monkeypatch)


def test_lightgcnpp_reads_its_rows_from_the_whole_tables(graph, monkeypatch):
    """layer_norm makes the encoder non-linear: rows are gathered, with the same results."""
    torch.manual_seed(0)
    model = LightGCNpp(n_users=NU, n_items=NI, adjacency=graph[2], embedding_dim=D)
    _assert_same_with_and_without_rows(model, monkeypatch)


def test_sgl_loss_with_view1_at_the_anchors_equals_the_whole_encoders(graph, monkeypatch):
    ut, it, adj = graph

    def make():
        torch.manual_seed(0)
        model = SGL(
            train_users=ut,
            train_items=it,
            augmenter=EdgeDropout(0.2),
            head=InfoNCEHead(0.2, "all", "sum"),
            n_users=NU,
            n_items=NI,
            adjacency=adj,
            embedding_dim=D,
            num_layers=2,
            loss=BPRLoss(reduction="sum"),
            reg=L2Reg(reduction="sum"),
        )
        model.start_epoch()
        return model

    a, b = make(), make()
    b.load_state_dict(a.state_dict())
    b.views = a.views
    with_rows = _grads(a, lambda: a.loss(BATCH))
    monkeypatch.setattr(SGL, "node_rows", lambda self, *x: None)
    without = _grads(b, lambda: b.loss(BATCH))
    for k in with_rows[0]:
        assert torch.equal(with_rows[0][k], without[0][k]), k
    for x, y in zip(with_rows[1], without[1], strict=True):
        assert torch.equal(x, y)


def test_node_rows_is_none_where_rows_would_not_pay(graph):
    torch.manual_seed(0)
    model = LightGCN(NU, NI, graph[2], embedding_dim=D, num_layers=2)
    rows = model.node_rows(BATCH.users, BATCH.pos, BATCH.neg[:, None])
    expected = torch.unique(torch.cat([BATCH.users, NU + BATCH.pos, NU + BATCH.neg]))
    assert torch.equal(rows, expected)
    every = torch.arange(NU)
    assert model.node_rows(every, torch.arange(NI)) is None  # all the edges
    assert LightGCN(NU, NI, graph[2], num_layers=0).node_rows(BATCH.users, BATCH.pos) is None


def test_the_transpose_uses_scipy_on_the_cpu(graph, monkeypatch):
    """The CPU transpose is scipy's counting transpose, not the sort (a spy on the sort)."""
    calls = []
    monkeypatch.setattr(
        rows_mod, "_sorted_transpose", lambda sub: calls.append(1) or _sorted_transpose(sub)
    )
    t = transposed(row_subset(graph[2], _rows(3)))
    assert calls == [] and t.layout is torch.sparse_csr
    assert np.isfinite(t.values().numpy()).all()


# --------------------------------------------------------------------------------------------
# Noise at rows, XSimGCL and NCL
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", ["uniform", "gaussian"])
def test_noise_at_rows_is_the_whole_layers_noise_at_those_rows(distribution):
    from sslrec.augment import UniformNoise

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, D, generator=gen)
    x[7] = 0.0  # a row of zeros: no noise where the sign is zero
    rows = torch.tensor([0, 7, 8, 150, 299])
    noise = UniformNoise(0.2, distribution)
    torch.manual_seed(3)
    whole = noise.add_noise(x.clone())
    after_whole = torch.randint(0, 2**62, (1,))
    torch.manual_seed(3)
    part = noise.add_noise(x[rows].clone(), at=(rows, 300))
    assert torch.equal(part, whole[rows])
    assert torch.equal(torch.randint(0, 2**62, (1,)), after_whole)  # the generator moved alike


def test_an_augmenter_without_noise_at_rows_refuses_them():
    from sslrec.augment.base import EmbeddingAugmenter

    class Shift(EmbeddingAugmenter):
        additive = True

        def additive_noise(self, x):
            return torch.ones_like(x)

    with pytest.raises(NotImplementedError, match="Shift does not add noise at rows"):
        Shift().add_noise(torch.zeros(2, 3), at=(torch.tensor([0]), 4))


def test_layer_sum_with_noise_at_rows_equals_the_whole_noisy_encoder(graph):
    from sslrec.augment import UniformNoise

    adj = graph[2]
    noise = UniformNoise(0.1).add_noise
    rows = torch.unique(torch.cat([torch.arange(7), NU + torch.arange(5)]))
    m_users = int((rows < NU).sum())
    ids = (rows[:m_users], rows[m_users:] - NU)
    weights, taps = [0.0, 1 / 3, 1 / 3, 1 / 3], (1,)
    xu, xi = _leaves(2)
    torch.manual_seed(9)
    full = layer_sum(xu, xi, [adj] * 3, weights, taps=taps, noise=noise)
    ref = _objective(full[0], full[1], take)
    ref_grads = torch.autograd.grad(ref, (xu, xi))
    torch.manual_seed(9)
    final, tapped = layer_sum(xu, xi, [adj] * 3, weights, taps=taps, noise=noise, rows=rows)

    def held(table, wanted):
        return Rows(table, ids[0 if table.shape[0] == m_users else 1]).take(wanted)

    got = _objective(final, tapped, held)
    assert torch.equal(got, ref)
    for g, r in zip(torch.autograd.grad(got, (xu, xi)), ref_grads, strict=True):
        assert torch.equal(g, r)


def test_xsimgcl_loss_at_the_batch_rows_equals_the_whole_encoder(graph, monkeypatch):
    from sslrec.models import XSimGCL

    torch.manual_seed(0)
    model = XSimGCL(n_users=NU, n_items=NI, adjacency=graph[2], embedding_dim=D)
    _assert_same_with_and_without_rows(model, monkeypatch, seed=4)


def test_ncl_loss_at_the_batch_rows_equals_the_whole_encoder(graph, monkeypatch):
    """Ego (layer 0) stays whole: every node is a negative of the structure term; warm-up 0
    so that the prototype term counts too."""
    from sslrec.models.ncl import NCL

    torch.manual_seed(0)
    model = NCL(
        n_users=NU, n_items=NI, adjacency=graph[2], embedding_dim=D, num_clusters=4, warm_up=0
    )
    model.start_epoch()
    _assert_same_with_and_without_rows(model, monkeypatch)


@pytest.mark.parametrize(
    "weights",
    [
        [0.0, 1 / 3, 1 / 3, 1 / 3],  # SimGCL
        [0.25, 0.25, 0.25, 0.25],  # layer 0 counts: its gradient joins at the rows
        [0.5, 0.5],  # one layer: the shared first product is the last one
        [0.5, 0.5, 0.0],  # the last layer weighs 0: the backward starts below it
    ],
)
def test_layer_sum_views_shared_at_rows_equals_the_whole_views(graph, weights):
    from sslrec.augment import UniformNoise
    from sslrec.graph.layer_sum import layer_sum_views

    adj = graph[2]
    noise = UniformNoise(0.1).add_noise
    rows = torch.unique(torch.cat([torch.arange(7), NU + torch.arange(5), torch.tensor([40])]))
    m_users = int((rows < NU).sum())
    ids = (rows[:m_users], rows[m_users:] - NU)
    adjs = [adj] * (len(weights) - 1)
    noises = [None, noise, noise]

    def objective(views, pick):
        gen = torch.Generator().manual_seed(5)
        users = torch.randint(0, NU, (30,), generator=gen) % 7
        items = torch.randint(0, NI, (30,), generator=gen) % 5
        out = torch.zeros(())
        for j, (u, i) in enumerate(views):
            out = out + (j + 1) * (pick(u, 0, users) * pick(i, 1, items)).sum(-1).sigmoid().sum()
        return out

    xu, xi = _leaves(3)
    torch.manual_seed(9)
    whole = layer_sum_views(xu, xi, adjs, weights, noises, layout="shared")
    ref = objective(whole, lambda t, side, w: take(t, w))
    ref_grads = torch.autograd.grad(ref, (xu, xi))
    torch.manual_seed(9)
    part = layer_sum_views(xu, xi, adjs, weights, noises, layout="shared", rows=rows)
    for (pu, pi), (wu, wi) in zip(part, whole, strict=True):
        assert torch.equal(pu, wu[ids[0]]) and torch.equal(pi, wi[ids[1]])
    got = objective(part, lambda t, side, w: Rows(t, ids[side]).take(w))
    assert torch.equal(got, ref)
    for g, r in zip(torch.autograd.grad(got, (xu, xi)), ref_grads, strict=True):
        assert torch.equal(g, r)


def test_layer_sum_views_rows_need_the_shared_layout(graph):
    from sslrec.graph.layer_sum import layer_sum_views

    xu, xi = _leaves(0)
    with pytest.raises(ValueError, match="rows need the shared layout"):
        layer_sum_views(xu, xi, [graph[2]], [0.5, 0.5], [None], rows=torch.tensor([0]))


def test_simgcl_loss_at_the_batch_rows_equals_the_whole_encoders(graph, monkeypatch):
    from sslrec.models import SimGCL

    torch.manual_seed(0)
    model = SimGCL(n_users=NU, n_items=NI, adjacency=graph[2], embedding_dim=D)
    _assert_same_with_and_without_rows(model, monkeypatch, seed=4)


@pytest.mark.parametrize("model_name", ["simgcl", "xsimgcl"])
def test_all_node_negatives_keep_the_whole_view(graph, model_name):
    """With ``negatives: all`` view 2 is read whole: no rows, and info_nce refuses Rows."""
    from sslrec.losses.infonce import info_nce
    from sslrec.models import SimGCL, XSimGCL

    cls = SimGCL if model_name == "simgcl" else XSimGCL
    torch.manual_seed(0)
    model = cls(
        n_users=NU,
        n_items=NI,
        adjacency=graph[2],
        embedding_dim=D,
        head=InfoNCEHead(0.2, "all", "sum"),
    )
    calls = []
    monkeypatch_rows = type(model).node_rows
    model.node_rows = lambda *a: calls.append(1) or monkeypatch_rows(model, *a)
    model.loss(BATCH)
    assert calls == []
    held = Rows(torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="needs view2 as a whole"):
        info_nce(held, held, torch.tensor([0, 1]), 0.2, "all")


def test_layer_sum_at_rows_with_a_graph_per_layer(graph):
    """SGL-RW's views: another graph at every layer; the last layer's rows are the last
    graph's, and a zero-weight top layer makes the backward start at a lower graph's rows."""
    from sslrec.augment import RandomWalk

    ut, it, _ = graph
    torch.manual_seed(2)
    adjs = RandomWalk(0.3)(ut, it, NU, NI, 3)
    assert len(adjs) == 3 and not torch.equal(adjs[0].to_dense(), adjs[2].to_dense())
    rows = torch.unique(torch.cat([torch.arange(7), NU + torch.arange(5)]))
    m_users = int((rows < NU).sum())
    ids = (rows[:m_users], rows[m_users:] - NU)

    def held(table, wanted):
        return Rows(table, ids[0 if table.shape[0] == m_users else 1]).take(wanted)

    for weights in ([0.25, 0.25, 0.25, 0.25], [0.4, 0.3, 0.3, 0.0]):
        xu, xi = _leaves(4)
        full = layer_sum(xu, xi, adjs, weights)
        ref = _objective(full[0], [], take)
        ref_grads = torch.autograd.grad(ref, (xu, xi))
        part = layer_sum(xu, xi, adjs, weights, rows=rows)
        got = _objective(part[0], [], held)
        assert torch.equal(got, ref)
        for g, r in zip(torch.autograd.grad(got, (xu, xi)), ref_grads, strict=True):
            assert torch.equal(g, r)


def test_sgl_rw_loss_with_view1_at_the_anchors_equals_the_whole_encoders(graph, monkeypatch):
    from sslrec.augment import RandomWalk

    ut, it, adj = graph
    torch.manual_seed(0)
    model = SGL(
        train_users=ut,
        train_items=it,
        augmenter=RandomWalk(0.2),
        n_users=NU,
        n_items=NI,
        adjacency=adj,
        embedding_dim=D,
        num_layers=3,
    )
    model.start_epoch()
    _assert_same_with_and_without_rows(model, monkeypatch)


def test_layer_sum_ego_rows_are_layer_0_at_the_rows_with_the_tables_gradient(graph):
    """The L2 term read from ``ego_rows`` gives the gradient it gives read from the tables
    (whose F.embedding gradients autograd adds after the encoder's), bit for bit."""
    adj = graph[2]
    rows = torch.unique(torch.cat([torch.arange(7), NU + torch.arange(5)]))
    m_users = int((rows < NU).sum())
    ids = (rows[:m_users], rows[m_users:] - NU)
    users, pos, neg = torch.tensor([0, 3, 3, 6]), torch.tensor([1, 4, 4, 0]), torch.tensor([2, 2])
    weights = [0.25, 0.25, 0.25, 0.25]

    def loss(final, ego, pick_final, pick_ego):
        score = (pick_final(final[0], 0, users) * pick_final(final[1], 1, pos)).sum()
        l2 = pick_ego(ego[0], 0, users).pow(2).sum() + pick_ego(ego[1], 1, pos).pow(2).sum()
        return score + 0.3 * (l2 + pick_ego(ego[1], 1, neg).pow(2).sum())

    xu, xi = _leaves(6)
    whole, _ = layer_sum(xu, xi, [adj] * 3, weights)
    ref = loss(whole, (xu, xi), lambda t, s, w: take(t, w), lambda t, s, w: take(t, w))
    ref_grads = torch.autograd.grad(ref, (xu, xi))
    final, (ego,) = layer_sum(xu, xi, [adj] * 3, weights, rows=rows, ego_rows=True)
    assert torch.equal(ego[0], xu[ids[0]]) and torch.equal(ego[1], xi[ids[1]])

    def held(t, side, w):
        return Rows(t, ids[side]).take(w)

    got = loss(final, ego, held, held)
    assert torch.equal(got, ref)
    for g, r in zip(torch.autograd.grad(got, (xu, xi)), ref_grads, strict=True):
        assert torch.equal(g, r)
    with pytest.raises(ValueError, match="ego_rows needs rows"):
        layer_sum(xu, xi, [adj], [0.5, 0.5], ego_rows=True)


def test_lightgcn_reads_its_l2_rows_through_the_encoder(graph):
    torch.manual_seed(0)
    model = LightGCN(NU, NI, graph[2], embedding_dim=D, num_layers=2)
    rows = model.node_rows(BATCH.users, BATCH.pos, BATCH.neg)
    _, (ego,) = model.encode(rows=rows, ego=True)
    assert isinstance(ego[0], Rows) and isinstance(ego[1], Rows)
    _, (tables,) = model.encode(ego=True)  # every row: the tables themselves
    assert tables[0] is model.user_embedding.weight and tables[1] is model.item_embedding.weight
