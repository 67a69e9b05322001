"""``sslrec recommend`` and ``sslrec evaluate`` on finished runs: brute-force references, raw ids,
non-inner-product models, and refusals of incomplete or failed runs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sslrec.evaluate import evaluate
from sslrec.evaluate import main as evaluate_main
from sslrec.recommend import main as recommend_main
from sslrec.saved import RunNotUsable, load_run_data, load_scorer, open_run
from tests.test_cli import run_cli


def _train(tmp_path: Path, dataset_dir: Path, *overrides: str) -> Path:
    out = tmp_path / "run"
    run_cli(
        tmp_path,
        "dataset=custom",
        f"dataset.path={dataset_dir}",
        "trainer.epochs=3",
        "trainer.eval_every=1",
        "trainer.batch_size=64",
        f"hydra.run.dir={out}",
        "logger=none",
        "threads=1",
        *overrides,
    )
    return out


@pytest.fixture(scope="module")
def lightgcn_run(tmp_path_factory, tiny_dataset_dir_module) -> Path:
    return _train(tmp_path_factory.mktemp("lgcn"), tiny_dataset_dir_module)


@pytest.fixture(scope="module")
def tiny_dataset_dir_module(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("tiny")
    train, test = [], []
    for u in range(40):
        items = rng.choice(60, size=8, replace=False)
        train.append(" ".join(map(str, [u, *items[:6]])))
        test.append(" ".join(map(str, [u, *items[6:]])))
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")
    return folder


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _brute_force(run_dir: Path, k: int) -> dict[int, list[int]]:
    """Top-k of every user with training items by the saved embeddings, train and valid
    items masked, computed densely."""
    run = open_run(run_dir)
    data = load_run_data(run)
    emb = np.load(run_dir / "embeddings.npz")
    scores = emb["user"].astype(np.float64) @ emb["item"].T.astype(np.float64)
    seen = (data.train + data.valid).toarray() > 0
    scores[seen] = -np.inf
    users = np.flatnonzero(np.diff(data.train.indptr) > 0)
    return {int(u): np.argsort(-scores[u], kind="stable")[:k].tolist() for u in users}


def test_recommend_equals_brute_force_top_k(lightgcn_run, tmp_path):
    out = tmp_path / "recs.csv"
    assert recommend_main([str(lightgcn_run), "--k", "7", "--out", str(out)]) == 0
    rows = _read_csv(out)
    assert list(rows[0]) == ["user", "item", "rank", "score"]
    got: dict[int, list[int]] = {}
    for row in rows:
        got.setdefault(int(row["user"]), []).append(int(row["item"]))
        assert 1 <= int(row["rank"]) <= 7
    assert got == _brute_force(lightgcn_run, 7)
    scores = [float(r["score"]) for r in rows if r["user"] == rows[0]["user"]]
    assert scores == sorted(scores, reverse=True)


def test_recommend_for_listed_users(lightgcn_run, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("5\n\n0\n")
    out = tmp_path / "recs.csv"
    assert (
        recommend_main([str(lightgcn_run), "--k", "3", "--users", str(users), "--out", str(out)])
        == 0
    )
    rows = _read_csv(out)
    assert [r["user"] for r in rows] == ["5"] * 3 + ["0"] * 3
    ref = _brute_force(lightgcn_run, 3)
    assert [int(r["item"]) for r in rows] == ref[5] + ref[0]


def test_recommend_rejects_an_unknown_user_with_file_and_line(lightgcn_run, tmp_path, capsys):
    users = tmp_path / "users.txt"
    users.write_text("1\n400\n")
    assert recommend_main([str(lightgcn_run), "--users", str(users)]) == 2
    assert f"{users}:2:" in capsys.readouterr().err


def test_evaluate_reproduces_the_runs_metrics(lightgcn_run, tmp_path):
    results = json.loads((lightgcn_run / "results.json").read_text())
    test = evaluate(lightgcn_run, "test")
    assert test["metrics"] == pytest.approx(results["test"], abs=1e-6)
    valid = evaluate(lightgcn_run, "valid")
    assert valid["metrics"] == pytest.approx(results["valid"], abs=1e-6)
    out = tmp_path / "ev.json"
    assert evaluate_main([str(lightgcn_run), "--ks", "5", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["ks"] == [5] and "recall@5" in written["metrics"]


def test_evaluate_on_another_folder_with_the_same_ids(
    lightgcn_run, tiny_dataset_dir_module, tmp_path
):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dataset_dir_module, copy)
    same = evaluate(lightgcn_run, "test", dataset_path=copy)["metrics"]
    assert same == pytest.approx(evaluate(lightgcn_run, "test")["metrics"])
    data = load_run_data(open_run(lightgcn_run))
    lines = []  # every user's test item replaced by its first item seen nowhere else
    for u in range(data.n_users):
        used = set(data.train[u].indices) | set(data.valid[u].indices) | set(data.test[u].indices)
        lines.append(f"{u} {min(set(range(data.n_items)) - used)}")
    (copy / "test.txt").write_text("\n".join(lines) + "\n")
    other = evaluate(lightgcn_run, "test", dataset_path=copy)["metrics"]
    assert other != same  # a different test split, evaluated with the same model


def test_incomplete_and_failed_runs_are_refused(lightgcn_run, tmp_path, capsys):
    partial = tmp_path / "partial"
    shutil.copytree(lightgcn_run, partial)
    (partial / "results.json").unlink()
    with pytest.raises(RunNotUsable, match="incomplete"):
        open_run(partial)
    assert recommend_main([str(partial)]) == 2 and "incomplete" in capsys.readouterr().err
    failed = tmp_path / "failed"
    shutil.copytree(lightgcn_run, failed)
    (failed / "results.json").write_text(
        json.dumps({"status": "failed", "reason": "non-finite loss at epoch 3"})
    )
    assert evaluate_main([str(failed)]) == 2
    assert "non-finite loss at epoch 3" in capsys.readouterr().err
    with pytest.raises(RunNotUsable, match="not an sslrec run"):
        open_run(tmp_path)


def test_triples_dataset_recommends_raw_ids(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    rng = np.random.default_rng(1)
    train, test = [], []
    for u in range(30):
        items = rng.choice(40, size=6, replace=False)
        train += [f"u{u},i{i}" for i in items[:5]]
        test.append(f"u{u},i{items[5]}")
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")
    run_dir = _train(
        tmp_path,
        folder,
        "dataset.format=triples",
        "model=mf",
        "eval.ks=[5,10]",
        "trainer.metric=recall@10",
    )
    out = tmp_path / "recs.csv"
    assert recommend_main([str(run_dir), "--k", "2", "--out", str(out)]) == 0
    rows = _read_csv(out)
    assert rows and all(r["user"].startswith("u") and r["item"].startswith("i") for r in rows)
    trained = {tuple(line.split(",")) for line in train}
    assert not any((r["user"], r["item"]) in trained for r in rows)


def test_neumf_recommends_through_its_scorer(tmp_path, tiny_dataset_dir_module):
    run_dir = _train(tmp_path, tiny_dataset_dir_module, "model=neumf")
    run = open_run(run_dir)
    assert not run.inner_product
    data = load_run_data(run)
    scorer = load_scorer(run, data)
    out = tmp_path / "recs.csv"
    assert recommend_main([str(run_dir), "--k", "4", "--out", str(out)]) == 0
    rows = _read_csv(out)
    users = sorted({int(r["user"]) for r in rows})
    full = scorer.full_scores(torch.tensor(users)).double().numpy()
    seen = (data.train + data.valid).toarray()[users] > 0
    full[seen] = -np.inf
    for j, user in enumerate(users):
        got = [int(r["item"]) for r in rows if int(r["user"]) == user]
        assert got == np.argsort(-full[j], kind="stable")[:4].tolist()


def test_commands_from_the_cli(lightgcn_run, tmp_path):
    """``python -m sslrec recommend|evaluate`` (the ``sslrec`` script dispatches the same way)."""
    out = tmp_path / "recs.csv"
    proc = run_cli(tmp_path, "recommend", str(lightgcn_run), "--k", "3", "--out", str(out))
    assert "top 3" in proc.stdout and len(_read_csv(out)) == 3 * 40
    proc = run_cli(
        tmp_path,
        "evaluate",
        str(lightgcn_run),
        "--split",
        "valid",
        "--out",
        str(tmp_path / "ev.json"),
    )
    assert "recall@20" in proc.stdout
