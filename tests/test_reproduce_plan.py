"""``experiments/reproduce_published.py``'s plan: a row starts under ``--budget`` only where its
estimated cost fits what is left (a run cut off at a lease's end is lost with its checkpoint)."""

from __future__ import annotations

import importlib.util
import io
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


def _run_folder(out: Path, name: str, results: dict | None, records: bool = True) -> None:
    folder = out / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"name: {name}\n")
    if records:
        (folder / "metrics.jsonl").write_text('{"epoch": 1}\n')
    if results is not None:
        (folder / "results.json").write_text(json.dumps(results))
    (folder / "checkpoint.pt").write_bytes(b"state")
    (out / f"{name}.log").write_text(f"log of {name}\n")


def test_finished_runs_travel_to_the_next_lease(rp, tmp_path, monkeypatch):
    """A lease's archive seeds the next lease's OUT_DIR with its finished runs (their files and
    logs, not their checkpoints, which the archive leaves out) and its machine lines; the
    unfinished and failed runs, the report and an unsafe member stay out; a run already there
    is kept. The plan then skips the carried runs."""
    import tarfile

    first = tmp_path / "lease1" / "published"
    first.mkdir(parents=True)
    done = {"status": "finished", "test": {"recall@20": 0.07, "ndcg@20": 0.06}}
    _run_folder(first, "simgcl_yelp2018-paper-s1", done)
    _run_folder(first, "xsimgcl_yelp2018-paper-s1", done)
    _run_folder(first, "sgl_ed_yelp2018-paper-s1", None)  # cut off: records, no results
    _run_folder(first, "lightgcn_yelp2018-paper-s2020", {"status": "failed", "reason": "x"})
    (first / "report").mkdir()
    (first / "report" / "report.md").write_text("old report")
    (first / "machine.txt").write_text("2026-12-08 10:00:00: h100 one\n")
    archive = tmp_path / "published.tar.gz"
    rp.pack(first, archive)
    with tarfile.open(archive, "r:gz") as tar:
        assert not any(n.endswith("checkpoint.pt") for n in tar.getnames())
    evil = tmp_path / "evil.tar.gz"  # a member that would land outside OUT_DIR
    with tarfile.open(archive, "r:gz") as src, tarfile.open(evil, "w:gz") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member))
        info = tarfile.TarInfo("published/../../escaped.txt")
        info.size = 3
        dst.addfile(info, io.BytesIO(b"bad"))

    out = tmp_path / "lease2" / "published"
    _run_folder(out, "xsimgcl_yelp2018-paper-s1", {"status": "finished", "test": {}})
    (out / "machine.txt").write_text("2026-12-08 10:00:00: h100 one\n")
    carried = rp.carry_finished(evil, out)
    assert carried == ["simgcl_yelp2018-paper-s1"]
    run = out / "simgcl_yelp2018-paper-s1"
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "metrics.jsonl", "results.json"]
    assert (out / "simgcl_yelp2018-paper-s1.log").read_text() == "log of simgcl_yelp2018-paper-s1\n"
    assert (
        json.loads((out / "xsimgcl_yelp2018-paper-s1" / "results.json").read_text())["test"] == {}
    )  # kept, not overwritten
    for absent in ("sgl_ed_yelp2018-paper-s1", "lightgcn_yelp2018-paper-s2020", "report"):
        assert not (out / absent).exists(), absent
    assert (
        not (tmp_path / "escaped.txt").exists()
        and not (tmp_path / "lease2" / "escaped.txt").exists()
    )
    assert (out / "machine.txt").read_text().count("h100 one") == 1
    assert rp.status(run) == "finished"

    # the plan skips what was carried: with a budget for one more row, SGL-ED s1 runs next
    started: list[str] = []

    def run_one(out_dir, experiment, protocol, seed, timeout):
        started.append(rp.run_name(experiment, protocol, seed))
        return "interrupted"

    fresh = tmp_path / "lease3" / "published"
    monkeypatch.setattr(rp, "run_one", run_one)
    monkeypatch.setattr(rp.subprocess, "run", lambda *a, **k: None)
    monkeypatch.setattr(
        sys,
        "argv",
        ["rp", str(fresh), "--resume-from", str(archive), "--budget", "200", "--only",
         "simgcl_yelp2018", "xsimgcl_yelp2018", "sgl_ed_yelp2018"],
    )  # fmt: skip
    rp.main()
    assert started[0] == "sgl_ed_yelp2018-paper-s1"
    assert (fresh / "xsimgcl_yelp2018-paper-s1" / "results.json").is_file()
