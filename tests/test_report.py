"""sslrec.report on small fake run directories: grouping, statistics, outputs, CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from sslrec.report import build_report, write_report
from sslrec.report.__main__ import main
from sslrec.report.collect import flatten, is_ignored
from sslrec.report.render import format_mean_std
from sslrec.report.stats import best_index, curve_band, mean_std, paired_pvalue

SEEDS = (1, 2, 3)
LIGHTGCN_RECALL = {1: 0.20, 2: 0.21, 3: 0.22}
SIMGCL_RECALL = {1: 0.21, 2: 0.23, 3: 0.25}  # diffs vs lightgcn: 0.01, 0.02, 0.03


def _config(model: str, seed: int, **model_kw: object) -> dict:
    """A resolved-config-like tree; logger/device/threads differ per seed (bookkeeping)."""
    cfg = {
        "dataset": {"name": "lastfm", "path": f"/data/{seed}"},
        "model": {"_target_": f"sslrec.models.{model}", "num_layers": 3, **model_kw},
        "trainer": {"epochs": 3, "lr": 0.001, "resume": False},
        "logger": {"_target_": "sslrec.logging.NullLogger", "run": seed},
        "seed": seed,
        "device": "cpu",
        "threads": seed,
        "data_root": "/data",
    }
    if model == "SimGCL":
        cfg["augmenter"] = {"_target_": "sslrec.augment.UniformNoise", "eps": 0.1}
    return cfg


def make_run(
    path: Path,
    config: dict,
    recall: float | None,
    ndcg: float = 0.1,
    error: str | None = None,
    split: str = "test",
) -> Path:
    """Write config.yaml, metrics.jsonl (3 epochs) and, if ``recall`` is given, results.json."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    lines = []
    for epoch in (1, 2, 3):
        value = (recall or 0.1) * epoch / 3
        losses = {"bpr": 0.7 / epoch, "reg": 1e-4, "ssl": 5.0 / epoch, "total": 1.0}
        metrics = {"recall@20": value, "ndcg@20": ndcg * epoch / 3}
        row = {"epoch": epoch, "split": split, "losses": losses, "metrics": metrics}
        lines.append(json.dumps(row))
    (path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"epoch": 4, "spl')
    if recall is not None:
        results = {"valid": {}, "test": {"recall@20": recall, "ndcg@20": ndcg}, "best_epoch": 3}
        (path / "results.json").write_text(json.dumps(results))
    if error is not None:
        (path / "error.txt").write_text(error)
    return path


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Hydra-multirun-like folder: lightgcn and simgcl × 3 seeds, plus a running and a failed run.

    The simgcl runs carry two ssl_weight values (0.1 with 3 seeds, 0.5 with 1 seed), so
    there are three finished configurations.
    """
    root = tmp_path / "multirun"
    (root / ".hydra").mkdir(parents=True)
    (root / ".hydra" / "config.yaml").write_text("seed: 0\n")  # must not count as a run
    (root / "multirun.yaml").write_text("hydra: {}\n")
    i = 0
    for seed in SEEDS:
        make_run(root / str(i), _config("LightGCN", seed), LIGHTGCN_RECALL[seed], 0.10)
        make_run(root / str(i + 1), _config("SimGCL", seed, ssl_weight=0.1), SIMGCL_RECALL[seed])
        i += 2
    make_run(root / str(i), _config("SimGCL", 1, ssl_weight=0.5), 0.30, ndcg=0.05)
    make_run(root / str(i + 1), _config("SimGCL", 2, ssl_weight=0.5), None)
    make_run(root / str(i + 2), _config("SimGCL", 3, ssl_weight=0.5), None, error="CUDA OOM\n")
    return root


def test_flatten_and_ignored_keys() -> None:
    flat = flatten({"a": {"b": 1, "c": [1, 2]}, "seed": 3})
    assert flat == {"a.b": 1, "a.c": (1, 2), "seed": 3}
    assert is_ignored("seed") and is_ignored("logger.project") and is_ignored("eval.batch_size")
    assert not is_ignored("model.ssl_weight") and not is_ignored("loggerx")


def test_mean_std_hand_values() -> None:
    mean, std = mean_std([0.20, 0.21, 0.22])
    assert mean == pytest.approx(0.21)
    assert std == pytest.approx(0.01)  # sqrt((0.01² + 0 + 0.01²) / 2)
    mean, std = mean_std([0.3])
    assert mean == pytest.approx(0.3) and math.isnan(std)
    assert all(math.isnan(v) for v in mean_std([]))
    assert format_mean_std(0.26843, 0.00312) == "0.2684 ± 0.0031"
    assert format_mean_std(0.3, math.nan) == "0.3000 ± –"


def test_paired_ttest_hand_computed() -> None:
    # diffs 0.01, 0.02, 0.03: mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3) = 2 sqrt 3
    t = 0.02 / (0.01 / math.sqrt(3))
    assert t == pytest.approx(3.4641, abs=1e-4)
    p_hand = 1 - t / math.sqrt(t**2 + 2)  # two-sided p of Student's t with 2 df
    assert p_hand == pytest.approx(0.0742, abs=1e-4)
    assert paired_pvalue(SIMGCL_RECALL, LIGHTGCN_RECALL) == pytest.approx(p_hand, rel=1e-6)


def test_paired_test_pairs_by_seed_only() -> None:
    # only seeds 1 and 2 are shared: one pair fewer than needed after dropping seed 3
    assert math.isnan(paired_pvalue({1: 0.2, 3: 0.3}, {1: 0.1, 2: 0.1}))
    assert math.isnan(paired_pvalue({}, {}))
    assert paired_pvalue({1: 0.2, 2: 0.3}, {1: 0.2, 2: 0.3}) == 1.0
    p = paired_pvalue({1: 0.21, 2: 0.23, 3: 0.25, 9: 5.0}, LIGHTGCN_RECALL, "ttest")
    assert p == pytest.approx(paired_pvalue(SIMGCL_RECALL, LIGHTGCN_RECALL))
    # exact Wilcoxon with 3 positive diffs: two-sided p = 2 / 2^3
    assert paired_pvalue(SIMGCL_RECALL, LIGHTGCN_RECALL, "wilcoxon") == pytest.approx(0.25)
    with pytest.raises(ValueError):
        paired_pvalue(SIMGCL_RECALL, LIGHTGCN_RECALL, "anova")


def test_best_index_and_curve_band() -> None:
    assert best_index([0.1, math.nan, 0.3, 0.2]) == 2
    assert best_index([math.nan]) is None
    epochs, mean, std, lo, hi = curve_band([{1: 0.1, 2: 0.2}, {1: 0.3}])
    assert epochs == [1, 2]
    assert mean == pytest.approx([0.2, 0.2]) and lo == [0.1, 0.2] and hi == [0.3, 0.2]
    assert std[0] == pytest.approx(math.sqrt(0.02)) and math.isnan(std[1])


def test_grouping_ignores_seed_and_bookkeeping(sweep: Path) -> None:
    report = build_report([sweep])
    labels = [row.label for row in report.rows]
    assert labels == [
        "lightgcn",
        "simgcl noise ssl_weight=0.1",
        "simgcl noise ssl_weight=0.5",
    ]
    assert [len(g.runs) for g in report.groups] == [3, 3, 3]
    lightgcn, simgcl, simgcl_05 = report.rows
    assert (lightgcn.n_seeds, simgcl.n_seeds, simgcl_05.n_seeds) == (3, 3, 1)
    assert (simgcl_05.n_failed, simgcl_05.n_running) == (1, 1)
    assert lightgcn.mean["recall@20"] == pytest.approx(0.21)
    assert lightgcn.std["recall@20"] == pytest.approx(0.01)
    assert simgcl.mean["recall@20"] == pytest.approx(0.23)
    assert simgcl.std["recall@20"] == pytest.approx(0.02)
    assert math.isnan(simgcl_05.std["recall@20"])


def test_two_configs_three_seeds_two_groups(tmp_path: Path) -> None:
    for seed in SEEDS:
        make_run(tmp_path / f"a{seed}", _config("SimGCL", seed, ssl_weight=0.1), 0.2 + seed / 100)
        make_run(tmp_path / f"b{seed}", _config("SimGCL", seed, ssl_weight=0.2), 0.3)
    report = build_report([tmp_path])
    assert [r.label for r in report.rows] == [
        "simgcl noise ssl_weight=0.1",
        "simgcl noise ssl_weight=0.2",
    ]
    assert report.baseline is None and all(math.isnan(r.pvalue["recall@20"]) for r in report.rows)


def test_pvalue_and_best(sweep: Path) -> None:
    report = build_report([sweep])
    assert report.baseline == "lightgcn"
    lightgcn, simgcl, simgcl_05 = report.rows
    t = 2 * math.sqrt(3)
    assert simgcl.pvalue["recall@20"] == pytest.approx(1 - t / math.sqrt(t**2 + 2))
    assert math.isnan(simgcl_05.pvalue["recall@20"])  # one pair only
    assert math.isnan(lightgcn.pvalue["recall@20"])
    assert [r.best["recall@20"] for r in report.rows] == [False, False, True]
    assert [r.best["ndcg@20"] for r in report.rows] == [True, False, False]  # ties: first
    assert build_report([sweep], baseline="ssl_weight=0.1").baseline == simgcl.label
    with pytest.raises(ValueError, match="no configuration matches"):
        build_report([sweep], baseline="xsimgcl")


def test_each_dataset_is_tested_against_its_own_baseline(tmp_path: Path) -> None:
    """Two datasets: simgcl on gowalla pairs with gowalla's lightgcn, never lastfm's."""
    gowalla_lightgcn = {1: 0.10, 2: 0.10, 3: 0.10}
    gowalla_simgcl = {1: 0.11, 2: 0.13, 3: 0.15}
    for seed in SEEDS:
        for name, model, recall in (
            ("l", "LightGCN", LIGHTGCN_RECALL[seed]),
            ("s", "SimGCL", SIMGCL_RECALL[seed]),
            ("gl", "LightGCN", gowalla_lightgcn[seed]),
            ("gs", "SimGCL", gowalla_simgcl[seed]),
        ):
            cfg = _config(model, seed)
            if name.startswith("g"):
                cfg["dataset"]["name"] = "gowalla"
            make_run(tmp_path / f"{name}{seed}", cfg, recall)
    report = build_report([tmp_path])
    rows = {r.label: r for r in report.rows}
    assert rows["simgcl noise dataset=lastfm"].baseline == "lightgcn dataset=lastfm"
    assert rows["simgcl noise dataset=gowalla"].baseline == "lightgcn dataset=gowalla"
    # diffs 0.01, 0.02, 0.03: t = 0.02 / (0.01/sqrt 3); 0.01, 0.03, 0.05: t = 0.03 / (0.02/sqrt 3)
    for dataset, t in (("lastfm", 2 * math.sqrt(3)), ("gowalla", 1.5 * math.sqrt(3))):
        p = rows[f"simgcl noise dataset={dataset}"].pvalue["recall@20"]
        assert p == pytest.approx(1 - t / math.sqrt(t**2 + 2))
    md = (write_report(report, tmp_path / "out")[0]).read_text()
    assert "| lightgcn dataset=gowalla | 3 |" in md and md.count("| baseline |") == 2


def test_validation_protocol_curves_come_from_valid_rows(tmp_path: Path) -> None:
    """Validation protocol: metrics.jsonl holds only valid rows; a test-split table still gets
    the validation curves and loss plots."""
    for seed in SEEDS:
        cfg = _config("LightGCN", seed)
        make_run(tmp_path / f"r{seed}", cfg, LIGHTGCN_RECALL[seed], split="valid")
    report = build_report([tmp_path], split="test")
    assert all(len(r.history) == 3 for g in report.groups for r in g.runs)
    assert report.rows[0].mean["recall@20"] == pytest.approx(0.21)  # from results.json's test
    names = {p.name for p in write_report(report, tmp_path / "out")}
    assert {"curve_recall@20.png", "loss_components.png"} <= names


def test_jobs_in_numeric_order(tmp_path: Path) -> None:
    """Multirun job folders 0..11 come in job order (10 after 9), so rows follow the sweep."""
    models = ["LightGCN", "SimGCL", "MF"]
    for num in (0, 1, 2, 9, 10, 11):
        make_run(tmp_path / f"{num}-job", _config(models[num % 3], num), 0.2)
    report = build_report([tmp_path])
    assert [r.path.name for g in report.groups for r in g.runs] == [
        "0-job",
        "9-job",
        "1-job",
        "10-job",
        "2-job",
        "11-job",
    ]
    assert [g.model for g in report.groups] == ["lightgcn", "simgcl", "mf"]


def test_unfinished_runs_listed_not_fatal(sweep: Path, tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.yaml").write_text("model: [unclosed\n")
    report = build_report([sweep, tmp_path / "broken"])
    status = {r.path.name: (r.status, r.error) for r in report.unfinished}
    assert status["7"] == ("running", "")
    assert status["8"] == ("failed", "CUDA OOM")
    assert status["broken"][0] == "failed"
    text = (write_report(report, tmp_path / "out")[0]).read_text()
    assert "running (no results.json)" in text and "failed: CUDA OOM" in text


def test_cli_end_to_end(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main([str(sweep), "--out", str(out), "--metric", "recall@20", "ndcg@20"]) == 0
    assert "9 runs, 3 configurations, 2 unfinished" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "report.csv", "loss_components.png", "sweep_ssl_weight.png"} <= names
    assert {"curve_recall@20.png", "curve_ndcg@20.png"} <= names
    assert all((out / n).stat().st_size > 1000 for n in names if n.endswith(".png"))

    md = (out / "report.md").read_text()
    assert "| configuration | seeds | recall@20 | ndcg@20 | p vs lightgcn |" in md
    assert "| lightgcn | 3 | 0.2100 ± 0.0100 | **0.1000 ± 0.0000** | baseline |" in md
    assert "| simgcl noise ssl_weight=0.5 | 1 | **0.3000 ± –** | 0.0500 ± – | n/a / n/a |" in md
    assert "| simgcl noise ssl_weight=0.1 | 3 | 0.2300 ± 0.0200 | 0.1000 ± 0.0000 | 0.0742" in md

    rows = list(csv.DictReader((out / "report.csv").open()))
    assert [r["label"] for r in rows][0] == "lightgcn"
    assert rows[2]["n_failed"] == "1" and rows[2]["n_running"] == "1"
    assert float(rows[1]["recall@20_p_vs_baseline"]) == pytest.approx(0.0742, abs=1e-4)
    assert float(rows[0]["recall@20_std"]) == pytest.approx(0.01)


def test_cli_wilcoxon_and_errors(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "w"
    assert main([str(sweep), "--out", str(out), "--test", "wilcoxon"]) == 0
    assert "Wilcoxon" in (out / "report.md").read_text()
    assert main([str(tmp_path / "empty"), "--out", str(out)]) == 1
    assert main([str(sweep), "--out", str(out), "--baseline", "nope"]) == 2


def test_sslrec_report_subcommand(sweep: Path, tmp_path: Path) -> None:
    """``python -m sslrec report ...`` (and the ``sslrec report`` script) reach the report CLI."""
    import subprocess
    import sys

    out = tmp_path / "via_sslrec"
    proc = subprocess.run(
        [sys.executable, "-m", "sslrec", "report", str(sweep), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| lightgcn | 3 |" in (out / "report.md").read_text()
