"""Issue 17: a run that goes wrong says so, a run directory never mixes two runs, a checkpoint
never runs code, nothing is lost, a failed sweep exits non-zero and the report survives.

Most tests run :func:`sslrec.run.run` in-process on the 40-user tiny dataset (MF, a few
epochs); the command-line contract (exit status, the multirun summary) runs ``python -m
sslrec``. Symbols new with issue 17 are imported inside the tests that need them, so that this
module also runs against the code from before it (each test then fails on its behaviour).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sslrec.run import run

TINY = (
    "dataset=custom",
    "logger=none",
    "model=mf",
    "trainer.epochs=3",
    "trainer.eval_every=1",
    "trainer.batch_size=64",
    "trainer.progress=false",
    "threads=1",
)


def compose_cfg(data_dir: Path, *overrides: str):
    """The run config for the tiny dataset (no ``hydra`` node: run() is called directly)."""
    from hydra import compose

    return compose("config", overrides=[*TINY, f"dataset.path={data_dir}", *overrides])


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def strip_times(recs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in recs]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes below ``folder`` (to prove a refused run changed nothing)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def run_cli(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sslrec", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"OMP_NUM_THREADS": "1"} | (env or {}),
    )


@pytest.fixture
def nan_at(monkeypatch):
    """``nan_at(k)``: the k-th call of the model's loss (1-based, counted over the whole run)
    returns a NaN ``bpr``."""
    from sslrec.losses import Term
    from sslrec.models.base import EmbeddingRecommender

    original = EmbeddingRecommender.loss
    calls = {"n": 0, "at": set()}

    def loss(self, batch):
        terms = original(self, batch)
        calls["n"] += 1
        if calls["n"] in calls["at"]:
            bpr = terms["bpr"]
            terms["bpr"] = Term(bpr.value * float("nan"), bpr.weight)
        return terms

    monkeypatch.setattr(EmbeddingRecommender, "loss", loss)

    def arm(*k: int) -> None:
        calls["at"] |= set(k)

    return arm


# -- 1. non-finite training --------------------------------------------------------------------
def batches_per_epoch(data_dir: Path) -> int:
    """Training batches of 64 on the tiny dataset after its 10% validation split."""
    from sslrec.data import DatasetSpec, load_dataset, split_validation

    data = split_validation(load_dataset(DatasetSpec(name="t", path=str(data_dir))), 0.1, 0)
    return -(-data.train.nnz // 64)


def test_nonfinite_loss_stops_naming_epoch_batch_and_term(
    hydra_conf, tiny_dataset_dir, tmp_path, nan_at
):
    n = batches_per_epoch(tiny_dataset_dir)
    nan_at(2 * n + 2)  # epoch 3, batch 2
    out = tmp_path / "run"
    with pytest.raises(Exception, match="epoch 3, batch 2") as info:
        run(compose_cfg(tiny_dataset_dir, "trainer.epochs=4"), out)
    assert type(info.value).__name__ == "NonFiniteLossError"
    assert "bpr=nan" in str(info.value) and "total=nan" in str(info.value)
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "failed" and "epoch 3, batch 2" in results["reason"]
    assert "test" not in results and "valid" not in results  # never a metric
    assert (results["epoch"], results["batch"]) == (3, 2)
    # the NaN state was never saved: the checkpoint is epoch 2's, finite; no record of epoch 3
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["state"]["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert [r["epoch"] for r in records(out / "metrics.jsonl")] == [1, 2]
    assert not (out / "embeddings.npz").exists()


def test_nonfinite_run_exits_nonzero_and_report_lists_it_failed(tiny_dataset_dir, tmp_path):
    """lr = 1e20: the scores overflow after the first step. Before issue 17 this run exited 0
    with normal-looking metrics that the report averaged with the other seeds."""
    out = tmp_path / "nan"
    proc = run_cli(
        tmp_path,
        *TINY,
        f"dataset.path={tiny_dataset_dir}",
        "trainer.lr=1e20",
        f"hydra.run.dir={out}",
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "NonFiniteLossError" in proc.stderr and "non-finite" in proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "failed" and "test" not in results

    from sslrec.report import build_report, write_report

    report = build_report([tmp_path])
    assert report.rows[0].n_seeds == 0 and report.rows[0].n_failed == 1
    assert np.isnan(report.rows[0].mean["recall@20"])
    (failed,) = report.unfinished
    assert failed.status == "failed" and "non-finite" in failed.error
    md = write_report(report, tmp_path / "report")[0].read_text()
    assert "failed: non-finite" in md


def test_skip_batch_skips_the_step_and_counts_it(hydra_conf, tiny_dataset_dir, tmp_path, nan_at):
    n = batches_per_epoch(tiny_dataset_dir)
    nan_at(n + 1)  # epoch 2, batch 1
    out = tmp_path / "run"
    results = run(compose_cfg(tiny_dataset_dir, "trainer.on_nonfinite=skip_batch"), out)
    assert results["status"] == "finished" and results["skipped_batches"] == 1
    recs = records(out / "metrics.jsonl")
    assert [r["skipped_batches"] for r in recs] == [0, 1, 0]
    assert all(np.isfinite(r["losses"]["total"]) for r in recs)  # means over stepped batches


def test_skip_batch_stops_when_every_batch_is_bad(hydra_conf, tiny_dataset_dir, tmp_path, nan_at):
    n = batches_per_epoch(tiny_dataset_dir)
    nan_at(*range(n + 1, 2 * n + 1))  # all of epoch 2
    out = tmp_path / "run"
    with pytest.raises(Exception, match="every batch of epoch 2"):
        run(compose_cfg(tiny_dataset_dir, "trainer.on_nonfinite=skip_batch"), out)
    assert json.loads((out / "results.json").read_text())["status"] == "failed"


def test_nonfinite_representations_fail_the_evaluation(lastfm, tmp_path):
    from sslrec.evaluation import Evaluator
    from sslrec.models import MF
    from sslrec.train import Trainer, TrainerConfig

    model = MF(lastfm.n_users, lastfm.n_items)
    trainer = Trainer(model, lastfm, Evaluator(lastfm, ks=(20,)), TrainerConfig(), tmp_path)
    with torch.no_grad():
        model.item_embedding.weight[3, 0] = float("inf")
    with pytest.raises(Exception, match="non-finite values in model.item_embedding.weight"):
        trainer.evaluate("valid")


def count_host_reads(fn) -> int:
    """How many times ``fn()`` reads a tensor to the host (each is a sync on a GPU). Reads by
    torch.optim are left out: they are of the optimiser's step counters, which live on the CPU
    even when the model is on a GPU."""
    names = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")
    originals = {name: getattr(torch.Tensor, name) for name in names}
    reads = {"n": 0}

    def counting(original):
        def wrapper(self, *args, **kwargs):
            if "torch/optim" not in sys._getframe(1).f_code.co_filename:
                reads["n"] += 1
            return original(self, *args, **kwargs)

        return wrapper

    for name, original in originals.items():
        setattr(torch.Tensor, name, counting(original))
    try:
        fn()
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
    return reads["n"]


def test_default_mode_reads_the_device_once_per_epoch(tiny_dataset_dir, tmp_path):
    """No per-batch host sync with on_nonfinite=stop: the host reads of an epoch do not grow
    with its number of batches (skip_batch pays one per batch, as documented)."""
    from sslrec.data import DatasetSpec, load_dataset, split_validation
    from sslrec.evaluation import Evaluator
    from sslrec.models import MF
    from sslrec.train import Trainer, TrainerConfig

    data = split_validation(load_dataset(DatasetSpec(name="t", path=str(tiny_dataset_dir))), 0.1, 0)
    counts = {}
    for mode in ("stop", "skip_batch"):
        for batch_size in (64, 16):
            config = TrainerConfig(batch_size=batch_size, progress=False, on_nonfinite=mode)
            model = MF(data.n_users, data.n_items)
            evaluator = Evaluator(data, ks=(20,))
            trainer = Trainer(model, data, evaluator, config, tmp_path / f"{mode}{batch_size}")
            batches = len(trainer.sampler)
            counts[mode, batches] = count_host_reads(lambda t=trainer: t.train_epoch(1))
    (few, many) = sorted({b for _, b in counts})
    assert many >= 3 * few
    assert counts["stop", few] == counts["stop", many], counts
    assert counts["skip_batch", many] - counts["skip_batch", few] >= many - few, counts


@pytest.mark.parametrize("model", ["mf", "lightgcn", "sgl", "simgcl", "ncl", "mixgcf", "lightgcl"])
def test_paper_protocol_reports_what_its_best_epoch_scored(
    hydra_conf, tiny_dataset_dir, tmp_path, caplog, model
):
    """Under the paper protocol the best epoch is picked on test: the restored model scores on
    test exactly what that epoch's record says (no state outside state_dict), and no warning."""
    out = tmp_path / "run"
    with caplog.at_level("WARNING"):
        res = run(compose_cfg(tiny_dataset_dir, f"model={model}", "trainer.protocol=paper"), out)
    best = next(r for r in records(out / "metrics.jsonl") if r["epoch"] == res["best_epoch"])
    assert res["test"] == best["metrics"]
    assert "restored best model" not in caplog.text


