"""Closed-form recommenders (EASE, ItemKNN): slow numpy references of each formula, the shared
machinery (blocked Gram matrix, scorer, fitted state, memory refusal) and a run end to end on
the bundled lastfm, with ``sslrec recommend``/``evaluate`` from the checkpoint and by refitting.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sslrec.evaluate import evaluate
from sslrec.evaluate import main as evaluate_main
from sslrec.models import closed_form
from sslrec.models.closed_form import (
    BLOCK_BYTES,
    InsufficientMemoryError,
    check_memory,
    gram_matrix,
)
from sslrec.models.ease import EASE, ease_memory
from sslrec.models.itemknn import ItemKNN
from sslrec.recommend import main as recommend_main
from sslrec.saved import load_run_data, open_run
from tests.test_cli import run_cli


# -- data and references ---------------------------------------------------------------------
def random_binary(seed: int = 4, n_users: int = 120, n_items: int = 30) -> np.ndarray:
    """``X`` ``[U, I]`` float64 with item popularities spread from 3% to 40%; the last item
    and the last user have no interaction. Seed 4 has no tie at the top-3/top-5 boundary of any
    item's cosine similarities (asserted where it matters)."""
    rng = np.random.default_rng(seed)
    popularity = rng.uniform(0.03, 0.4, size=n_items)
    x = (rng.random((n_users, n_items)) < popularity).astype(np.float64)
    x[:, -1] = 0.0
    x[-1] = 0.0
    return x


