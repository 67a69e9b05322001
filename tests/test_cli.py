"""The command-line and output contract: ``python -m sslrec ...`` from any directory."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from sslrec.data import DatasetSpec, load_dataset, split_validation
from sslrec.evaluation import Evaluator
from sslrec.gemm import cpu_gemm_backend


def run_cli(cwd, *overrides):
    proc = subprocess.run(
        [sys.executable, "-m", "sslrec", *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("model", ["lightgcn", "mf"])
def test_contract_on_custom_dataset(tmp_path, tiny_dataset_dir, model):
    out = tmp_path / "run"
    proc = run_cli(
        tmp_path,
        "dataset=custom",
        f"dataset.path={tiny_dataset_dir}",
        f"model={model}",
        "trainer.epochs=3",
        "trainer.eval_every=1",
        "seed=3",
        f"hydra.run.dir={out}",
        "logger=none",
    )
    assert "recall@20" in proc.stdout and "most_popular" in proc.stdout
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["seed"] == 3 and cfg["dataset"]["path"] == str(tiny_dataset_dir)
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [1, 2, 3]
    for r in recs:
        assert {"epoch", "split", "losses", "metrics", "wall_seconds"} <= set(r)
        assert {"recall@20", "ndcg@20"} <= set(r["metrics"])
    res = json.loads((out / "results.json").read_text())
    assert {"valid", "test", "best_epoch", "protocol", "seconds"} <= set(res)
    assert res["status"] == "finished"
    assert not (out / ".lock").exists()  # released when the run ended
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.yaml", "results.json", "checkpoint.pt", "embeddings.npz"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert res["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert res["threads"] >= 1
    if res["device"] == "cpu":
        assert res["cpu_gemm"] == cpu_gemm_backend()
    assert {"recall@20", "ndcg@20", "recall@10", "ndcg@50"} <= set(res["test"])
    emb = np.load(out / "embeddings.npz")
    assert emb["user"].shape == (40, 64) and emb["item"].shape == (60, 64)

    # anyone can recompute the test metrics from the exported embeddings
    data = split_validation(
        load_dataset(DatasetSpec(name="custom", path=str(tiny_dataset_dir))),
        cfg["dataset"]["valid_fraction"],
        cfg["dataset"]["split_seed"],
    )
    again = Evaluator(data).evaluate(
        torch.from_numpy(emb["user"]), torch.from_numpy(emb["item"]), "test"
    )
    assert again == pytest.approx(res["test"])


def test_wandb_offline_logger_does_not_block(tmp_path, tiny_dataset_dir):
    out = tmp_path / "run"
    run_cli(
        tmp_path,
        "dataset=custom",
        f"dataset.path={tiny_dataset_dir}",
        "trainer.epochs=1",
        f"hydra.run.dir={out}",
        "logger=wandb",
        "logger.mode=offline",
    )
    assert list((out / "wandb").glob("offline-run-*"))
    assert (out / "results.json").exists()


def test_bad_input_fails_with_file_and_line(tmp_path, tiny_dataset_dir):
    (tiny_dataset_dir / "test.txt").write_text("0 1\n1 x\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sslrec",
            "dataset=custom",
            f"dataset.path={tiny_dataset_dir}",
            "logger=none",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert f"{tiny_dataset_dir / 'test.txt'}:2" in proc.stderr + proc.stdout


def test_bad_config_value_exits_1_naming_it_and_writes_nothing(tmp_path, tiny_dataset_dir):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sslrec",
            "dataset=custom",
            f"dataset.path={tiny_dataset_dir}",
            "trainer.batch_size=0",
            "logger=none",
            f"hydra.run.dir={out}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "trainer.batch_size=0: must be an integer >= 1" in proc.stderr
    assert not (out / "config.yaml").exists() and not (out / "metrics.jsonl").exists()


def test_triples_dataset_exports_raw_ids(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "csv"
    folder.mkdir()
    train, test = [], []
    for u in range(30):
        items = rng.choice(70, size=7, replace=False)
        train += [f"user{u},artist{i},5,{1000 + k}" for k, i in enumerate(items[:5])]
        test += [f"user{u},artist{i},4,{2000 + k}" for k, i in enumerate(items[5:])]
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")
    out = tmp_path / "run"
    run_cli(
        tmp_path,
        "dataset=custom",
        f"dataset.path={folder}",
        "dataset.format=triples",
        "trainer.epochs=1",
        f"hydra.run.dir={out}",
        "logger=none",
    )
    emb = np.load(out / "embeddings.npz")
    assert emb["user"].shape[0] == len(emb["user_raw_id"]) == 30
    assert emb["user_raw_id"][0] == "user0"
    assert set(emb["item_raw_id"]) == {line.split(",")[1] for line in train + test}


def test_wandb_logger_records_losses_every_epoch(tmp_path, monkeypatch):
    """Loss components go to the dashboard every epoch; metrics under their split."""
    from sslrec.logging import WandbLogger

    logged = []

    class FakeRun:
        summary: dict = {}

        def log(self, data, step):
            logged.append((step, data))

        def finish(self):
            pass

    logger = WandbLogger(mode="disabled")
    logger.run = FakeRun()
    logger.log({"epoch": 1, "split": "train", "losses": {"bpr": 0.5, "ssl": 2.0}})
    logger.log(
        {"epoch": 2, "split": "valid", "losses": {"bpr": 0.4}, "metrics": {"recall@20": 0.3}}
    )
    assert logged == [
        (1, {"epoch": 1, "loss/bpr": 0.5, "loss/ssl": 2.0}),
        (2, {"epoch": 2, "loss/bpr": 0.4, "valid/recall@20": 0.3}),
    ]


def test_wandb_failure_warns_and_stops_only_wandb(caplog):
    """A failing dashboard call (network, quota, a wandb bug) turns wandb off for the rest of
    the run with a warning; it never raises into training."""
    from sslrec.logging import WandbLogger

    calls = []

    class BrokenRun:
        @property
        def summary(self):
            raise RuntimeError("summary down")

        def log(self, data, step):
            calls.append(step)
            raise ConnectionError("wandb unreachable")

        def finish(self):
            calls.append("finish")

    logger = WandbLogger(mode="disabled")
    logger.run = BrokenRun()
    with caplog.at_level("WARNING", logger="sslrec"):
        logger.log({"epoch": 1, "split": "train", "losses": {"bpr": 0.5}})
        logger.log({"epoch": 2, "split": "train", "losses": {"bpr": 0.4}})  # wandb is off now
        logger.summary({"valid": {"recall@20": 0.3}})
        logger.finish()
    assert calls == [1, "finish"] and logger.run is None
    assert "wandb log failed, wandb stops for this run" in caplog.text
    logger.run = BrokenRun()  # the summary fails on its own
    logger.summary({"valid": {"recall@20": 0.3}, "best_epoch": 5})
    assert logger.run is None and "wandb summary failed" in caplog.text