def test_paper_protocol_warns_when_the_restored_model_scores_otherwise(
    hydra_conf, tiny_dataset_dir, tmp_path, caplog, monkeypatch
):
    """A restored model that scores other than its epoch (state outside state_dict, say) is
    reported as it scores now, with a warning naming both."""
    from sslrec.train import Trainer

    evaluate, calls = Trainer.evaluate, []

    def drifting(self, split):
        metrics = evaluate(self, split)
        calls.append(split)
        if len(calls) == 4:  # after the 3 epochs: the restored model's test evaluation
            metrics = metrics | {"recall@20": metrics["recall@20"] + 0.5}
        return metrics

    monkeypatch.setattr(Trainer, "evaluate", drifting)
    with caplog.at_level("WARNING"):
        res = run(compose_cfg(tiny_dataset_dir, "trainer.protocol=paper"), tmp_path / "run")
    assert calls == ["test"] * 4
    assert "restored best model" in caplog.text and "recall@20" in caplog.text
    best = records(tmp_path / "run" / "metrics.jsonl")[res["best_epoch"] - 1]
    assert res["test"]["recall@20"] == best["metrics"]["recall@20"] + 0.5


# -- 2. resume accepts only the same run -------------------------------------------------------
def test_resume_refuses_another_model_and_changes_nothing(hydra_conf, tiny_dataset_dir, tmp_path):
    out = tmp_path / "run"
    run(compose_cfg(tiny_dataset_dir, "model=lightgcn", "trainer.epochs=2"), out)
    before = snapshot(out)
    cfg = compose_cfg(tiny_dataset_dir, "model=mf", "trainer.lr=0.01", "trainer.resume=true")
    with pytest.raises(Exception, match="different run") as info:
        run(cfg, out)
    message = str(info.value)
    assert "model._target_: 'sslrec.models.LightGCN' → 'sslrec.models.MF'" in message
    assert "trainer.lr: 0.001 → 0.01" in message
    assert "trainer.epochs" in message  # the keys that may change are listed
    assert snapshot(out) == before  # config.yaml included


