"""Assembling splits: range checks, dedupe, disjointness, cold users, validation split, loading."""

import logging
import math
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import sslrec.data.dataset as dataset_module
from sslrec.data import (
    DataFormatError,
    DatasetSpec,
    IdMap,
    Interactions,
    build_interactions,
    load_dataset,
    read_adjacency_list,
    read_triples,
    split_validation,
)
from sslrec.data.interactions import SPARSE_SLACK, pairs_to_csr
from sslrec.data.readers import ID_LIMIT

LOGGER = "sslrec.data.interactions"
SHARED_DATA = Path(
    os.environ.get("SSLREC_DATA_ROOT", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def adj(folder: Path, name: str, text: str):
    return read_adjacency_list(write(folder, name, text))


def pair_set(mat: sp.csr_matrix) -> set[tuple[int, int]]:
    coo = mat.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


def located(err: pytest.ExceptionInfo, path: Path, line: int) -> str:
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}: "), msg
    assert err.value.path == str(path) and err.value.line == line
    return msg


# -- range checks ----------------------------------------------------------------------------
def test_item_out_of_range_names_file_and_line(tmp_path):
    train = adj(tmp_path, "train.txt", "0 1\n1 0\n")
    test = adj(tmp_path, "test.txt", "0 0\n\n1 2 5\n")
    with pytest.raises(DataFormatError) as err:
        build_interactions("t", train, test, n_users=2, n_items=3)
    msg = located(err, tmp_path / "test.txt", 3)
    assert "item id 5 out of range; expected an id below 3" in msg
    assert "(the dataset has 3 items)" in msg


def test_user_out_of_range_names_file_and_line(tmp_path):
    train = adj(tmp_path, "train.txt", "0 1\n1 0\n2 2\n")
    test = adj(tmp_path, "test.txt", "0 0\n")
    with pytest.raises(DataFormatError) as err:
        build_interactions("t", train, test, n_users=2, n_items=3)
    msg = located(err, tmp_path / "train.txt", 3)
    assert "user id 2 out of range; expected an id below 2" in msg


def test_valid_ids_are_range_checked_too(tmp_path):
    train = adj(tmp_path, "train.txt", "0 1\n")
    valid = adj(tmp_path, "valid.txt", "1 0\n0 3\n")
    test = adj(tmp_path, "test.txt", "1 1\n")
    with pytest.raises(DataFormatError) as err:
        build_interactions("t", train, test, valid, n_users=2, n_items=3)
    assert "item id 3 out of range" in located(err, tmp_path / "valid.txt", 2)


def test_ids_just_below_the_sizes_are_accepted(tmp_path):
    train = adj(tmp_path, "train.txt", "0 0\n4 6\n")
    test = adj(tmp_path, "test.txt", "4 0\n")
    data = build_interactions("t", train, test, n_users=5, n_items=7)
    assert data.train.shape == data.test.shape == data.valid.shape == (5, 7)


def test_explicit_sizes_larger_than_ids_are_kept(tmp_path):
    data = build_interactions(
        "t", adj(tmp_path, "a.txt", "0 1\n"), adj(tmp_path, "b.txt", "1 0\n"), None, 10, 20
    )
    assert (data.n_users, data.n_items) == (10, 20)
    assert data.stats()["density"] == pytest.approx(2 / 200)


# -- sizes -----------------------------------------------------------------------------------
def test_sizes_inferred_as_max_id_plus_one_over_all_files(tmp_path):
    train = adj(tmp_path, "train.txt", "0 1\n1 0\n")
    valid = adj(tmp_path, "valid.txt", "5 2\n")
    test = adj(tmp_path, "test.txt", "3 8\n")
    data = build_interactions("t", train, test, valid)
    assert (data.n_users, data.n_items) == (6, 9)
    for mat in (data.train, data.valid, data.test):
        assert mat.shape == (6, 9)


def test_matrices_are_binary_sorted_float32_csr(tmp_path):
    train = adj(tmp_path, "train.txt", "0 3 1 2\n1 0\n")
    data = build_interactions("t", train, adj(tmp_path, "test.txt", "1 2\n"))
    for mat in (data.train, data.valid, data.test):
        assert isinstance(mat, sp.csr_matrix) and mat.dtype == np.float32
        assert mat.has_sorted_indices
        assert (mat.data == 1.0).all()
    assert pair_set(data.train) == {(0, 3), (0, 1), (0, 2), (1, 0)}
    assert pair_set(data.test) == {(1, 2)}
    assert data.valid.nnz == 0
    assert data.n_train == 4
    users, items = data.train_pairs()
    assert users.dtype == items.dtype == np.int64
    assert set(zip(users.tolist(), items.tolist(), strict=True)) == pair_set(data.train)


# -- duplicates ------------------------------------------------------------------------------
def test_duplicates_deduplicated_with_warning(tmp_path, caplog):
    train = adj(tmp_path, "train.txt", "0 1 2\n1 0\n0 2 1 3\n1 0\n")
    test = adj(tmp_path, "test.txt", "0 0\n")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        data = build_interactions("t", train, test)
    assert data.train.nnz == 4  # (0,1) (0,2) (0,3) (1,0)
    assert pair_set(data.train) == {(0, 1), (0, 2), (0, 3), (1, 0)}
    assert (data.train.data == 1.0).all()  # counted once, not summed to 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert str(tmp_path / "train.txt") in msg
    assert "3 duplicate (user, item) pairs removed (first at line 3)" in msg


def test_duplicates_in_test_deduplicated_with_warning(tmp_path, caplog):
    train = adj(tmp_path, "train.txt", "0 1\n1 0\n")
    test = adj(tmp_path, "test.txt", "0 2 2\n1 2\n")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        data = build_interactions("t", train, test)
    assert data.test.nnz == 2 and (data.test.data == 1.0).all()
    assert f"{tmp_path / 'test.txt'}: 1 duplicate (user, item) pairs removed" in caplog.text


def test_no_warning_without_duplicates_or_cold_users(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        train = adj(tmp_path, "a.txt", "0 1 2\n1 0\n")
        build_interactions("t", train, adj(tmp_path, "b.txt", "1 1\n"))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- split overlaps --------------------------------------------------------------------------
def test_test_pair_in_train_names_test_file_and_line(tmp_path):
    train = adj(tmp_path, "train.txt", "0 1 2\n1 0\n")
    test = adj(tmp_path, "test.txt", "0 3\n\n1 4 0\n")
    with pytest.raises(DataFormatError) as err:
        build_interactions("t", train, test)
    msg = located(err, tmp_path / "test.txt", 3)
    assert f"pair (user 1, item 0) is also in {tmp_path / 'train.txt'}" in msg
    assert "expected the splits to be disjoint" in msg


def test_valid_pair_in_train_is_an_error(tmp_path):
    train = adj(tmp_path, "train.txt", "0 1 2\n")
    valid = adj(tmp_path, "valid.txt", "0 3\n0 2\n")
    test = adj(tmp_path, "test.txt", "0 4\n")
    with pytest.raises(DataFormatError) as err:
        build_interactions("t", train, test, valid)
    msg = located(err, tmp_path / "valid.txt", 2)
    assert f"pair (user 0, item 2) is also in {tmp_path / 'train.txt'}" in msg


def test_valid_test_overlap_is_an_error(tmp_path):
    train = adj(tmp_path, "train.txt", "0 1\n1 1\n")
    valid = adj(tmp_path, "valid.txt", "0 2\n1 3\n")
    test = adj(tmp_path, "test.txt", "0 4\n1 3\n")
    with pytest.raises(DataFormatError) as err:
        build_interactions("t", train, test, valid)
    msg = located(err, tmp_path / "test.txt", 2)
    assert f"pair (user 1, item 3) is also in {tmp_path / 'valid.txt'}" in msg


def test_same_item_for_different_users_is_not_an_overlap(tmp_path):
    train = adj(tmp_path, "train.txt", "0 1\n1 2\n")
    valid = adj(tmp_path, "valid.txt", "1 1\n")
    test = adj(tmp_path, "test.txt", "0 2\n")
    data = build_interactions("t", train, test, valid)
    assert (data.train.nnz, data.valid.nnz, data.test.nnz) == (2, 1, 1)


# -- cold users ------------------------------------------------------------------------------
def test_cold_test_users_warned_and_excluded(tmp_path, caplog):
    train = adj(tmp_path, "train.txt", "0 1\n1 2\n4 0\n")
    test = adj(tmp_path, "test.txt", "0 2\n2 1\n3 0\n4 1\n")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        data = build_interactions("mini", train, test)
    assert "mini: 2 test users have no training interactions" in caplog.text
    assert "excluded from evaluation" in caplog.text
    users = data.eval_users("test")
    assert users.tolist() == [0, 4] and users.dtype == np.int64


def test_eval_users_needs_items_in_the_split(tmp_path):
    train = adj(tmp_path, "train.txt", "0 1\n1 2\n2 3\n")
    valid = adj(tmp_path, "valid.txt", "2 0\n")
    test = adj(tmp_path, "test.txt", "1 0\n0 2\n")
    data = build_interactions("t", train, test, valid)
    assert data.eval_users("test").tolist() == [0, 1]
    assert data.eval_users("valid").tolist() == [2]


def test_stats_and_describe(tmp_path):
    train = adj(tmp_path, "train.txt", "0 1 2\n1 0\n")
    valid = adj(tmp_path, "valid.txt", "0 0\n")
    test = adj(tmp_path, "test.txt", "1 2\n")
    data = build_interactions("tiny", train, test, valid)
    assert data.stats() == {
        "users": 2,
        "items": 3,
        "interactions": 5,
        "train": 3,
        "valid": 1,
        "test": 1,
        "density": pytest.approx(5 / 6),
    }
    assert data.describe().startswith("dataset tiny: 2 users, 3 items, 5 interactions")


# -- validation split ------------------------------------------------------------------------
def random_interactions(seed: int = 0, n_users: int = 120, n_items: int = 80) -> Interactions:
    """Degrees 0..40 (incl. 0, 1 and 2) so that rounding and the keep-one rule both matter."""
    rng = np.random.default_rng(seed)
    train_rows, test_rows = [], []
    for u in range(n_users):
        deg = [0, 1, 2, 3, 4, 5, 14, 15, 25, 40][u % 10] if u < 100 else int(rng.integers(0, 41))
        items = rng.choice(n_items, size=deg + 2, replace=False)
        train_rows.append(items[:deg])
        test_rows.append(items[deg:])
    train = sp.csr_matrix(
        (
            np.ones(sum(map(len, train_rows)), np.float32),
            (
                np.repeat(np.arange(n_users), [len(r) for r in train_rows]),
                np.concatenate(train_rows),
            ),
        ),
        shape=(n_users, n_items),
    )
    test = sp.csr_matrix(
        (
            np.ones(2 * n_users, np.float32),
            (np.repeat(np.arange(n_users), 2), np.concatenate(test_rows)),
        ),
        shape=(n_users, n_items),
    )
    train.sort_indices()
    test.sort_indices()
    empty = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    return Interactions("rand", n_users, n_items, train, empty, test)


def expected_valid_counts(deg: np.ndarray, fraction: float) -> np.ndarray:
    out = []
    for n in deg.tolist():
        k = math.floor(fraction * n + 0.5)
        out.append(0 if n < 2 else min(k, n - 1))
    return np.asarray(out)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_split_validation_counts_per_user(fraction):
    data = random_interactions()
    deg = np.diff(data.train.indptr)
    split = split_validation(data, fraction, seed=0)
    np.testing.assert_array_equal(np.diff(split.valid.indptr), expected_valid_counts(deg, fraction))
    np.testing.assert_array_equal(
        np.diff(split.train.indptr), deg - expected_valid_counts(deg, fraction)
    )


def test_split_validation_known_counts_at_ten_percent():
    data = random_interactions()
    split = split_validation(data, 0.1, seed=0)
    valid = np.diff(split.valid.indptr)
    # degrees [0, 1, 2, 3, 4, 5, 14, 15, 25, 40] → floor(0.1·n + 0.5)
    assert valid[:10].tolist() == [0, 0, 0, 0, 0, 1, 1, 2, 3, 4]


def test_split_validation_keeps_at_least_one_train_item():
    data = random_interactions()
    deg = np.diff(data.train.indptr)
    split = split_validation(data, 0.9, seed=3)
    train_deg = np.diff(split.train.indptr)
    assert (train_deg[deg >= 1] >= 1).all()
    assert (train_deg[deg == 2] == 1).all()  # floor(1.8 + 0.5) = 2 clipped to 1
    assert (np.diff(split.valid.indptr)[deg == 1] == 0).all()  # single item stays in train


def test_split_validation_partitions_train_and_leaves_test_alone():
    data = random_interactions(seed=1)
    before_train, before_test = data.train.copy(), data.test.copy()
    split = split_validation(data, 0.1, seed=7)
    train, valid = pair_set(split.train), pair_set(split.valid)
    assert not train & valid
    assert train | valid == pair_set(data.train)
    assert pair_set(split.test) == pair_set(data.test)
    assert (split.test != before_test).nnz == 0
    # the input is not modified
    assert (data.train != before_train).nnz == 0 and data.valid.nnz == 0
    assert (split.n_users, split.n_items, split.name) == (data.n_users, data.n_items, data.name)
    for mat in (split.train, split.valid):
        assert mat.shape == data.train.shape and mat.has_sorted_indices
        assert (mat.data == 1.0).all()


def test_split_validation_is_seeded():
    data = random_interactions()
    a, b, c = (split_validation(data, 0.1, seed) for seed in (0, 0, 1))
    assert pair_set(a.valid) == pair_set(b.valid)
    assert pair_set(a.train) == pair_set(b.train)
    assert pair_set(a.valid) != pair_set(c.valid)
    assert a.valid.nnz == c.valid.nnz  # same counts, different items


def test_split_validation_draws_items_uniformly():
    """Over many seeds each of a user's 10 items lands in valid about equally often."""
    train = sp.csr_matrix(np.array([[1] * 10 + [0]], dtype=np.float32))
    train.eliminate_zeros()
    empty = sp.csr_matrix((1, 11), dtype=np.float32)
    data = Interactions("one", 1, 11, train, empty, empty.copy())
    counts = np.zeros(11)
    for seed in range(2000):
        counts += split_validation(data, 0.1, seed).valid.toarray()[0]
    assert counts[10] == 0 and counts.sum() == 2000
    # each of the 10 items: binomial(2000, 0.1), mean 200, std ≈ 13.4; 60 is ~4.5σ
    np.testing.assert_allclose(counts[:10], 200, atol=60)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_validation_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="valid fraction must be in"):
        split_validation(random_interactions(), fraction, 0)


def test_split_validation_refuses_existing_valid_split():
    data = split_validation(random_interactions(), 0.2, 0)
    with pytest.raises(ValueError, match="already has a validation split"):
        split_validation(data, 0.2, 0)


# -- bundled lastfm --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lastfm_full():
    return load_dataset(DatasetSpec(name="lastfm", n_users=1892, n_items=4489))


def test_bundled_lastfm_counts(lastfm_full):
    data = lastfm_full
    assert (data.n_users, data.n_items) == (1892, 4489)
    assert (data.train.nnz, data.test.nnz, data.valid.nnz) == (42135, 10533, 0)
    assert data.stats()["interactions"] == 52668
    assert data.train.shape == data.test.shape == (1892, 4489)
    assert data.id_map is None
    assert not pair_set(data.train) & pair_set(data.test)


def test_bundled_lastfm_inferred_sizes_match(lastfm_full):
    data = load_dataset(DatasetSpec(name="lastfm"))
    assert (data.n_users, data.n_items) == (1892, 4489)
    assert (data.train != lastfm_full.train).nnz == 0


def test_bundled_lastfm_validation_split(lastfm_full):
    deg = np.diff(lastfm_full.train.indptr)
    split = split_validation(lastfm_full, 0.1, seed=0)
    np.testing.assert_array_equal(np.diff(split.valid.indptr), expected_valid_counts(deg, 0.1))
    assert split.train.nnz + split.valid.nnz == 42135
    assert split.train.multiply(split.valid).nnz == 0
    assert (split.train + split.valid != lastfm_full.train).nnz == 0
    assert (split.test != lastfm_full.test).nnz == 0


def test_unknown_bundled_dataset():
    with pytest.raises(FileNotFoundError, match="no bundled dataset named 'nosuch'"):
        load_dataset(DatasetSpec(name="nosuch"))


# -- custom folders --------------------------------------------------------------------------
def test_custom_folder_with_train_valid_test(tmp_path):
    folder = tmp_path / "mydata"
    folder.mkdir()
    write(folder, "train.txt", "0 1 2\n1 0 3\n2 4\n")
    write(folder, "valid.txt", "0 3\n2 0\n")
    write(folder, "test.txt", "1 2\n0 4\n")
    data = load_dataset(DatasetSpec(name="custom", path=str(folder)))
    assert data.name == "custom"
    assert (data.n_users, data.n_items) == (3, 5)
    assert pair_set(data.train) == {(0, 1), (0, 2), (1, 0), (1, 3), (2, 4)}
    assert pair_set(data.valid) == {(0, 3), (2, 0)}
    assert pair_set(data.test) == {(1, 2), (0, 4)}


def test_custom_folder_without_valid_file(tmp_path):
    write(tmp_path, "train.txt", "0 1\n1 0\n")
    write(tmp_path, "test.txt", "0 0\n")
    data = load_dataset(DatasetSpec(name="custom", path=str(tmp_path)))
    assert data.valid.nnz == 0 and data.valid.shape == (2, 2)


def test_custom_folder_with_other_file_names_and_sizes(tmp_path):
    write(tmp_path, "tr.dat", "0 1\n")
    write(tmp_path, "te.dat", "1 0\n")
    spec = DatasetSpec(
        name="c", path=str(tmp_path), train_file="tr.dat", test_file="te.dat", n_users=4, n_items=6
    )
    data = load_dataset(spec)
    assert data.train.shape == (4, 6) and data.train.nnz == data.test.nnz == 1


def test_custom_folder_errors_name_the_file(tmp_path):
    write(tmp_path, "train.txt", "0 1\n1 0\n")
    write(tmp_path, "test.txt", "0 0\n1 7\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(DatasetSpec(name="c", path=str(tmp_path), n_users=2, n_items=5))
    located(err, tmp_path / "test.txt", 2)


def test_triples_folder_shares_one_id_map(tmp_path):
    write(tmp_path, "train.txt", "user,item,rating\nann,x,5\nbo,y,4\nann,y,3\n")
    write(tmp_path, "valid.txt", "user,item,rating\nbo,z,2\n")
    write(tmp_path, "test.txt", "user,item,rating\ncy,x,1\nann,z,5\n")
    data = load_dataset(DatasetSpec(name="t", path=str(tmp_path), format="triples", header=True))
    assert isinstance(data.id_map, IdMap)
    assert data.id_map.raw_users() == ["ann", "bo", "cy"]
    assert data.id_map.raw_items() == ["x", "y", "z"]  # valid is read before test
    assert (data.n_users, data.n_items) == (3, 3)
    assert pair_set(data.train) == {(0, 0), (1, 1), (0, 1)}
    assert pair_set(data.valid) == {(1, 2)}
    assert pair_set(data.test) == {(2, 0), (0, 2)}


def test_unknown_format_is_rejected(tmp_path):
    write(tmp_path, "train.txt", "0 1\n")
    write(tmp_path, "test.txt", "0 0\n")
    with pytest.raises(ValueError, match="dataset.format must be 'adjacency'"):
        load_dataset(DatasetSpec(name="c", path=str(tmp_path), format="parquet"))


def test_relative_path_is_tried_from_cwd_first(tmp_path, monkeypatch):
    cwd, root = tmp_path / "cwd", tmp_path / "root"
    for base in (cwd, root):
        (base / "ds").mkdir(parents=True)
        write(base / "ds", "train.txt", "0 1\n")
        write(base / "ds", "test.txt", "0 0\n")
    monkeypatch.setattr(dataset_module, "REPO_ROOT", root)
    monkeypatch.chdir(cwd)
    assert dataset_module.resolve_folder(DatasetSpec(name="x", path="ds")) == (cwd / "ds").resolve()


def test_relative_path_falls_back_to_repo_root(tmp_path, monkeypatch):
    cwd, root = tmp_path / "cwd", tmp_path / "root"
    cwd.mkdir()
    (root / "data" / "ds").mkdir(parents=True)
    write(root / "data" / "ds", "train.txt", "0 1\n")
    write(root / "data" / "ds", "test.txt", "0 0\n")
    monkeypatch.setattr(dataset_module, "REPO_ROOT", root)
    monkeypatch.chdir(cwd)
    spec = DatasetSpec(name="x", path="data/ds")
    assert dataset_module.resolve_folder(spec) == (root / "data" / "ds").resolve()
    assert load_dataset(spec).train.nnz == 1


def test_missing_relative_folder_names_every_place_tried(tmp_path, monkeypatch):
    cwd, root = tmp_path / "cwd", tmp_path / "root"
    cwd.mkdir()
    root.mkdir()
    monkeypatch.setattr(dataset_module, "REPO_ROOT", root)
    monkeypatch.chdir(cwd)
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(DatasetSpec(name="gone", path="absent/ds"))
    msg = str(err.value)
    assert "dataset 'gone': no train.txt in" in msg
    assert str(cwd / "absent" / "ds") in msg and str(root / "absent" / "ds") in msg


def test_missing_absolute_folder(tmp_path):
    folder = tmp_path / "absent"
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(DatasetSpec(name="x", path=str(folder)))
    assert str(folder) in str(err.value) and "SSLREC_DATA_ROOT" in str(err.value)


def test_folder_without_test_file(tmp_path):
    write(tmp_path, "train.txt", "0 1\n")
    with pytest.raises(FileNotFoundError, match="test.txt"):
        load_dataset(DatasetSpec(name="x", path=str(tmp_path)))


def test_triples_reader_used_with_tabs_and_no_header(tmp_path):
    ids = IdMap()
    train = read_triples(write(tmp_path, "train.tsv", "10\t20\n11\t20\n"), ids)
    test = read_triples(write(tmp_path, "test.tsv", "10\t21\n"), ids)
    data = build_interactions("t", train, test, id_map=ids)
    assert (data.n_users, data.n_items) == (2, 2)
    assert data.id_map is ids


# -- gowalla ---------------------------------------------------------------------------------
@pytest.mark.skipif(not (SHARED_DATA / "gowalla").is_dir(), reason="shared gowalla not present")
def test_gowalla_loads_with_published_counts():
    data = load_dataset(
        DatasetSpec(name="gowalla", path=str(SHARED_DATA / "gowalla"), n_users=29858, n_items=40981)
    )
    assert (data.train.nnz, data.test.nnz) == (810128, 217242)
    assert (data.n_users, data.n_items) == (29858, 40981)
    assert data.valid.nnz == 0


def test_pairs_to_csr_is_binary_even_with_repeated_pairs():
    mat = pairs_to_csr(np.array([0, 1, 0, 0]), np.array([2, 0, 2, 1]), 2, 3)
    assert mat.shape == (2, 3) and mat.nnz == 3 and mat.has_sorted_indices
    np.testing.assert_array_equal(mat.toarray(), [[0, 1, 1], [1, 0, 0]])


# -- sparse id spaces ------------------------------------------------------------------------
def adjacency_text(n_users: int, stray: dict[int, str] | None = None, first_item: int = 0) -> str:
    """``n_users`` lines ``u i i+1``; ``stray`` replaces line ``k`` (1-based) by its text."""
    rows = [f"{u} {first_item + u % 50} {first_item + 1 + u % 50}" for u in range(n_users)]
    for k, text in (stray or {}).items():
        rows[k - 1] = text
    return "\n".join(rows) + "\n"


def test_stray_large_user_id_stops_at_load(tmp_path):
    train = adj(tmp_path, "train.txt", adjacency_text(300, {57: "2000000 3 4"}))
    test = adj(tmp_path, "test.txt", adjacency_text(300, first_item=60))
    with pytest.raises(DataFormatError) as err:
        build_interactions("t", train, test)
    msg = located(err, tmp_path / "train.txt", 57)
    assert "user id 2,000,000 makes the inferred user count 2,000,001" in msg
    assert "only 301 distinct user ids occur" in msg  # 0..299 and the stray one
    assert "expected ids 0..n-1 with few gaps" in msg
    for hint in ("dataset.format=triples", "dataset.n_users", "dataset.allow_sparse_ids=true"):
        assert hint in msg


def test_stray_large_item_id_in_test_names_the_test_line(tmp_path):
    train = adj(tmp_path, "train.txt", adjacency_text(300))
    test = adj(tmp_path, "test.txt", adjacency_text(300, {5: "4 60 61", 9: "8 62 99999999"}, 60))
    with pytest.raises(DataFormatError) as err:
        build_interactions("t", train, test)
    msg = located(err, tmp_path / "test.txt", 9)
    assert "item id 99,999,999" in msg and "dataset.n_items" in msg


def test_largest_id_named_at_its_first_occurrence_train_before_test(tmp_path):
    train = adj(tmp_path, "train.txt", "0 1\n1 0\n\n99999 2\n")
    test = adj(tmp_path, "test.txt", "99999 3\n")
    with pytest.raises(DataFormatError) as err:
        build_interactions("t", train, test)
    located(err, tmp_path / "train.txt", 4)


def test_sparse_rule_boundary_small_id_counts(tmp_path):
    # two distinct users {0, x}: size x + 1 is allowed up to 2 + SPARSE_SLACK
    test = adj(tmp_path, "test.txt", "0 2\n")
    ok = adj(tmp_path, "ok.txt", f"0 1\n{SPARSE_SLACK + 1} 0\n")
    assert build_interactions("t", ok, test).n_users == SPARSE_SLACK + 2
    bad = adj(tmp_path, "bad.txt", f"0 1\n{SPARSE_SLACK + 2} 0\n")
    with pytest.raises(DataFormatError, match="allow_sparse_ids"):
        build_interactions("t", bad, test)


def test_sparse_rule_boundary_factor_two(tmp_path):
    # 20,000 distinct items 0..19,999 plus one more: size may be at most 2 x 20,001
    rows = "\n".join(f"{u} {2 * u} {2 * u + 1}" for u in range(10_000))
    test = adj(tmp_path, "test.txt", "0 5\n")
    ok = adj(tmp_path, "ok.txt", rows + "\n1 40001\n")
    assert build_interactions("t", ok, test).n_items == 40_002
    bad = adj(tmp_path, "bad.txt", rows + "\n1 40002\n")
    with pytest.raises(DataFormatError) as err:
        build_interactions("t", bad, test)
    assert "only 20,001 distinct item ids" in located(err, tmp_path / "bad.txt", 10_001)


def test_small_gaps_and_test_only_users_are_fine(tmp_path):
    # LightGCN-style: ids 0..n-1, some users only in test, some ids absent altogether
    train = adj(tmp_path, "train.txt", "0 1 2\n2 0\n5 7\n")
    test = adj(tmp_path, "test.txt", "1 3\n9 4\n")
    data = build_interactions("t", train, test)
    assert (data.n_users, data.n_items) == (10, 8)


def test_allow_sparse_ids_keeps_the_sparse_space(tmp_path):
    train = adj(tmp_path, "train.txt", "0 1\n1 2\n50000 3\n")
    test = adj(tmp_path, "test.txt", "0 2\n")
    with pytest.raises(DataFormatError):
        build_interactions("t", train, test)
    data = build_interactions("t", train, test, allow_sparse_ids=True)
    assert data.n_users == 50_001 and data.train.nnz == 3


def test_allow_sparse_ids_through_load_dataset(tmp_path):
    write(tmp_path, "train.txt", "0 1\n1 2\n" + "70000 0 3\n")
    write(tmp_path, "test.txt", "0 0\n")
    with pytest.raises(DataFormatError) as err:
        load_dataset(DatasetSpec(name="c", path=str(tmp_path)))
    located(err, tmp_path / "train.txt", 3)
    data = load_dataset(DatasetSpec(name="c", path=str(tmp_path), allow_sparse_ids=True))
    assert data.n_users == 70_001
    assert DatasetSpec(name="x").allow_sparse_ids is False


def test_explicit_sizes_use_the_range_check_not_the_sparsity_check(tmp_path):
    train = adj(tmp_path, "train.txt", "0 1\n1 2\n2000000 3\n")
    test = adj(tmp_path, "test.txt", "0 2\n")
    with pytest.raises(DataFormatError) as err:
        build_interactions("t", train, test, n_users=300, n_items=4)
    assert "user id 2000000 out of range" in located(err, tmp_path / "train.txt", 3)
    # a given n_users with inferred n_items: only the item space is checked for sparsity
    data = build_interactions("t", train, test, n_users=2_000_001)
    assert (data.n_users, data.n_items) == (2_000_001, 4)


def test_triples_ids_are_never_sparse(tmp_path):
    ids = IdMap()
    train = read_triples(write(tmp_path, "train.csv", "u2000000,i9\nu7,i99999999\n"), ids)
    test = read_triples(write(tmp_path, "test.csv", "u7,i9\n"), ids)
    data = build_interactions("t", train, test, id_map=ids)
    assert (data.n_users, data.n_items) == (2, 2)


@pytest.mark.parametrize("size", [-1, ID_LIMIT + 1, 2**40])
def test_explicit_sizes_outside_the_id_limit_are_rejected(tmp_path, size):
    # on n_items, so that a regression allocates nothing big (a CSR of 2 rows)
    train, test = adj(tmp_path, "a.txt", "0 1\n"), adj(tmp_path, "b.txt", "0 0\n")
    with pytest.raises(ValueError, match="n_items must be between 0 and 2,147,483,647"):
        build_interactions("t", train, test, n_users=2, n_items=size)


@pytest.mark.parametrize("name", ["gowalla", "yelp2018"])
def test_benchmark_datasets_load_with_inferred_sizes(name):
    if not (SHARED_DATA / name).is_dir():
        pytest.skip(f"shared {name} not present")
    data = load_dataset(DatasetSpec(name=name, path=str(SHARED_DATA / name)))
    assert (data.n_users, data.n_items) == {"gowalla": (29858, 40981), "yelp2018": (31668, 38048)}[
        name
    ]


# -- items unseen in training ----------------------------------------------------------------
def test_every_test_item_unseen_in_training_is_warned(tmp_path, caplog):
    train = adj(tmp_path, "train.txt", "0 0 1\n1 2\n")
    test = adj(tmp_path, "test.txt", "0 3\n1 4 3\n")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        build_interactions("mini", train, test)
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(msgs) == 1, msgs
    assert "mini: no test item" in msgs[0] and str(tmp_path / "test.txt") in msgs[0]
    assert "every test item is unseen in training" in msgs[0]


def test_every_valid_item_unseen_in_training_is_warned(tmp_path, caplog):
    train = adj(tmp_path, "train.txt", "0 0 1\n1 2\n")
    valid = adj(tmp_path, "valid.txt", "0 5\n")
    test = adj(tmp_path, "test.txt", "0 2\n")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        build_interactions("mini", train, test, valid)
    assert f"no valid item ({tmp_path / 'valid.txt'}) has a training interaction" in caplog.text
    assert "test" not in caplog.text.replace(str(tmp_path), "")


def test_mostly_unseen_test_items_log_the_fraction(tmp_path, caplog):
    train = adj(tmp_path, "train.txt", "0 0 1\n1 2\n")
    test = adj(tmp_path, "test.txt", "0 2 3 4\n1 0 5\n")  # 3 of 5 test pairs unseen
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        build_interactions("mini", train, test)
    expected = f"mini: 60.0% of the test interactions ({tmp_path / 'test.txt'}) are with items"
    assert expected in caplog.text


def test_half_or_fewer_unseen_test_items_are_not_warned(tmp_path, caplog):
    train = adj(tmp_path, "train.txt", "0 0 1\n1 2\n")
    test = adj(tmp_path, "test.txt", "0 2 3\n1 0 5\n")  # 2 of 4 unseen: exactly 50%
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        build_interactions("mini", train, test)
    assert not caplog.records
