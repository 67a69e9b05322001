"""Data layer: readers, input errors, split checks, the validation split and the BPR sampler."""

import logging

import numpy as np
import pytest
import scipy.sparse as sp

from sslrec.data import (
    BPRSampler,
    DataFormatError,
    DatasetSpec,
    IdMap,
    build_interactions,
    load_dataset,
    read_adjacency_list,
    read_triples,
    split_validation,
)
from tests.conftest import SHARED_DATA
from tests.reference import triples


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


# -- readers ---------------------------------------------------------------------------------
def test_adjacency_list_parses_pairs_and_lines(tmp_path):
    p = write(tmp_path, "train.txt", "0 3 1\n\n2 5\n4\n")
    pairs = read_adjacency_list(p)
    assert pairs.users.tolist() == [0, 0, 2]
    assert pairs.items.tolist() == [3, 1, 5]
    assert pairs.lines.tolist() == [1, 1, 3]


@pytest.mark.parametrize(
    "text,line,expected",
    [
        ("0 1 2\n1 x 3\n", 2, "non-negative integer item id, got 'x'"),
        ("0 1\n1 2\n-2 3\n", 3, "non-negative integer user id, got -2"),
        ("0 1\n1 2.5\n", 2, "got '2.5'"),
    ],
)
def test_adjacency_list_bad_ids_name_file_and_line(tmp_path, text, line, expected):
    p = write(tmp_path, "train.txt", text)
    with pytest.raises(DataFormatError) as err:
        read_adjacency_list(p)
    assert str(err.value).startswith(f"{p}:{line}: ")
    assert expected in str(err.value)


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_empty_files_are_errors(tmp_path, text):
    p = write(tmp_path, "test.txt", text)
    with pytest.raises(DataFormatError, match=f"{p}: file is empty"):
        read_adjacency_list(p)
    with pytest.raises(DataFormatError, match="empty"):
        read_triples(p, IdMap())


def test_users_without_items_only_is_an_error(tmp_path):
    p = write(tmp_path, "train.txt", "0\n1\n")
    with pytest.raises(DataFormatError, match="no interactions"):
        read_adjacency_list(p)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_adjacency_list(tmp_path / "nope.txt")


def test_triples_separators_remapping_and_extra_columns(tmp_path):
    ids = IdMap()
    a = read_triples(write(tmp_path, "a.csv", "u1,i9,4.5,100\nu2\ti7\t3\t200\nu1 i7 1 300\n"), ids)
    b = read_triples(write(tmp_path, "b.csv", "u3,i9,5,400\n"), ids)
    assert a.users.tolist() == [0, 1, 0] and a.items.tolist() == [0, 1, 1]
    assert b.users.tolist() == [2] and b.items.tolist() == [0]
    assert ids.raw_users() == ["u1", "u2", "u3"] and ids.raw_items() == ["i9", "i7"]
    np.testing.assert_allclose(a.ratings, [4.5, 3, 1])
    np.testing.assert_allclose(a.timestamps, [100, 200, 300])


def test_triples_header_and_errors(tmp_path):
    pairs = read_triples(write(tmp_path, "h.csv", "user,item\n7,8\n"), IdMap(), header=True)
    assert len(pairs.users) == 1 and pairs.lines.tolist() == [2]
    with pytest.raises(DataFormatError, match=r"h2.csv:2: expected 'user item \[rating\]"):
        read_triples(write(tmp_path, "h2.csv", "1,2\n3\n"), IdMap())
    with pytest.raises(DataFormatError, match=r"h3.csv:2: expected 3 columns"):
        read_triples(write(tmp_path, "h3.csv", "1,2,3\n3,4\n"), IdMap())
    with pytest.raises(DataFormatError, match=r"h4.csv:1: expected a numeric rating, got 'good'"):
        read_triples(write(tmp_path, "h4.csv", "1,2,good\n"), IdMap())


# -- assembling splits -----------------------------------------------------------------------
def _pairs(tmp_path, name, text):
    return read_adjacency_list(write(tmp_path, name, text))