def test_resume_refuses_changed_data(hydra_conf, tiny_dataset_dir, tmp_path):
    out = tmp_path / "run"
    run(compose_cfg(tiny_dataset_dir, "trainer.epochs=2"), out)
    with (tiny_dataset_dir / "test.txt").open("a") as fh:
        fh.write("0 59\n")
    with pytest.raises(Exception, match="data test.txt: .* bytes, sha256"):
        run(compose_cfg(tiny_dataset_dir, "trainer.epochs=2", "trainer.resume=true"), out)


def test_resume_may_extend_epochs_and_equals_an_uninterrupted_run(
    hydra_conf, tiny_dataset_dir, tmp_path
):
    full = run(
        compose_cfg(tiny_dataset_dir, "trainer.epochs=4", "trainer.patience=3"), tmp_path / "full"
    )
    out = tmp_path / "part"
    run(compose_cfg(tiny_dataset_dir, "trainer.epochs=2"), out)
    resumed = run(
        compose_cfg(
            tiny_dataset_dir, "trainer.epochs=4", "trainer.patience=3", "trainer.resume=true"
        ),
        out,
    )
    assert resumed["test"] == full["test"]
    assert strip_times(records(out / "metrics.jsonl")) == strip_times(
        records(tmp_path / "full" / "metrics.jsonl")
    )
    assert yaml.safe_load((out / "config.yaml").read_text())["trainer"]["epochs"] == 4


