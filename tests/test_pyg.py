"""PyG interop: HeteroData ↔ Interactions round trips, errors, the safe file format, and two
independent oracles (PyG's LightGCN and PyG's link-prediction metrics)."""

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.data import HeteroData
from torch_geometric.metrics import LinkPredNDCG, LinkPredPrecision, LinkPredRecall
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.nn.models import LightGCN as PyGLightGCN
from torch_geometric.transforms import RandomLinkSplit

from sslrec.data import DataFormatError, DatasetSpec, load_dataset, split_validation
from sslrec.data.pyg import (
    EDGE_TYPE,
    REV_EDGE_TYPE,
    from_pyg,
    load_pyg,
    read_pyg,
    save_pyg,
    to_pyg,
)
from sslrec.evaluation import metrics
from sslrec.graph import normalized_adjacency
from sslrec.models import LightGCN

RATES = ("user", "rates", "item")


def random_graph(n_users: int = 8, n_items: int = 12, n_edges: int = 40, seed: int = 0):
    """``[2, E]`` unique (user, item) pairs, in random order."""
    g = torch.Generator().manual_seed(seed)
    pairs = torch.stack(
        [
            torch.randint(0, n_users, (n_edges,), generator=g),
            torch.randint(0, n_items, (n_edges,), generator=g),
        ]
    )
    pairs = torch.unique(pairs, dim=1)
    return pairs[:, torch.randperm(pairs.size(1), generator=g)]


def hetero(
    edge_index: torch.Tensor, n_users: int | None = 8, n_items: int | None = 12, rev: bool = True
) -> HeteroData:
    h = HeteroData()
    if n_users is not None:
        h["user"].num_nodes = n_users
    if n_items is not None:
        h["item"].num_nodes = n_items
    h[RATES].edge_index = edge_index
    if rev:
        h["item", "rev_rates", "user"].edge_index = edge_index.flip(0)
    return h


def pair_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.t().tolist()))


def csr_pairs(m: sp.csr_matrix) -> set[tuple[int, int]]:
    coo = m.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


def assert_same(a, b) -> None:
    assert (a.n_users, a.n_items) == (b.n_users, b.n_items)
    for split in ("train", "valid", "test"):
        assert (getattr(a, split) != getattr(b, split)).nnz == 0, split


# -- round trips ---------------------------------------------------------------------------------
def test_edge_index_only_round_trip():
    ei = random_graph()
    data = from_pyg(hetero(ei), name="g")
    assert (data.name, data.n_users, data.n_items) == ("g", 8, 12)
    assert csr_pairs(data.train) == pair_set(ei) and data.valid.nnz == data.test.nnz == 0
    h = to_pyg(data)
    assert h["user"].num_nodes == 8 and h["item"].num_nodes == 12
    store = h[EDGE_TYPE]
    assert pair_set(store.edge_index) == pair_set(ei)
    assert store.edge_index.dtype == torch.int64
    assert torch.equal(h[REV_EDGE_TYPE].edge_index, store.edge_index.flip(0))
    assert torch.equal(store.train_edge_index, store.edge_index)
    assert store.val_edge_index.shape == store.test_edge_index.shape == (2, 0)
    # sorted by user, then item
    keys = store.edge_index[0] * 12 + store.edge_index[1]
    assert torch.equal(keys, keys.sort().values)
    assert_same(from_pyg(h), data)


def test_node_counts_fall_back_to_max_id_plus_one():
    ei = torch.tensor([[0, 3, 1], [2, 0, 5]])
    data = from_pyg(hetero(ei, n_users=None, n_items=None))
    assert (data.n_users, data.n_items) == (4, 6)
    # node counts larger than the ids present are kept (isolated nodes)
    assert from_pyg(hetero(ei, n_users=10, n_items=20)).n_items == 20


def test_node_count_from_features():
    h = hetero(torch.tensor([[0, 1], [1, 2]]), n_users=None, n_items=None)
    h["item"].x = torch.randn(7, 3)
    assert from_pyg(h).n_items == 7


