"""Reports of loss sweeps: labels name the loss, and each model is tested against its own BPR."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sslrec.report import build_report
from tests.test_report import SEEDS, _config, make_run

BPR = {"_target_": "sslrec.losses.BPRLoss", "reduction": "mean", "weight": 1.0}
HINGE = {"_target_": "sslrec.losses.HingeLoss", "margin": 1.0, "reduction": "mean", "weight": 1.0}
RECALL = {  # (model, loss) -> recall per seed
    ("MF", "bpr"): {1: 0.10, 2: 0.11, 3: 0.12},
    ("MF", "hinge"): {1: 0.11, 2: 0.13, 3: 0.15},
    ("LightGCN", "bpr"): {1: 0.20, 2: 0.21, 3: 0.22},
    ("LightGCN", "hinge"): {1: 0.20, 2: 0.20, 3: 0.20},
}


@pytest.fixture
def loss_sweep(tmp_path: Path) -> Path:
    for (model, loss), recalls in RECALL.items():
        for seed in SEEDS:
            cfg = _config(model, seed) | {"loss": BPR if loss == "bpr" else HINGE}
            make_run(tmp_path / f"{model}-{loss}-{seed}", cfg, recalls[seed])
    return tmp_path


def _t_pvalue(diffs: list[float]) -> float:
    from scipy import stats

    return float(stats.ttest_1samp(diffs, 0.0).pvalue)


def test_labels_name_the_loss_unless_it_is_bpr(loss_sweep: Path) -> None:
    labels = [r.label for r in build_report([loss_sweep]).rows]
    assert sorted(labels) == ["lightgcn", "lightgcn hinge", "mf", "mf hinge"]


def test_each_model_is_tested_against_its_own_bpr(loss_sweep: Path) -> None:
    rows = {r.label: r for r in build_report([loss_sweep], baseline=["mf", "lightgcn"]).rows}
    assert rows["mf hinge"].baseline == "mf" and rows["lightgcn hinge"].baseline == "lightgcn"
    assert math.isnan(rows["mf"].pvalue["recall@20"])  # the baseline itself
    diffs = [RECALL[("MF", "hinge")][s] - RECALL[("MF", "bpr")][s] for s in SEEDS]
    assert rows["mf hinge"].pvalue["recall@20"] == pytest.approx(_t_pvalue(diffs))
    # without the per-model baselines every row would be tested against lightgcn
    default = {r.label: r for r in build_report([loss_sweep]).rows}
    assert default["mf hinge"].baseline == "lightgcn"


def test_exact_label_wins_over_substring(loss_sweep: Path) -> None:
    """'mf' is a substring of no other label here, but 'lightgcn' is of 'lightgcn hinge'."""
    rows = {r.label: r for r in build_report([loss_sweep], baseline="lightgcn").rows}
    assert rows["lightgcn hinge"].baseline == "lightgcn"