def test_resume_without_checkpoint_checks_config_yaml(hydra_conf, tiny_dataset_dir, tmp_path):
    """A run killed before its first checkpoint left config.yaml: resuming it with another
    config is refused; with the same config it starts over cleanly."""
    out = tmp_path / "run"
    out.mkdir()
    cfg = compose_cfg(tiny_dataset_dir, "trainer.epochs=1", "trainer.resume=true")
    from omegaconf import OmegaConf

    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True).replace("0.001", "0.5"))
    with pytest.raises(Exception, match="trainer.lr: 0.5 → 0.001"):
        run(cfg, out)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (out / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "split": "valid"}) + "\n")
    run(cfg, out)
    assert [r["epoch"] for r in records(out / "metrics.jsonl")] == [1]
    assert "metrics" in records(out / "metrics.jsonl")[0]  # the stale record was replaced


# -- 3. one run per directory ------------------------------------------------------------------
def test_fresh_run_refuses_another_runs_directory(hydra_conf, tiny_dataset_dir, tmp_path):
    out = tmp_path / "run"
    run(compose_cfg(tiny_dataset_dir, "trainer.epochs=2"), out)
    before = snapshot(out)
    with pytest.raises(Exception, match="already holds another run's outputs"):
        run(compose_cfg(tiny_dataset_dir, "trainer.epochs=2", "seed=5"), out)
    assert snapshot(out) == before


def test_overwrite_clears_the_old_outputs_first(hydra_conf, tiny_dataset_dir, tmp_path):
    out = tmp_path / "run"
    run(compose_cfg(tiny_dataset_dir, "trainer.epochs=3"), out)
    run(compose_cfg(tiny_dataset_dir, "trainer.epochs=1", "trainer.overwrite=true"), out)
    assert [r["epoch"] for r in records(out / "metrics.jsonl")] == [1]
    assert yaml.safe_load((out / "config.yaml").read_text())["trainer"]["epochs"] == 1


@pytest.mark.parametrize("model", ["mf", "ease"])
def test_resuming_a_finished_run_trains_nothing_and_writes_nothing(
    hydra_conf, tiny_dataset_dir, tmp_path, monkeypatch, model
):
    """A resumed sweep reruns only what is missing: a finished run (trained, or a closed-form
    fit) is returned as its results.json says, every file left as it was."""
    from sslrec.train import Trainer

    out = tmp_path / "run"
    first = run(compose_cfg(tiny_dataset_dir, f"model={model}"), out)
    before = snapshot(out)

    def refit(*args, **kwargs):
        raise AssertionError("a finished run was fitted again")

    monkeypatch.setattr(Trainer, "fit", refit)
    # threads may change on resume (RESUMABLE): still the same, finished run
    again = run(
        compose_cfg(tiny_dataset_dir, f"model={model}", "trainer.resume=true", "threads=2"), out
    )
    assert again == json.loads(json.dumps(first))
    assert snapshot(out) == before


def test_resume_finishes_a_run_whose_results_are_not_its_last(
    hydra_conf, tiny_dataset_dir, tmp_path
):
    """results.json of an earlier stage (or a failed one) is no reason to skip: the resume
    evaluates the checkpoint's run and writes its results."""
    out = tmp_path / "run"
    first = run(compose_cfg(tiny_dataset_dir), out)
    stale = first | {"epochs_run": 1}
    (out / "results.json").write_text(json.dumps(stale))
    again = run(compose_cfg(tiny_dataset_dir, "trainer.resume=true"), out)
    assert again["epochs_run"] == 3 and again["test"] == first["test"]
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 3
    (out / "results.json").write_text(json.dumps(first | {"status": "failed"}))
    assert run(compose_cfg(tiny_dataset_dir, "trainer.resume=true"), out)["status"] == "finished"