def pairs(x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    users, items = np.nonzero(x)
    return torch.from_numpy(users), torch.from_numpy(items)


def ease_reference(x: np.ndarray, lam: float) -> np.ndarray:
    """Steck's closed form in float64, as written in the paper (eq. 8): ``P = (XᵀX + λI)⁻¹``,
    ``B = I − P · diagMat(1 / diag(P))``."""
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    return np.eye(x.shape[1]) - p @ np.diag(1.0 / np.diag(p))


def cosine_reference(x: np.ndarray, shrink: float) -> np.ndarray:
    """``sim[i, j]``, one pair at a time (RecBole's cosine: shrink added to the product of the
    norms, then 1e-6; the diagonal 0)."""
    n_items = x.shape[1]
    sim = np.zeros((n_items, n_items))
    for j in range(n_items):
        for i in range(n_items):
            if i != j:
                co = float(np.sum(x[:, i] * x[:, j]))
                norms = np.sqrt(np.sum(x[:, i] ** 2)) * np.sqrt(np.sum(x[:, j] ** 2))
                sim[i, j] = co / (norms + shrink + 1e-6)
    return sim


def itemknn_reference(x: np.ndarray, k: int, shrink: float, row_normalize: bool) -> np.ndarray:
    """``W`` ``[I, I]``: for every target column ``j``, its ``k`` most similar items ``i`` kept
    as ``W[i, j]`` (RecBole's ``compute_similarity`` with ``method="item"``)."""
    sim = cosine_reference(x, shrink)
    n_items = x.shape[1]
    w = np.zeros_like(sim)
    for j in range(n_items):
        column = sim[:, j]
        top = np.argsort(-column, kind="stable")[: min(k, n_items)]
        kth, rest = column[top[-1]], np.delete(column, top)
        assert kth == 0 or not np.isclose(rest, kth, rtol=1e-5, atol=0).any(), "tie at k"
        w[top, j] = column[top]
        if row_normalize and column[top].sum() > 0:
            w[top, j] /= column[top].sum()
    return w


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 3 rows: the blocked Gram matrix and similarity take several blocks."""
    monkeypatch.setattr(closed_form, "BLOCK_BYTES", 3 * 120 * 8)


# -- EASE ------------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["cholesky", "inverse"])
@pytest.mark.parametrize(("dtype", "atol"), [("float64", 1e-12), ("float32", 2e-6)])
def test_ease_equals_the_closed_form(solver, dtype, atol):
    x = random_binary()
    model = EASE(x.shape[0], x.shape[1], *pairs(x), reg_weight=7.0, dtype=dtype, solver=solver)
    model.fit()
    ref = ease_reference(x, 7.0)
    b = model.B.double().numpy()
    assert model.B.dtype == getattr(torch, dtype) and b.shape == ref.shape
    assert np.all(np.diag(b) == 0.0)
    assert np.abs(b - ref).max() < atol * max(1.0, np.abs(ref).max())
    assert np.abs(ref).max() > 0.05  # not a trivially small B
    users = torch.tensor([3, 0, 119, 3, 57])  # unsorted, repeated, one without interactions
    scores = model.scorer().full_scores(users).double().numpy()
    np.testing.assert_allclose(scores, x[users.numpy()] @ ref, rtol=0, atol=10 * atol)


def test_ease_gram_matrix_in_blocks_equals_the_dense_product(small_blocks):
    x = random_binary()
    model = EASE(x.shape[0], x.shape[1], *pairs(x), dtype="float64")
    assert model.history_t().block_rows(torch.float64) == 3
    np.testing.assert_array_equal(gram_matrix(model.history_t(), torch.float64).numpy(), x.T @ x)
    model.fit()
    np.testing.assert_allclose(model.B.numpy(), ease_reference(x, model.reg_weight), atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reg_weight": 0.0}, "reg_weight must be > 0"),
        ({"reg_weight": True}, "reg_weight must be a number"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"solver": "lu"}, "solver must be one of"),
    ],
)
def test_ease_refuses_bad_options(kwargs, match):
    x = random_binary()
    with pytest.raises(ValueError, match=match):
        EASE(x.shape[0], x.shape[1], *pairs(x), **kwargs)


# -- ItemKNN ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("k", "shrink", "row_normalize"),
    [(3, 0.0, False), (5, 2.5, False), (3, 2.5, True), (1000, 0.0, False), (1000, 1.0, True)],
)
def test_itemknn_equals_the_slow_reference(k, shrink, row_normalize, small_blocks):
    x = random_binary()
    model = ItemKNN(
        x.shape[0], x.shape[1], *pairs(x), k=k, shrink=shrink, row_normalize=row_normalize
    )
    model.fit()
    assert model.similarity.shape == (x.shape[1], min(k, x.shape[1]))
    ref = itemknn_reference(x, k, shrink, row_normalize)
    w = model.item_item().to_dense().double().numpy()
    np.testing.assert_allclose(w, ref, rtol=1e-6, atol=1e-7)
    if k < x.shape[1]:  # the top-k is per target column: at most k entries in each column
        assert (np.count_nonzero(w, axis=0) <= k).all()
        assert np.count_nonzero(w, axis=1).max() > k  # rows are not capped
    users = torch.tensor([5, 1, 119, 5, 60])
    scores = model.scorer().full_scores(users).double().numpy()
    np.testing.assert_allclose(scores, x[users.numpy()] @ ref, rtol=1e-6, atol=1e-6)


def test_itemknn_refuses_bad_options():
    x = random_binary()
    for kwargs, match in [
        ({"k": 0}, "k must be an integer >= 1"),
        ({"k": 2.5}, "k must be an integer"),
        ({"shrink": -1.0}, "shrink must be a number >= 0"),
    ]:
        with pytest.raises(ValueError, match=match):
            ItemKNN(x.shape[0], x.shape[1], *pairs(x), **kwargs)


# -- the shared machinery --------------------------------------------------------------------
@pytest.mark.parametrize("cls", [EASE, ItemKNN])
def test_scorer_full_scores_and_score_agree_with_x_times_w(cls):
    x = random_binary()
    model = cls(x.shape[0], x.shape[1], *pairs(x))
    with pytest.raises(RuntimeError, match="not fitted yet"):
        model.scorer()
    with pytest.raises(TypeError, match="closed form"):
        model.loss(None)
    model.fit()
    w = model.item_item()
    w = (w.to_dense() if w.layout == torch.sparse_csr else w).double().numpy()
    every = x @ w  # [U, I]
    scorer = model.scorer()
    users = torch.arange(x.shape[0])
    np.testing.assert_allclose(scorer.full_scores(users).double().numpy(), every, atol=1e-5)
    rng = np.random.default_rng(0)
    u = torch.from_numpy(rng.integers(0, x.shape[0], 50))
    one = torch.from_numpy(rng.integers(0, x.shape[1], 50))
    many = torch.from_numpy(rng.integers(0, x.shape[1], (50, 4)))
    np.testing.assert_allclose(scorer.score(u, one).double(), every[u, one], atol=1e-5)
    np.testing.assert_allclose(
        scorer.score(u, many, block=7).double(), every[u[:, None], many], atol=1e-5
    )
    assert torch.equal(model.score(u, many), scorer.score(u, many))
    user_emb, item_emb = model.embeddings()
    assert user_emb.shape == (x.shape[0], 0) and item_emb.shape == (x.shape[1], 0)


@pytest.mark.parametrize(("cls", "other"), [(EASE, {}), (ItemKNN, {"k": 4})])
def test_fitted_state_saves_loads_and_refuses_other_sizes(cls, other):
    x = random_binary()
    model = cls(x.shape[0], x.shape[1], *pairs(x), **({"k": 5} if cls is ItemKNN else {}))
    model.fit()
    buf = io.BytesIO()
    torch.save(model.fitted_state(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert set(state) == set(model.fitted_buffers)
    again = cls(x.shape[0], x.shape[1], *pairs(x), **({"k": 5} if cls is ItemKNN else {}))
    assert not again.fitted
    again.load_fitted(state)
    users = torch.arange(x.shape[0])
    assert torch.equal(again.scorer().full_scores(users), model.scorer().full_scores(users))
    wider = np.pad(x, ((0, 0), (0, 1)))  # another dataset: one more item
    with pytest.raises(ValueError, match=r"should have shape .* for 120 users and 31 items"):
        cls(x.shape[0], x.shape[1] + 1, *pairs(wider), **other).load_fitted(state)
    if cls is ItemKNN:  # another k: the same items, other shapes
        with pytest.raises(ValueError, match=r"'neighbours' should have shape \(30, 4\)"):
            cls(x.shape[0], x.shape[1], *pairs(x), **other).load_fitted(state)
    with pytest.raises(ValueError, match="got None"):
        cls(x.shape[0], x.shape[1], *pairs(x)).load_fitted({})


def test_ease_state_dtype_and_save_fitted():
    x = random_binary()
    model = EASE(x.shape[0], x.shape[1], *pairs(x), dtype="float64")
    model.fit()
    single = EASE(x.shape[0], x.shape[1], *pairs(x), dtype="float32")
    single.load_fitted(model.fitted_state())
    assert single.B.dtype == torch.float32
    assert EASE(x.shape[0], x.shape[1], *pairs(x), save_fitted=False).fitted_state() == {}


def test_memory_refusal_names_need_free_memory_and_override(monkeypatch, caplog):
    x = random_binary()
    n_users, n_items = x.shape
    needed = ease_memory(n_items, torch.float32, "cholesky", torch.device("cpu"))
    assert needed == 2 * n_items**2 * 4 + 2 * BLOCK_BYTES  # the documented estimate
    assert ease_memory(n_items, torch.float64, "inverse", torch.device("cuda")) == (
        4 * n_items**2 * 8 + 2 * BLOCK_BYTES
    )
    free = {"bytes": needed}
    monkeypatch.setattr(closed_form, "available_memory", lambda device: free["bytes"])
    model = EASE(n_users, n_items, *pairs(x))  # exactly enough: accepted
    free["bytes"] = needed - 1
    with pytest.raises(InsufficientMemoryError) as info:
        EASE(n_users, n_items, *pairs(x))
    message = str(info.value)
    assert "model=ease on 30 items (float32, cholesky: 2 dense 30x30 matrices)" in message
    assert f"needs ~{needed / 2**30:.1f} GiB on cpu" in message
    assert "nothing was allocated" in message and "model.memory_check=false" in message
    with pytest.raises(InsufficientMemoryError):  # fit() checks again, before allocating
        model.fit()
    assert model.B is None
    EASE(n_users, n_items, *pairs(x), memory_check=False).fit()  # the override
    free["bytes"] = None  # unknown: a warning, no refusal
    EASE(n_users, n_items, *pairs(x)).fit()
    assert "cpu free memory unknown" in caplog.text
    free["bytes"] = 2**30
    with pytest.raises(InsufficientMemoryError, match="only 1.0 GiB is free .* pass opt=false"):
        check_memory(2**40, torch.device("cpu"), "a test", "opt")


# -- end to end on lastfm --------------------------------------------------------------------
@pytest.fixture(scope="module")
def lastfm_runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("closed_form_runs")
    runs = {}
    for model in ("ease", "itemknn"):
        runs[model] = root / model
        run_cli(root, f"model={model}", "logger=none", "threads=1", f"hydra.run.dir={runs[model]}")
    return runs


@pytest.mark.parametrize("model", ["ease", "itemknn"])
def test_cli_run_on_lastfm_beats_most_popular(lastfm_runs, model):
    out = lastfm_runs[model]
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "finished" and results["scoring"] == "model"
    assert results["selection_split"] == "valid"
    popular = results["baselines"]["most_popular"]["recall@20"]
    assert results["test"]["recall@20"] > 3 * popular
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1
    assert records[0]["epoch"] == 1 and records[0]["split"] == "valid"
    assert records[0]["metrics"] == pytest.approx(results["valid"])


def _read_recommendations(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()]


def test_recommend_and_evaluate_from_the_checkpoint_and_by_refitting(lastfm_runs, tmp_path):
    run = lastfm_runs["ease"]
    results = json.loads((run / "results.json").read_text())
    assert recommend_main([str(run), "--k", "5", "--out", str(tmp_path / "saved.csv")]) == 0
    saved = _read_recommendations(tmp_path / "saved.csv")
    data = load_run_data(open_run(run))
    n_users = int((np.diff(data.train.indptr) > 0).sum())  # every user with training items
    assert saved[0] == ["user", "item", "rank", "score"] and len(saved) == 1 + 5 * n_users
    assert evaluate_main([str(run), "--out", str(tmp_path / "ev.json")]) == 0
    written = json.loads((tmp_path / "ev.json").read_text())["metrics"]
    assert written == pytest.approx(results["test"], abs=1e-6)
    refit = tmp_path / "refit"  # no checkpoint: recommend and evaluate fit EASE again
    shutil.copytree(run, refit)
    (refit / "checkpoint.pt").unlink()
    run_cli(tmp_path, "recommend", str(refit), "--k", "5", "--out", str(tmp_path / "refit.csv"))
    again = _read_recommendations(tmp_path / "refit.csv")
    assert [row[:3] for row in again] == [row[:3] for row in saved]
    scores = [np.array([float(row[3]) for row in rows[1:]]) for rows in (again, saved)]
    np.testing.assert_allclose(*scores, rtol=1e-5)
    assert evaluate(refit, "test")["metrics"] == pytest.approx(results["test"], abs=1e-6)


def test_paper_protocol_evaluates_the_one_fit_on_test_once(tmp_path, monkeypatch):
    """protocol=paper: the fit is evaluated on test once; results["test"] is that evaluation."""
    from sslrec.data import DatasetSpec, load_dataset
    from sslrec.evaluation import Evaluator
    from sslrec.train import Trainer, TrainerConfig

    data = load_dataset(DatasetSpec(name="lastfm", n_users=1892, n_items=4489))
    model = EASE(data.n_users, data.n_items, *pairs(data.train.toarray()))
    evaluator = Evaluator(data, ks=(20,))
    calls = []
    original = Evaluator.evaluate_scorer

    def counted(self, scorer, split):
        calls.append(split)
        return original(self, scorer, split)

    monkeypatch.setattr(Evaluator, "evaluate_scorer", counted)
    cfg = TrainerConfig(protocol="paper", progress=False)
    results = Trainer(model, data, evaluator, cfg, tmp_path).fit()
    assert calls == ["test"]
    assert results["test"] == original(evaluator, model.scorer(), "test")
    assert results["selection_split"] == "test" and results["valid"] == {}
