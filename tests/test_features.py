"""Side features: the reader's format and every error with its file and line, and how a dataset
carries them to the models that ask for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sslrec.data import DataFormatError, DatasetSpec, IdMap, load_dataset, split_validation
from sslrec.data.features import read_features
from sslrec.factory import build_model
from tests.conftest import compose_run_config


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def error(call, *args, **kwargs) -> DataFormatError:
    with pytest.raises(DataFormatError) as err:
        call(*args, **kwargs)
    return err.value


def assert_located(err: DataFormatError, path: Path, line: int | None, *expected: str) -> None:
    msg = str(err)
    assert msg.startswith(f"{path}:{line}: " if line is not None else f"{path}: "), msg
    assert err.path == str(path) and err.line == line
    for text in expected:
        assert text in msg, msg


# -- the format ------------------------------------------------------------------------------
def test_reads_binary_multi_hot_rows_in_order_of_first_appearance(tmp_path):
    p = write(
        tmp_path,
        "item_features.txt",
        "# genres and decades\n2 rock 1990s\n\n0\tpop  rock\r\n4 genre:rock year:1999\n",
    )
    feats = read_features(p, "item", n_rows=6)
    assert feats.vocabulary == ["rock", "1990s", "pop", "genre:rock", "year:1999"]
    dense = feats.matrix.toarray()
    assert dense.shape == (6, 5) and dense.dtype == np.float32
    assert dense[2].tolist() == [1, 1, 0, 0, 0]
    assert dense[0].tolist() == [1, 0, 1, 0, 0]
    assert dense[4].tolist() == [0, 0, 0, 1, 1]  # a colon is part of the token, never a value
    assert dense[[1, 3, 5]].sum() == 0  # no line, or nothing after the id: no features
    assert feats.path == str(p) and feats.n_features == 5


def test_raw_ids_map_through_the_datasets_id_map(tmp_path):
    p = write(tmp_path, "user_features.txt", "bob young\nalice old young\n")
    feats = read_features(p, "user", 3, raw_ids={"alice": 0, "bob": 2, "carol": 1})
    assert feats.matrix.toarray().tolist() == [[1, 1], [0, 0], [1, 0]]


# -- every error names file and line ---------------------------------------------------------
def test_error_empty_file(tmp_path):
    p = write(tmp_path, "item_features.txt", "\n  \n")
    assert_located(error(read_features, p, "item", 3), p, None, "empty", "item feature1")


@pytest.mark.parametrize("token", ["x1", "-1", "1.0", "+2", "١"])
def test_error_id_not_an_integer(tmp_path, token):
    p = write(tmp_path, "item_features.txt", f"0 a\n{token} b\n")
    assert_located(
        error(read_features, p, "item", 3), p, 2, "expected a non-negative integer item id"
    )


def test_error_id_out_of_range(tmp_path):
    p = write(tmp_path, "user_features.txt", "0 a\n1 b\n\n3 c\n")
    assert_located(error(read_features, p, "user", 3), p, 4, "user id 3 out of range", "below 3")


def test_error_unknown_raw_id(tmp_path):
    p = write(tmp_path, "item_features.txt", "song1 rock\nsong9 pop\n")
    err = error(read_features, p, "item", 2, raw_ids={"song1": 0, "song2": 1})
    assert_located(err, p, 2, "'song9' does not occur in the interaction files", "raw id")


def test_error_id_on_two_lines(tmp_path):
    p = write(tmp_path, "item_features.txt", "1 a\n0 b\n# x\n1 c\n")
    assert_located(
        error(read_features, p, "item", 3),
        p,
        4,
        "already has its features on line 1",
        "one line per item",
    )


def test_error_feature_twice_on_a_line(tmp_path):
    p = write(tmp_path, "item_features.txt", "1 a\n2 rock pop rock\n")
    assert_located(error(read_features, p, "item", 3), p, 2, "'rock' is listed twice", "binary")


def test_error_not_utf8(tmp_path):
    p = tmp_path / "item_features.txt"
    p.write_bytes(b"0 a\n1 caf\xe9\n")
    assert_located(error(read_features, p, "item", 3), p, 2, "not valid UTF-8")


def test_error_binary_file(tmp_path):
    p = tmp_path / "item_features.txt"
    p.write_bytes(b"\x1f\x8b\x08\x00rest")
    assert_located(error(read_features, p, "item", 3), p, 1, "gzip")


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_features(tmp_path / "nope.txt", "item", 3)


# -- datasets carry them ---------------------------------------------------------------------
def test_adjacency_dataset_attaches_features_and_keeps_them_in_the_split(tiny_dataset_dir):
    write(tiny_dataset_dir, "item_features.txt", "0 a b\n5 b\n59 c\n")
    spec = DatasetSpec(name="tiny", path=str(tiny_dataset_dir))
    data = load_dataset(spec)
    assert data.features is not None and data.features.user is None
    assert data.features.item.matrix.shape == (60, 3)
    assert split_validation(data, 0.2, 0).features is data.features
    off = load_dataset(
        DatasetSpec(name="tiny", path=str(tiny_dataset_dir), item_features_file=None)
    )
    assert off.features is None
    bad = write(tiny_dataset_dir, "user_features.txt", "0 x\n40 y\n")  # 40 users: 0..39
    assert_located(error(load_dataset, spec), bad, 2, "user id 40 out of range")


def test_triples_dataset_maps_raw_ids(tmp_path):
    write(tmp_path, "train.txt", "alice s1\nalice s2\nbob s2\nbob s3\n")
    write(tmp_path, "test.txt", "alice s3\nbob s1\n")
    write(tmp_path, "item_features.txt", "s3 rock\ns1 pop rock\n")
    data = load_dataset(DatasetSpec(name="t", path=str(tmp_path), format="triples"))
    ids = IdMap(users={"alice": 0, "bob": 1}, items={"s1": 0, "s2": 1, "s3": 2})
    assert data.id_map == ids
    assert data.features.item.matrix.toarray().tolist() == [[1, 1], [0, 0], [1, 0]]


def test_factory_passes_features_only_to_models_that_list_them(hydra_conf, tiny_dataset_dir):
    write(tiny_dataset_dir, "item_features.txt", "0 a b\n5 b\n")
    write(tiny_dataset_dir, "user_features.txt", "3 u1\n")
    data = load_dataset(DatasetSpec(name="tiny", path=str(tiny_dataset_dir)))
    fm = build_model(compose_run_config("model=fm").model, data, torch.device("cpu"))
    assert fm.item_bag.n_features == 2 and fm.user_bag.n_features == 1
    assert fm.item_feature_embedding.weight.shape == (2, 64)
    torch.testing.assert_close(
        fm.item_bag.pool(torch.eye(2), torch.tensor([0, 5, 1])),
        torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]),
    )
    joint = build_model(compose_run_config("model=joint").model, data, torch.device("cpu"))
    assert joint.item_bag.n_features == 2
    mf = build_model(compose_run_config("model=mf").model, data, torch.device("cpu"))
    assert not hasattr(mf, "item_bag")