def test_a_resume_maps_the_checkpoint_and_reads_it_only_to_train_on(
    hydra_conf, tiny_dataset_dir, tmp_path, monkeypatch
):
    """Whether a run has finished is decided from a mapped checkpoint (EASE's fitted matrix
    alone can be several GB); only a run that trains on reads it whole."""
    import sslrec.run as run_module

    reads = []
    read_checkpoint = run_module.read_checkpoint

    def recording(path, mmap=False):
        reads.append(mmap)
        return read_checkpoint(path, mmap=mmap)

    monkeypatch.setattr(run_module, "read_checkpoint", recording)
    out = tmp_path / "run"
    first = run(compose_cfg(tiny_dataset_dir, "trainer.epochs=2"), out)
    assert reads == []
    assert run(compose_cfg(tiny_dataset_dir, "trainer.epochs=2", "trainer.resume=true"), out) == (
        json.loads(json.dumps(first))
    )
    assert reads == [True]
    more = run(compose_cfg(tiny_dataset_dir, "trainer.epochs=3", "trainer.resume=true"), out)
    assert reads == [True, True, False] and more["epochs_run"] == 3


_RSS_AFTER_LOAD = """
import sys
from sslrec.io import load_torch
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
before = rss_mb()
ckpt = load_torch(sys.argv[1], mmap=sys.argv[2] == "1")
assert ckpt["state"]["epoch"] == 7
print(rss_mb() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_a_mapped_load_reads_no_tensor_that_is_not_used(tmp_path):
    """``load_torch(mmap=True)`` of a checkpoint with 256 MiB of weights: reading its
    bookkeeping costs no resident memory for them; the plain load reads them all."""
    from sslrec.io import load_torch

    path = tmp_path / "checkpoint.pt"
    weights = torch.arange(64 << 20, dtype=torch.float32)
    torch.save({"state": {"epoch": 7}, "model": {"w": weights}}, path)
    grown = {}
    for mmap in (True, False):
        proc = subprocess.run(
            [sys.executable, "-c", _RSS_AFTER_LOAD, str(path), str(int(mmap))],
            capture_output=True,
            text=True,
            check=True,
        )
        grown[mmap] = float(proc.stdout)
    assert grown[True] < 32 and grown[False] > 200, grown
    mapped = load_torch(path, mmap=True)["model"]["w"]
    assert torch.equal(mapped, weights)
    mapped.add_(1.0)  # copy-on-write: the file keeps its bytes
    assert torch.equal(load_torch(path)["model"]["w"], weights)


def test_a_mapped_load_reads_a_legacy_file_whole(tmp_path):
    """torch's legacy (non-zip) format cannot be mapped: such a file is read as before."""
    from sslrec.io import load_torch

    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(3)}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(load_torch(path, mmap=True)["w"], torch.ones(3))