def test_round_trip_with_splits(tiny_dataset_dir, tmp_path):
    data = split_validation(
        load_dataset(DatasetSpec(name="t", path=str(tiny_dataset_dir))), 0.2, seed=0
    )
    assert data.valid.nnz and data.test.nnz
    h = to_pyg(data)
    store = h[EDGE_TYPE]
    assert store.val_edge_index.size(1) == data.valid.nnz
    assert pair_set(store.test_edge_index) == csr_pairs(data.test)
    assert_same(from_pyg(h), data)
    # through the file format and load_dataset (path = the file; or a folder + train_file)
    save_pyg(h, tmp_path / "t.pt")
    assert_same(load_pyg(tmp_path / "t.pt"), data)
    spec = DatasetSpec(name="p", path=str(tmp_path / "t.pt"), format="pyg", train_file="")
    assert_same(load_dataset(spec), data)
    spec = DatasetSpec(name="p", path=str(tmp_path), format="pyg", train_file="t.pt")
    assert_same(load_dataset(spec), data)


def test_hydra_dataset_pyg_config(hydra_conf, tmp_path):
    from omegaconf import OmegaConf

    from tests.conftest import compose_run_config

    ei = random_graph()
    save_pyg(hetero(ei), tmp_path / "g.pt")
    cfg = compose_run_config("dataset=pyg", f"dataset.path={tmp_path / 'g.pt'}")
    data = load_dataset(DatasetSpec(**OmegaConf.to_container(cfg.dataset, resolve=True)))
    assert (data.name, data.n_users, data.n_items) == ("pyg", 8, 12)
    assert csr_pairs(data.train) == pair_set(ei)


@pytest.mark.parametrize("split_labels", [False, True])
def test_random_link_split_output(split_labels):
    ei = random_graph(10, 15, 80, seed=1)
    torch.manual_seed(0)
    transform = RandomLinkSplit(
        num_val=0.1,
        num_test=0.2,
        edge_types=RATES,
        rev_edge_types=("item", "rev_rates", "user"),
        split_labels=split_labels,
    )
    train_data, val_data, test_data = transform(hetero(ei, 10, 15))
    data = from_pyg((train_data, val_data, test_data))
    assert (data.n_users, data.n_items) == (10, 15)
    n = ei.size(1)
    n_val, n_test = int(0.1 * n), int(0.2 * n)
    assert (data.train.nnz, data.valid.nnz, data.test.nnz) == (n - n_val - n_test, n_val, n_test)
    # train = the message-passing edges; valid/test = the positives, negatives dropped
    assert csr_pairs(data.train) == pair_set(train_data[RATES].edge_index)
    if split_labels:
        val_pos = val_data[RATES].pos_edge_label_index
        assert val_data[RATES].neg_edge_label_index.size(1) == n_val  # ignored
    else:
        label = val_data[RATES].edge_label
        assert set(label.tolist()) == {0.0, 1.0}  # 1 = positive, 0 = sampled negative
        val_pos = val_data[RATES].edge_label_index[:, label == 1]
    assert csr_pairs(data.valid) == pair_set(val_pos)
    union = csr_pairs(data.train) | csr_pairs(data.valid) | csr_pairs(data.test)
    assert union == pair_set(ei)
    # and the splits survive to_pyg → from_pyg
    assert_same(from_pyg(to_pyg(data)), data)


def test_random_link_split_with_disjoint_supervision_edges():
    ei = random_graph(10, 15, 80, seed=2)
    torch.manual_seed(0)
    out = RandomLinkSplit(num_val=0.1, num_test=0.1, edge_types=RATES, disjoint_train_ratio=0.3)(
        hetero(ei, 10, 15, rev=False)
    )
    data = from_pyg(out)
    # message-passing edges and supervision edges together are the training interactions
    supervision = out[0][RATES].edge_label_index[:, out[0][RATES].edge_label == 1]
    assert pair_set(supervision).isdisjoint(pair_set(out[0][RATES].edge_index))
    assert csr_pairs(data.train) == pair_set(out[0][RATES].edge_index) | pair_set(supervision)
    assert data.train.nnz + data.valid.nnz + data.test.nnz == ei.size(1)