def test_out_of_range_ids_with_known_sizes(tmp_path):
    train = _pairs(tmp_path, "train.txt", "0 1\n1 0\n")
    test = _pairs(tmp_path, "test.txt", "0 0\n1 5\n")
    with pytest.raises(DataFormatError, match=r"test.txt:2: item id 5 out of range"):
        build_interactions("t", train, test, n_users=2, n_items=3)
    test = _pairs(tmp_path, "test2.txt", "0 0\n4 1\n")
    with pytest.raises(DataFormatError, match=r"test2.txt:2: user id 4 out of range"):
        build_interactions("t", train, test, n_users=2, n_items=3)


def test_sizes_inferred_as_max_id_plus_one(tmp_path):
    data = build_interactions(
        "t", _pairs(tmp_path, "a.txt", "0 1\n1 0\n"), _pairs(tmp_path, "b.txt", "3 6\n")
    )
    assert (data.n_users, data.n_items) == (4, 7)


def test_duplicates_removed_with_warning(tmp_path, caplog):
    train = _pairs(tmp_path, "train.txt", "0 1 2 1\n1 0\n1 0\n")
    with caplog.at_level(logging.WARNING):
        data = build_interactions("t", train, _pairs(tmp_path, "test.txt", "0 0\n"))
    assert data.train.nnz == 3
    assert "2 duplicate (user, item) pairs removed (first at line 1)" in caplog.text


def test_test_pair_in_train_is_an_error(tmp_path):
    train = _pairs(tmp_path, "train.txt", "0 1 2\n1 0\n")
    test = _pairs(tmp_path, "test.txt", "0 3\n1 0\n")
    with pytest.raises(DataFormatError, match=r"test.txt:2: pair \(user 1, item 0\) is also in"):
        build_interactions("t", train, test)


def test_valid_overlaps_are_errors(tmp_path):
    train = _pairs(tmp_path, "train.txt", "0 1\n")
    valid = _pairs(tmp_path, "valid.txt", "0 2\n")
    test = _pairs(tmp_path, "test.txt", "0 2\n")
    with pytest.raises(DataFormatError, match=r"test.txt:1: .* also in .*valid.txt"):
        build_interactions("t", train, test, valid)


def test_cold_test_users_reported_and_not_evaluated(tmp_path, caplog):
    train = _pairs(tmp_path, "train.txt", "0 1\n1 2\n")
    test = _pairs(tmp_path, "test.txt", "0 2\n2 1\n3 0\n")
    with caplog.at_level(logging.WARNING):
        data = build_interactions("t", train, test)
    assert "2 test users have no training interactions" in caplog.text
    assert data.eval_users("test").tolist() == [0]


# -- validation split ------------------------------------------------------------------------
def test_split_validation_counts_and_disjointness(lastfm):
    full = load_dataset(DatasetSpec(name="lastfm", n_users=1892, n_items=4489))
    deg = np.diff(full.train.indptr)
    expected = np.where(deg >= 2, np.minimum(np.floor(0.1 * deg + 0.5), deg - 1), 0)
    np.testing.assert_array_equal(np.diff(lastfm.valid.indptr), expected)
    assert lastfm.train.multiply(lastfm.valid).nnz == 0
    assert (lastfm.train + lastfm.valid != full.train).nnz == 0
    assert (lastfm.test != full.test).nnz == 0
    assert (np.diff(lastfm.train.indptr) >= (deg > 0)).all()  # nobody loses all train items


def test_split_validation_is_seeded():
    full = load_dataset(DatasetSpec(name="lastfm"))
    a, b, c = (split_validation(full, 0.1, s) for s in (0, 0, 1))
    assert (a.valid != b.valid).nnz == 0
    assert (a.valid != c.valid).nnz > 0
    with pytest.raises(ValueError):
        split_validation(full, 1.5, 0)


def test_bundled_lastfm_statistics(lastfm):
    full = load_dataset(DatasetSpec(name="lastfm", n_users=1892, n_items=4489))
    assert full.stats() | {"density": 0} == {
        "users": 1892,
        "items": 4489,
        "interactions": 52668,
        "train": 42135,
        "valid": 0,
        "test": 10533,
        "density": 0,
    }


