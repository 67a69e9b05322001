"""``experiments/reproduce_published.py``'s plan: a row starts under ``--budget`` only where its
estimated cost fits what is left (a run cut off at a lease's end is lost with its checkpoint)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def rp():
    spec = importlib.util.spec_from_file_location(
        "reproduce_published", ROOT / "experiments" / "reproduce_published.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_planned_row_can_be_priced(rp):
    """A row the estimate cannot price would stop the call on the GPU, after its start-up."""
    for experiment, _, _ in rp.PLAN:
        assert (ROOT / "conf" / "experiment" / f"{experiment}.yaml").is_file(), experiment
        assert experiment in rp.EXPECTED_EPOCHS, experiment
        assert rp.estimate(experiment, 0, {}) > rp.STARTUP_S, experiment
    assert set(rp.EXPECTED_EPOCHS) == set(rp.PUBLISHED)


def test_load_timings_reads_bench_epochs_rows(rp, tmp_path):
    text = "\n".join(
        [
            "1 passed",
            json.dumps({"variant": "lightgcn", "batches_per_epoch": 605, "full_epoch_s": 1.21,
                        "epoch_estimate_s": 9.0}),
            json.dumps({"variant": "simgcl", "batches_per_epoch": 605, "epoch_estimate_s": 2.42}),
            json.dumps({"variant": "simgcl", "batches_per_epoch": 605, "epoch_estimate_s": 6.05}),
            json.dumps({"variant": "simgcl", "batches_per_epoch": 605, "epoch_estimate_s": 3.025}),
            "{not json",
            "| lightgcn | 0.002 | 1.00 |",
        ]
    )  # fmt: skip
    (tmp_path / "bench_epoch.txt").write_text(text)
    timings = rp.load_timings([tmp_path / "bench_epoch.txt"])
    assert timings == pytest.approx({"lightgcn": 1.21 / 605, "simgcl": 3.025 / 605})


def test_estimate_by_hand(rp):
    timings = {"xsimgcl": 0.002, "lightgcn": 0.001}
    # xsimgcl_yelp2018: 30 epochs, an evaluation each, 605 batches of 2 ms
    assert rp.estimate("xsimgcl_yelp2018", 0, timings) == pytest.approx(
        30 + 30 * 0.002 * 605 + 30 * 0.5
    )
    # 10 done: 20 left
    assert rp.estimate("xsimgcl_yelp2018", 10, timings) == pytest.approx(
        30 + 20 * 0.002 * 605 + 20 * 0.5
    )
    # gowalla: 396 batches; LightGCN evaluates every 10 epochs
    assert rp.estimate("lightgcn_gowalla", 0, timings) == pytest.approx(
        30 + 1000 * 0.001 * 396 + 100 * 0.5
    )
    # without timings: the H100 target for a yelp2018 epoch
    assert rp.estimate("lightgcn_yelp2018", 0, {}) == pytest.approx(30 + 1000 * 1.0 + 100 * 0.5)
    # past the expected epochs: one more epoch
    assert rp.estimate("xsimgcl_yelp2018", 99, timings) == pytest.approx(30 + 0.002 * 605 + 0.5)
    assert rp.estimate("ease_yelp2018", 0, timings) == rp.STARTUP_S + rp.CLOSED_FORM_S
    assert rp.BATCHES == {"yelp2018": 605, "gowalla": 396}


def test_epochs_done(rp, tmp_path):
    assert rp.epochs_done(tmp_path) == 0
    (tmp_path / "metrics.jsonl").write_text(
        '{"epoch": 5, "split": "test"}\n{"epoch": 10}\ntruncated {"ep\n'
    )
    assert rp.epochs_done(tmp_path) == 10


def test_rows_that_cannot_finish_are_deferred(rp, tmp_path, monkeypatch):
    """Priced at the issue's targets, 330 s hold SimGCL's first seed (~165 s) and XSimGCL's
    (~90 s; each run takes 150 s here): LightGCN (~1,080 and ~735 s) is deferred, not started
    and cut off at the budget as before."""
    started: list[str] = []
    now = [0.0]

    def run_one(out, experiment, protocol, seed, timeout):
        now[0] += 150.0  # each run takes 150 s of the budget
        started.append(rp.run_name(experiment, protocol, seed))
        folder = out / rp.run_name(experiment, protocol, seed)
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(
            json.dumps({"status": "finished", "test": {"recall@20": 0.07, "ndcg@20": 0.06}})
        )
        return "finished"

    monkeypatch.setattr(rp, "run_one", run_one)
    monkeypatch.setattr(rp.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(rp.subprocess, "run", lambda *a, **k: None)  # no `sslrec report`
    monkeypatch.setattr(sys, "argv", ["rp", str(tmp_path / "out"), "--budget", "330"])
    assert rp.main() == 0
    assert started == ["simgcl_yelp2018-paper-s1", "xsimgcl_yelp2018-paper-s1"]
    results = (tmp_path / "out" / "results.md").read_text()
    assert "lightgcn_yelp2018-paper-s2020: ~1080 s needed" in results
    assert "lightgcn_gowalla-paper-s2020" in results and "simgcl_yelp2018 | paper | 1 |" in results
    # --no-fit starts the first row regardless
    started.clear()
    monkeypatch.setattr(sys, "argv", ["rp", str(tmp_path / "o2"), "--budget", "200", "--no-fit"])
    rp.main()
    assert started == ["lightgcn_yelp2018-paper-s2020"]