def test_edge_type_is_found_or_picked():
    h = hetero(random_graph())
    h["user", "follows", "user"].edge_index = torch.tensor([[0], [1]])
    assert from_pyg(h).train.nnz == h[RATES].edge_index.size(1)
    h["user", "clicks", "item"].edge_index = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="several") as err:
        from_pyg(h)
    for et in ("('user', 'rates', 'item')", "('user', 'clicks', 'item')", "'follows'"):
        assert et in str(err.value)
    assert from_pyg(h, edge_type="clicks").train.nnz == 2
    assert from_pyg(h, edge_type=("user", "clicks", "item")).train.nnz == 2
    with pytest.raises(ValueError, match=r"no edge type \('user', 'buys', 'item'\)"):
        from_pyg(h, edge_type="buys")


def test_missing_user_item_edge_type_lists_what_is_there():
    h = HeteroData()
    h["paper", "cites", "paper"].edge_index = torch.tensor([[0], [1]])
    with pytest.raises(ValueError, match=r"no \('user', REL, 'item'\).*\('paper', 'cites'"):
        from_pyg(h)


def test_a_lone_random_link_split_output_is_refused():
    torch.manual_seed(0)
    train_data, _, _ = RandomLinkSplit(edge_types=RATES)(hetero(random_graph(), rev=False))
    with pytest.raises(ValueError, match=r"pass all three: from_pyg\(\(train_data"):
        from_pyg(train_data)
    with pytest.raises(ValueError, match="RandomLinkSplit's"):
        from_pyg((train_data, train_data))


def assert_located(err: DataFormatError, path: str, line: int | None, *expected: str) -> None:
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert str(err).startswith(prefix), str(err)
    assert err.path == path and err.line == line
    for text in expected:
        assert text in str(err), str(err)


EI = "HeteroData['user','rates','item'].edge_index"


@pytest.mark.parametrize(
    "edge_index,path,line,expected",
    [
        (torch.tensor([[0, 1, -1], [0, 1, 2]]), EI, 2, ["expected a non-negative user id, got -1"]),
        (torch.tensor([[0, 1], [0, -4]]), EI, 1, ["expected a non-negative item id, got -4"]),
        (torch.tensor([[0, 8, 1], [0, 1, 2]]), EI, 1, ["user id 8 out of range", "below 8"]),
        (torch.tensor([[0, 1, 2], [0, 1, 12]]), EI, 2, ["item id 12 out of range"]),
        (torch.tensor([[0.0, 1.0], [0.0, 1.0]]), EI, None, ["expected integer node ids"]),
        (torch.tensor([0, 1, 2]), EI, None, ["expected a [2, E] edge tensor, got (3,)"]),
        (torch.zeros(3, 2, dtype=torch.long), EI, None, ["got (3, 2)"]),
    ],
)
def test_bad_edge_index_names_tensor_and_column(edge_index, path, line, expected):
    h = hetero(torch.tensor([[0], [0]]))
    h[RATES].edge_index = edge_index
    with pytest.raises(DataFormatError) as err:
        from_pyg(h)
    assert_located(err.value, path, line, *expected)


def test_split_overlap_names_the_split_and_column():
    h = hetero(torch.tensor([[0, 1, 2], [0, 1, 2]]))
    h[RATES].train_edge_index = torch.tensor([[0, 1, 2], [0, 1, 2]])
    h[RATES].test_edge_index = torch.tensor([[3, 1], [3, 1]])
    with pytest.raises(DataFormatError) as err:
        from_pyg(h)
    assert_located(
        err.value,
        "HeteroData['user','rates','item'].test_edge_index",
        1,
        "(user 1, item 1) is also in",
        "expected the splits to be disjoint",
    )


