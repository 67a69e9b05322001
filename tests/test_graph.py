"""The normalised adjacency and the fast symmetric propagation against dense references."""

import numpy as np
import pytest
import torch

from sslrec.graph import normalized_adjacency, symmetric_spmm
from sslrec.graph.spmm import spmm
from tests.reference import dense_normalized_adjacency, edge_list_propagate, random_graph


@pytest.fixture
def graph():
    u, i = random_graph(7, 9, 0.3, seed=1)
    return u, i, 7, 9


def test_adjacency_hand_case():
    # users 0,1; items 0,1; edges (0,0), (0,1), (1,0). Node order: u0 u1 i0 i1.
    # degrees: u0=2, u1=1, i0=2, i1=1 → Â[u0,i0] = 1/√(2·2) = 0.5, Â[u0,i1] = 1/√(2·1),
    # Â[u1,i0] = 1/√(1·2).
    adj = normalized_adjacency(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0]), 2, 2)
    expected = torch.zeros(4, 4)
    expected[0, 2] = expected[2, 0] = 0.5
    expected[0, 3] = expected[3, 0] = 2**-0.5
    expected[1, 2] = expected[2, 1] = 2**-0.5
    assert adj.layout == torch.sparse_csr
    torch.testing.assert_close(adj.to_dense(), expected)


def test_adjacency_matches_dense_reference_with_isolated_nodes(graph):
    u, i, nu, ni = graph
    u, i = u[u != 3], i[u != 3]  # user 3 isolated
    keep = i != 4
    u, i = u[keep], i[keep]  # item 4 isolated
    adj = normalized_adjacency(torch.from_numpy(u), torch.from_numpy(i), nu, ni).to_dense()
    ref = dense_normalized_adjacency(u, i, nu, ni)
    np.testing.assert_allclose(adj.numpy(), ref, rtol=1e-6, atol=1e-7)
    assert not torch.isnan(adj).any()
    assert (adj[3] == 0).all() and (adj[:, nu + 4] == 0).all()
    torch.testing.assert_close(adj, adj.t())


def test_symmetric_spmm_forward_and_backward_match_dense(graph):
    u, i, nu, ni = graph
    adj = normalized_adjacency(torch.from_numpy(u), torch.from_numpy(i), nu, ni)
    dense = adj.to_dense()
    x = torch.randn(nu + ni, 5, requires_grad=True)
    w = torch.randn(nu + ni, 5)
    y = symmetric_spmm(adj, symmetric_spmm(adj, x))
    (y * w).sum().backward()
    x_ref = x.detach().clone().requires_grad_(True)
    y_ref = dense @ (dense @ x_ref)
    (y_ref * w).sum().backward()
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_fast_spmm_equals_edge_list_reference(graph):
    u, i, nu, ni = graph
    ut, it = torch.from_numpy(u), torch.from_numpy(i)
    adj = normalized_adjacency(ut, it, nu, ni)
    x = torch.randn(nu + ni, 8)
    torch.testing.assert_close(spmm(adj, x), edge_list_propagate(ut, it, nu, x))
    torch.testing.assert_close(spmm(adj.to_sparse_coo(), x), adj.to_dense() @ x)
