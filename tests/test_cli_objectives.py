"""The opened objective from the command line: every loss and the classic models run, write the
usual outputs and log each loss term under its name; for inner-product models the test metrics
in results.json equal a recomputation from embeddings.npz."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from sslrec.data import DatasetSpec, load_dataset, split_validation
from sslrec.evaluation import Evaluator
from tests.test_cli import run_cli

# (overrides, the loss terms every metrics.jsonl record must name)
COMMANDS = {
    "hinge": (["loss=hinge"], {"hinge", "reg", "total"}),
    "softmax-k64": (["loss=softmax", "trainer.num_negatives=64"], {"softmax", "reg", "total"}),
    "triplet": (["loss=triplet"], {"triplet", "reg", "total"}),
    "contrastive": (["loss=contrastive"], {"contrastive", "reg", "total"}),
    "listwise": (["loss=listwise", "trainer.num_negatives=4"], {"listwise", "reg", "total"}),
    "joint": (["loss=joint"], {"bpr", "bce", "reg", "total"}),
    "neumf": (["model=neumf"], {"bce", "reg", "total"}),
    "fm": (["model=fm"], {"bpr", "reg", "total"}),
    "simgcl-hinge": (["model=simgcl", "loss=hinge"], {"hinge", "ssl", "reg", "total"}),
    # the model zoo: each named term in every record (NCL's proto is 0 during its warm-up)
    "ncl": (["model=ncl"], {"bpr", "ssl", "proto", "reg", "total"}),
    "directau": (["model=directau"], {"align", "uniform", "reg", "total"}),
    "simplex": (["model=simplex"], {"ccl", "reg", "total"}),
    "lightgcl": (["model=lightgcl"], {"bpr", "ssl", "reg", "total"}),
    "lightgcl-paper": (["model=lightgcl", "model.setting=paper"], {"bpr", "ssl", "reg", "total"}),
    "lightgcnpp": (["model=lightgcnpp"], {"bpr", "reg", "total"}),
    "lightgcn-norm": (
        ["model=lightgcn", "model.norm_alpha=0.6", "model.norm_beta=-0.1", "model.gamma=0.2"],
        {"bpr", "reg", "total"},
    ),
    "mixgcf": (["model=mixgcf"], {"bpr", "reg", "total"}),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_objective_runs_from_the_cli(tmp_path, tiny_dataset_dir, name):
    overrides, terms = COMMANDS[name]
    out = tmp_path / "run"
    run_cli(
        tmp_path,
        "dataset=custom",
        f"dataset.path={tiny_dataset_dir}",
        *overrides,
        "trainer.epochs=2",
        "trainer.eval_every=1",
        "trainer.batch_size=64",
        f"hydra.run.dir={out}",
        "logger=none",
        "threads=1",
    )
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert set(record["losses"]) == terms, record["losses"]
        assert all(np.isfinite(v) for v in record["losses"].values())
    results = json.loads((out / "results.json").read_text())
    assert {"recall@20", "ndcg@20"} <= set(results["test"])
    emb = np.load(out / "embeddings.npz")
    assert emb["user"].shape[0] == 40 and emb["item"].shape[0] == 60
    if results["scoring"] != "inner_product":
        assert name == "neumf"  # the only network-scored model here
        return
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    data = split_validation(
        load_dataset(DatasetSpec(name="custom", path=str(tiny_dataset_dir))),
        cfg["dataset"]["valid_fraction"],
        cfg["dataset"]["split_seed"],
    )
    again = Evaluator(data).evaluate(
        torch.from_numpy(emb["user"]), torch.from_numpy(emb["item"]), "test"
    )
    assert again == pytest.approx(results["test"], abs=1e-6)


@pytest.mark.parametrize("model", ["ease", "itemknn"])
def test_closed_form_model_runs_on_a_custom_dataset(tmp_path, tiny_dataset_dir, model):
    """Fitted once: one record without loss terms, and the usual outputs."""
    out = tmp_path / "run"
    run_cli(
        tmp_path,
        "dataset=custom",
        f"dataset.path={tiny_dataset_dir}",
        f"model={model}",
        f"hydra.run.dir={out}",
        "logger=none",
        "threads=1",
    )
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["losses"]) for r in records] == [(1, {})]
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "finished" and {"recall@20", "ndcg@20"} <= set(results["test"])
    assert (out / "embeddings.npz").is_file() and (out / "checkpoint.pt").is_file()