# -- files: never execute code -------------------------------------------------------------------
class _Payload:
    """Pickles as a call of ``os.system``: loading it with plain pickle would run a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("wrap", ["bare", "in_payload", "as_node_attr"])
def test_malicious_pickle_is_refused(tmp_path, wrap):
    marker = tmp_path / "PWNED"
    evil = _Payload(marker)
    obj = {
        "bare": evil,
        "in_payload": {
            "format": "sslrec-pyg",
            "version": 1,
            "nodes": {"user": {"x": evil}},
            "edges": [],
        },
        "as_node_attr": hetero(random_graph()),
    }[wrap]
    if wrap == "as_node_attr":
        obj["user"].evil = evil
    path = tmp_path / "evil.pt"
    torch.save(obj, path)
    with pytest.raises(DataFormatError, match=r"refused: .*\(it names posix.system\)") as err:
        read_pyg(path)
    assert err.value.path == str(path) and err.value.line is None
    spec = DatasetSpec(name="p", path=str(path), format="pyg", train_file="")
    with pytest.raises(DataFormatError, match="refused"):
        load_dataset(spec)
    assert not marker.exists()


def test_save_pyg_needs_no_pyg_class_to_load(tmp_path):
    h = to_pyg(from_pyg(hetero(random_graph())))
    h["item"].x = torch.randn(12, 4)
    h["user"].label = "u"
    save_pyg(h, tmp_path / "g.pt")
    raw = torch.load(tmp_path / "g.pt", weights_only=True)  # no allowlist at all
    assert raw["format"] == "sslrec-pyg" and raw["version"] == 1
    assert raw["nodes"]["user"] == {"num_nodes": 8, "label": "u"}
    assert [e["type"] for e in raw["edges"]] == [list(EDGE_TYPE), list(REV_EDGE_TYPE)]
    back = read_pyg(tmp_path / "g.pt")
    assert torch.equal(back["item"].x, h["item"].x)
    assert torch.equal(back[EDGE_TYPE].val_edge_index, h[EDGE_TYPE].val_edge_index)


def test_torch_saved_hetero_data_loads(tmp_path):
    ei = random_graph()
    torch.save(hetero(ei), tmp_path / "h.pt")
    assert csr_pairs(load_pyg(tmp_path / "h.pt").train) == pair_set(ei)
    torch.save(tuple(RandomLinkSplit(edge_types=RATES)(hetero(ei, rev=False))), tmp_path / "r.pt")
    # RandomLinkSplit leaves a defaultdict cache in its outputs' storages, which weights_only
    # loading cannot rebuild: refused with the class it names; save_pyg is the way
    with pytest.raises(DataFormatError, match="it names torch_geometric"):
        read_pyg(tmp_path / "r.pt")


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_pyg(tmp_path / "absent.pt")
    (tmp_path / "text.pt").write_text("user item\n")
    with pytest.raises(DataFormatError, match="refused"):
        read_pyg(tmp_path / "text.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DataFormatError, match="expected a sslrec-pyg dict or a HeteroData"):
        read_pyg(tmp_path / "list.pt")
    torch.save({"format": "sslrec-pyg", "version": 99}, tmp_path / "v.pt")
    with pytest.raises(DataFormatError, match="expected sslrec-pyg version 1, got 99"):
        read_pyg(tmp_path / "v.pt")
    save_pyg(hetero(random_graph()), tmp_path / "g.pt")
    with pytest.raises(DataFormatError, match="expected 9 users .* the file has 8"):
        load_pyg(tmp_path / "g.pt", n_users=9)
    h = hetero(random_graph())
    h["user"].names = ["a", "b"]
    with pytest.raises(TypeError, match=r"\['user'\].names: save_pyg stores tensors"):
        save_pyg(h, tmp_path / "bad.pt")


# -- oracle 1: PyG's LightGCN ------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lightgcn_matches_pyg(seed):
    n_users, n_items, d, k = 9, 13, 8, 3
    ei = random_graph(n_users - 1, n_items - 1, 45, seed)  # the last user and item are isolated
    users, items = ei[0], ei[1]
    adj = normalized_adjacency(users, items, n_users, n_items)
    torch.manual_seed(seed)
    ours = LightGCN(n_users=n_users, n_items=n_items, adjacency=adj, embedding_dim=d, num_layers=k)
    # PyG: one homogeneous graph of U+I nodes (items after users) with both edge directions
    homo = torch.cat(
        [torch.stack([users, items + n_users]), torch.stack([items + n_users, users])], dim=1
    )
    # normalisation: gcn_norm without self loops is D^-1/2 A D^-1/2, as sslrec's
    index, weight = gcn_norm(homo, None, n_users + n_items, add_self_loops=False)
    pyg_dense = torch.sparse_coo_tensor(index, weight, (n_users + n_items,) * 2).to_dense()
    torch.testing.assert_close(adj.to_dense(), pyg_dense)
    theirs = PyGLightGCN(n_users + n_items, d, k, alpha=ours.weights.clone())
    with torch.no_grad():
        theirs.embedding.weight.copy_(
            torch.cat([ours.user_embedding.weight, ours.item_embedding.weight])
        )
        user, item = ours.propagate()
        expected = theirs.get_embedding(homo)
    torch.testing.assert_close(user, expected[:n_users], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(item, expected[n_users:], rtol=1e-5, atol=1e-6)
    # isolated nodes keep only their layer-0 share
    torch.testing.assert_close(user[-1], ours.user_embedding.weight[-1] * ours.weights[0])
    # the layer weights are LightGCN's uniform mean, PyG's default alpha
    torch.testing.assert_close(ours.weights, torch.full((k + 1,), 1 / (k + 1)))


# -- oracle 2: PyG's link-prediction metrics -----------------------------------------------------
def random_rankings(n_users: int = 60, n_items: int = 50, k_max: int = 20, seed: int = 0):
    """Top-``k_max`` rankings ``[n, k_max]`` (distinct items) and relevant sets, ``|T|`` 1..25."""
    rng = np.random.default_rng(seed)
    ranking = np.stack([rng.permutation(n_items)[:k_max] for _ in range(n_users)])
    relevant = [
        rng.choice(n_items, size=int(rng.integers(1, 26)), replace=False) for _ in range(n_users)
    ]
    return torch.from_numpy(ranking), relevant


def sslrec_inputs(ranking: torch.Tensor, relevant) -> tuple[torch.Tensor, torch.Tensor]:
    """sslrec's ``hits`` ``[n, k_max]`` and ``n_relevant`` ``[n]``."""
    hits = torch.stack(
        [torch.from_numpy(np.isin(r.numpy(), t)) for r, t in zip(ranking, relevant, strict=True)]
    ).float()
    return hits, torch.tensor([len(t) for t in relevant], dtype=torch.float32)