def test_custom_folder_with_valid_file(tmp_path):
    write(tmp_path, "train.txt", "0 1 2\n1 0 3\n")
    write(tmp_path, "valid.txt", "0 3\n")
    write(tmp_path, "test.txt", "1 2\n")
    data = load_dataset(DatasetSpec(name="custom", path=str(tmp_path)))
    assert (data.train.nnz, data.valid.nnz, data.test.nnz) == (4, 1, 1)


def test_missing_dataset_folder_names_places_tried(tmp_path):
    with pytest.raises(FileNotFoundError, match="SSLREC_DATA_ROOT"):
        load_dataset(DatasetSpec(name="x", path=str(tmp_path / "absent")))


@pytest.mark.skipif(not (SHARED_DATA / "gowalla").is_dir(), reason="shared data not present")
def test_gowalla_loads_with_published_counts():
    data = load_dataset(
        DatasetSpec(name="gowalla", path=str(SHARED_DATA / "gowalla"), n_users=29858, n_items=40981)
    )
    assert (data.train.nnz, data.test.nnz) == (810128, 217242)


# -- sampler ---------------------------------------------------------------------------------
@pytest.fixture
def dense_train():
    rng = np.random.default_rng(0)
    return sp.csr_matrix((rng.random((30, 12)) < 0.7).astype(np.float32))


@pytest.mark.parametrize("protocol", ["interaction", "user_uniform"])
def test_negatives_are_never_train_positives(dense_train, protocol):
    sampler = BPRSampler(dense_train, 64, protocol, seed=1)
    dense = dense_train.toarray() > 0
    for _ in range(5):
        for u, p, n in triples(sampler):
            assert dense[u.numpy(), p.numpy()].all()
            assert not dense[u.numpy(), n.numpy()].any()


def test_interaction_protocol_visits_each_pair_once(dense_train):
    sampler = BPRSampler(dense_train, 50, "interaction", seed=2)
    batches = list(triples(sampler))
    assert [len(b[0]) for b in batches[:-1]] == [50] * (len(batches) - 1)
    assert len(batches) == len(sampler)
    pairs = sorted(
        zip(*(np.concatenate([b[k].numpy() for b in batches]) for k in (0, 1)), strict=True)
    )
    coo = dense_train.tocoo()
    assert pairs == sorted(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


def test_user_uniform_draws_users_uniformly():
    train = sp.csr_matrix(np.kron(np.eye(4), np.ones((1, 5))) * [[1], [1], [1], [0]])
    train.eliminate_zeros()  # user 3 has no items
    train = sp.csr_matrix(np.vstack([train.toarray(), np.zeros((1, 20))]))
    counts = np.zeros(5)
    sampler = BPRSampler(train, 1000, "user_uniform", seed=3)
    for _ in range(2000):
        users, pos = sampler.epoch_pairs()
        counts += np.bincount(users, minlength=5)
        assert (train.toarray()[users, pos] > 0).all()
    assert counts[3] == 0 and counts[4] == 0
    share = counts[:3] / counts.sum()
    # 30,000 draws: the std of each share is √(⅓·⅔/30000) ≈ 0.0027, so 0.01 is ~3.7σ
    np.testing.assert_allclose(share, 1 / 3, atol=0.01)


def test_sampler_is_seeded(dense_train):
    def first(seed):
        return [t.numpy().copy() for t in next(triples(BPRSampler(dense_train, 40, seed=seed)))]

    a, b, c = first(5), first(5), first(6)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert any((x != y).any() for x, y in zip(a, c, strict=True))


def test_user_with_every_item_is_rejected():
    with pytest.raises(ValueError, match="user 1 interacted with every item"):
        BPRSampler(sp.csr_matrix(np.array([[1, 0], [1, 1]], dtype=np.float32)), 4)


@pytest.mark.skipif(not (SHARED_DATA / "yelp2018").is_dir(), reason="shared data not present")
def test_yelp2018_loads_with_published_counts():
    data = load_dataset(
        DatasetSpec(
            name="yelp2018", path=str(SHARED_DATA / "yelp2018"), n_users=31668, n_items=38048
        )
    )
    assert (data.train.nnz, data.test.nnz) == (1237259, 324147)
    assert len(data.eval_users("test")) == 31668