def test_second_run_on_a_locked_directory_fails_naming_the_pid(
    hydra_conf, tiny_dataset_dir, tmp_path, monkeypatch
):
    import sslrec.run as run_module
    from sslrec.train import Trainer

    # refused at once: before the data is read, so no epoch is trained either
    calls = []
    load_dataset, train_epoch = run_module.load_dataset, Trainer.train_epoch

    def reading(*args, **kwargs):
        calls.append("load_dataset")
        return load_dataset(*args, **kwargs)

    def training(self, *args, **kwargs):
        calls.append("train_epoch")
        return train_epoch(self, *args, **kwargs)

    monkeypatch.setattr(run_module, "load_dataset", reading)
    monkeypatch.setattr(Trainer, "train_epoch", training)
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(out / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, str(os.getpid()).encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(Exception, match=f"in use by another run \\(pid {holder.pid}"):
            run(compose_cfg(tiny_dataset_dir), out)
        assert calls == []  # at once: neither the data read nor an epoch trained
        assert not (out / "config.yaml").exists() and not (out / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_dead_process_is_taken_over(hydra_conf, tiny_dataset_dir, tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(f"{dead.pid}\n")
    with caplog.at_level("WARNING", logger="sslrec"):
        results = run(compose_cfg(tiny_dataset_dir, "trainer.epochs=1"), out)
    assert results["status"] == "finished"
    assert f"stale lock {out / '.lock'} of pid {dead.pid}" in caplog.text
    assert not (out / ".lock").exists()  # released at the end


# -- 4. a checkpoint never runs code -----------------------------------------------------------
class _Marker:
    """Pickles as a call of ``open(path, "w")``: unpickling it creates the marker file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_checkpoint_is_refused_and_runs_nothing(hydra_conf, tiny_dataset_dir, tmp_path):
    out = tmp_path / "run"
    run(compose_cfg(tiny_dataset_dir, "trainer.epochs=1"), out)
    marker = tmp_path / "PWNED"
    keys = ("model", "optimizer", "sampler_rng", "rng")
    torch.save(
        {k: {} for k in keys} | {"state": {"payload": _Marker(marker)}}, out / "checkpoint.pt"
    )
    before = snapshot(out)
    with pytest.raises(Exception, match="not a plain-data torch file") as info:
        run(compose_cfg(tiny_dataset_dir, "trainer.epochs=2", "trainer.resume=true"), out)
    assert "open" in str(info.value)  # names what it refused
    assert not marker.exists()
    assert snapshot(out) == before

    from sslrec.io import load_torch

    for mmap in (False, True):
        with pytest.raises(Exception, match="not a plain-data torch file"):
            load_torch(out / "checkpoint.pt", mmap=mmap)
    assert not marker.exists()


def test_checkpoint_is_plain_data_with_the_stable_keys(hydra_conf, tiny_dataset_dir, tmp_path):
    out = tmp_path / "run"
    run(compose_cfg(tiny_dataset_dir, "trainer.epochs=2"), out)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)  # no allowlist at all
    assert (
        set(ckpt["model"])
        == set(ckpt["state"]["best_model"])
        == {
            "user_embedding.weight",
            "item_embedding.weight",
        }
    )
    assert ckpt["fingerprint"]["config"]["model._target_"] == "sslrec.models.MF"
    assert set(ckpt["fingerprint"]["data"]) == {"train.txt", "test.txt"}

    from sslrec.io import load_torch

    assert load_torch(out / "checkpoint.pt")["state"]["best_epoch"] >= 1


def test_no_loader_in_the_package_can_run_code():
    """Audit: every torch.load is weights_only=True, np.load never allows pickles, yaml is
    read with safe_load, nothing unpickles or evaluates strings."""
    import re

    root = Path(__file__).resolve().parents[1] / "sslrec"
    forbidden = re.compile(
        r"weights_only=False|allow_pickle=True|yaml\.(load|unsafe_load|full_load)\(|"
        r"pickle\.loads?\(|joblib\.load\(|read_pickle\(|(?<![\w.])(eval|exec)\("
    )
    hits = [
        f"{path.relative_to(root)}: {match.group(0)}"
        for path in sorted(root.rglob("*.py"))
        for match in forbidden.finditer(path.read_text())
    ]
    assert hits == []
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert text.count("torch.load(") <= text.count("weights_only=True"), path


# -- 6. nothing lost ---------------------------------------------------------------------------
def test_record_is_written_before_its_checkpoint(
    hydra_conf, tiny_dataset_dir, tmp_path, monkeypatch
):
    from sslrec.train import Trainer

    full = run(compose_cfg(tiny_dataset_dir), tmp_path / "full")
    original = Trainer.save_checkpoint

    def killed_at_2(self):
        if self.state["epoch"] == 2:
            raise KeyboardInterrupt("killed between the record and the checkpoint")
        original(self)

    monkeypatch.setattr(Trainer, "save_checkpoint", killed_at_2)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(compose_cfg(tiny_dataset_dir), out)
    assert [r["epoch"] for r in records(out / "metrics.jsonl")] == [1, 2]
    monkeypatch.setattr(Trainer, "save_checkpoint", original)
    resumed = run(compose_cfg(tiny_dataset_dir, "trainer.resume=true"), out)
    assert resumed["test"] == full["test"]
    assert strip_times(records(out / "metrics.jsonl")) == strip_times(
        records(tmp_path / "full" / "metrics.jsonl")
    )


def test_resume_tolerates_a_truncated_last_line_and_cleans_temporaries(
    hydra_conf, tiny_dataset_dir, tmp_path
):
    full = run(compose_cfg(tiny_dataset_dir), tmp_path / "full")
    out = tmp_path / "run"
    run(compose_cfg(tiny_dataset_dir, "trainer.epochs=2"), out)
    with (out / "metrics.jsonl").open("a") as fh:
        fh.write('{"epoch": 3, "split": "va')  # a kill inside the append
    leftovers = [out / ".checkpoint.pt.k1ll3d.tmp", out / ".results.json.x0x0.tmp"]
    for tmp in leftovers:
        tmp.write_bytes(b"partial")
    resumed = run(compose_cfg(tiny_dataset_dir, "trainer.resume=true"), out)
    assert resumed["test"] == full["test"]
    assert strip_times(records(out / "metrics.jsonl")) == strip_times(
        records(tmp_path / "full" / "metrics.jsonl")
    )
    assert not any(tmp.exists() for tmp in leftovers)


def test_append_after_a_garbled_line_starts_a_new_line(tmp_path):
    from sslrec.io import append_jsonl, read_jsonl

    path = tmp_path / "m.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2, "spl')
    append_jsonl({"epoch": 2}, path)
    assert read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_respect_the_umask(tmp_path, umask):
    from sslrec.io import save_json, save_text

    old = os.umask(umask)
    try:
        save_text("x", tmp_path / "a.txt")
        save_json({}, tmp_path / "b.json")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


# -- 7. sweeps and the report ------------------------------------------------------------------
def test_failed_sweep_job_makes_the_multirun_exit_nonzero(tiny_dataset_dir, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        tmp_path,
        "--multirun",
        *TINY,
        f"dataset.path={tiny_dataset_dir}",
        "trainer.epochs=1",
        "seed=1,-1,2",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"sweep summary: 2 ok, 1 failed ({sweep})" in proc.stdout
    assert f"failed {sweep / '1'}: sslrec.config.ConfigError: seed=-1" in proc.stdout
    error = (sweep / "1" / "error.txt").read_text()
    assert error.startswith("Traceback") and "seed=-1" in error
    assert (sweep / "1" / "config.yaml").exists()  # so that the report groups it
    for ok in ("0", "2"):
        assert json.loads((sweep / ok / "results.json").read_text())["status"] == "finished"


def test_sweep_summary_judges_only_this_multiruns_jobs(tmp_path, capsys):
    from omegaconf import OmegaConf

    from sslrec import multirun

    sweep = tmp_path / "sweep"
    old = sweep / "0"
    (old / ".hydra").mkdir(parents=True)
    (old / ".hydra" / "overrides.yaml").write_text("[]\n")
    (old / "results.json").write_text('{"status": "finished"}')
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    summary = multirun.SweepSummary()
    summary.on_multirun_start(cfg)
    time.sleep(0.01)
    jobs = {
        "0": None,  # rerun into a folder of another run: refused, wrote nothing of its own
        "1": '{"status": "finished", "test": {}}',
        "2": '{"status": "failed", "reason": "non-finite loss in epoch 3"}',
        "3": "\x00\x01binary",
    }
    for name, results in jobs.items():
        folder = sweep / name
        (folder / ".hydra").mkdir(parents=True, exist_ok=True)
        (folder / ".hydra" / "overrides.yaml").write_text(f"[seed={name}]\n")
        if results is not None:
            (folder / "results.json").write_text(results)
    nested = sweep / "1" / "wandb" / "offline-run-1" / "files"  # not a job of its own
    nested.mkdir(parents=True)
    (nested / "config.yaml").write_text("{}\n")
    (sweep / "0" / "sslrec.log").write_text(
        "[2026-01-01 00:00:00,000][sslrec][ERROR] - job 0 failed, left untouched: RunDirError\n"
    )
    (sweep / "4").mkdir()
    (sweep / "4" / "error.txt").write_text(
        'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad value\n'
    )
    summary.on_multirun_end(cfg)
    out = capsys.readouterr().out
    assert "sweep summary: 1 ok, 4 failed" in out
    failed = dict(multirun.FAILED)
    assert "RunDirError" in failed[sweep / "0"]
    assert failed[sweep / "2"] == "non-finite loss in epoch 3"
    assert failed[sweep / "3"].startswith("unreadable results.json")
    assert failed[sweep / "4"] == "ValueError: bad value"
    multirun.FAILED.clear()


def test_report_survives_broken_run_folders(tmp_path):
    from sslrec.report import build_report, write_report

    cfg = {"model": {"_target_": "sslrec.models.LightGCN"}, "seed": 1, "dataset": {"name": "x"}}
    good = {"status": "finished", "test": {"recall@20": 0.2, "ndcg@20": 0.1}}
    row = json.dumps({"epoch": 1, "split": "test", "metrics": {"recall@20": 0.1}})
    folders = {
        "ok": (yaml.safe_dump(cfg), json.dumps(good), row + "\n"),
        "binary_results": (yaml.safe_dump(cfg | {"seed": 2}), b"\x89PNG\x00\xff", row),
        "empty_results": (yaml.safe_dump(cfg | {"seed": 3}), "", row),
        "list_results": (yaml.safe_dump(cfg | {"seed": 4}), "[1, 2]", row),
        "truncated_metrics": (yaml.safe_dump(cfg | {"seed": 5}), json.dumps(good), row + '\n{"ep'),
        "binary_metrics": (yaml.safe_dump(cfg | {"seed": 6}), json.dumps(good), b"\xff\xfe\x00"),
        "binary_config": (b"\xff\xfe\x00\x01", json.dumps(good), row),
        "list_config": ("- a\n- b\n", json.dumps(good), row),
        "failed_nan": (
            yaml.safe_dump(cfg | {"seed": 7}),
            json.dumps({"status": "failed", "reason": "non-finite loss in epoch 2"}),
            row,
        ),
    }
    for name, (config, results, metrics) in folders.items():
        folder = tmp_path / name
        folder.mkdir()
        for file, content in (
            ("config.yaml", config),
            ("results.json", results),
            ("metrics.jsonl", metrics),
        ):
            data = content.encode() if isinstance(content, str) else content
            (folder / file).write_bytes(data)
    report = build_report([tmp_path])
    runs = {r.path.name: r for g in report.groups for r in g.runs}
    assert {n for n, r in runs.items() if r.status == "finished"} == {
        "ok",
        "truncated_metrics",
        "binary_metrics",
    }
    assert runs["binary_results"].error.startswith("unreadable results.json")
    assert runs["empty_results"].error.startswith("unreadable results.json")
    assert runs["list_results"].error.startswith("unreadable results.json")
    assert runs["binary_config"].error.startswith("unreadable config.yaml")
    assert runs["list_config"].error.startswith("unreadable config.yaml")
    assert runs["failed_nan"].error == "non-finite loss in epoch 2"
    assert len(runs["truncated_metrics"].history) == 1
    md = write_report(report, tmp_path / "out")[0].read_text()
    assert "## Failed runs (6)" in md and "failed: non-finite loss in epoch 2" in md


def test_report_shows_the_exception_line_of_a_traceback(tmp_path):
    from sslrec.report import build_report

    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "config.yaml").write_text("seed: 1\nmodel: {_target_: sslrec.models.MF}\n")
    (folder / "error.txt").write_text(
        "Traceback (most recent call last):\n"
        '  File "sslrec/run.py", line 3, in run\n'
        "    raise KeyError('x')\n"
        "KeyError: 'x'\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n"
        '  File "sslrec/run.py", line 5, in run\n'
        "sslrec.config.ConfigError: trainer.batch_size=0: must be an integer >= 1\n"
    )
    (run_,) = build_report([tmp_path]).unfinished
    assert run_.error == "sslrec.config.ConfigError: trainer.batch_size=0: must be an integer >= 1"