def label_index(relevant) -> torch.Tensor:
    """PyG's ground truth: ``[2, Σ|T|]`` (row of the user in the batch, item)."""
    rows = np.concatenate([np.full(len(t), u) for u, t in enumerate(relevant)])
    return torch.from_numpy(np.stack([rows, np.concatenate(relevant)]))


PAIRS = [
    (metrics.recall, LinkPredRecall),
    (metrics.ndcg, LinkPredNDCG),
    (metrics.precision, LinkPredPrecision),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [1, 5, 10, 20])
@pytest.mark.parametrize("ours,theirs", PAIRS, ids=["recall", "ndcg", "precision"])
def test_metrics_match_pyg(ours, theirs, k, seed):
    # Conventions compared: Recall = hits/|T|, Precision = hits/k, NDCG with binary relevance
    # and IDCG over min(|T|, k) (PyG: idcg[label_count.clamp(max=k)]) agree; |T| up to 25 > k
    # exercises the clamp. PyG averages over the users with >= 1 ground-truth item.
    ranking, relevant = random_rankings(seed=seed)
    hits, n_rel = sslrec_inputs(ranking, relevant)
    metric = theirs(k)
    metric.update(ranking, label_index(relevant))
    expected = float(metric.compute())
    assert float(ours(hits, n_rel, k).mean()) == pytest.approx(expected, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=["recall", "ndcg", "precision"])
def test_metrics_users_without_ground_truth(ours, theirs):
    # Difference: PyG accepts users without ground truth (they add 0 and are not counted);
    # sslrec's functions require |T| >= 1 (its evaluator only ranks users with a held-out item,
    # Interactions.eval_users). Compared where both apply: PyG with extra empty users equals
    # sslrec over the users that have items.
    ranking, relevant = random_rankings(n_users=30, seed=3)
    hits, n_rel = sslrec_inputs(ranking, relevant)
    empty = [np.zeros(0, dtype=np.int64)] * 5
    metric = theirs(10)
    metric.update(torch.cat([ranking, ranking[:5]]), label_index(relevant + empty))
    assert float(ours(hits, n_rel, 10).mean()) == pytest.approx(float(metric.compute()), rel=1e-6)
