"""The trainer end to end on lastfm: learning, early stopping, resume after a crash, seeding."""

import json

import pytest
import torch

from sslrec.evaluation import Evaluator
from sslrec.graph import normalized_adjacency
from sslrec.models import LightGCN
from sslrec.train import Trainer, TrainerConfig, seed_everything


def make_trainer(data, out_dir, seed=1, **overrides):
    seed_everything(seed)
    u, i = (torch.from_numpy(a) for a in data.train_pairs())
    model = LightGCN(
        data.n_users, data.n_items, normalized_adjacency(u, i, data.n_users, data.n_items)
    )
    cfg = TrainerConfig(
        **{"epochs": 6, "eval_every": 2, "patience": 10, "progress": False} | overrides
    )
    return Trainer(model, data, Evaluator(data, ks=(20,)), cfg, out_dir, seed=seed)


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def strip_times(recs):
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in recs]


def test_fit_learns_and_writes_metrics(lastfm, tmp_path):
    trainer = make_trainer(lastfm, tmp_path)
    results = trainer.fit()
    recs = records(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in recs] == [2, 4, 6]
    assert all(r["split"] == "valid" and "recall@20" in r["metrics"] for r in recs)
    assert set(recs[0]["losses"]) == {"bpr", "reg", "total"}
    assert recs[-1]["losses"]["bpr"] < recs[0]["losses"]["bpr"]
    assert results["valid"]["recall@20"] == max(r["metrics"]["recall@20"] for r in recs)
    pop = trainer.evaluator.most_popular("test")["recall@20"]
    assert results["test"]["recall@20"] > 2 * pop
    assert results["protocol"].startswith("validation")


def test_best_state_restored_and_early_stop(lastfm, tmp_path):
    trainer = make_trainer(lastfm, tmp_path, epochs=8, eval_every=1, patience=1, lr=0.05)
    results = trainer.fit()
    recs = records(tmp_path / "metrics.jsonl")
    best = max(recs, key=lambda r: r["metrics"]["recall@20"])
    assert results["best_epoch"] == best["epoch"]
    # the restored model reproduces the best validation figure
    assert trainer.evaluate("valid")["recall@20"] == pytest.approx(best["metrics"]["recall@20"])
    if results["epochs_run"] < 8:  # stopped early: exactly one non-improving evaluation at the end
        assert recs[-1]["epoch"] == results["best_epoch"] + 1


@pytest.mark.parametrize("sampler", ["numpy", "device"])
def test_resume_after_crash_gives_identical_run(lastfm, tmp_path, monkeypatch, sampler):
    """Both samplers (the device sampler runs on the CPU here) checkpoint their streams."""
    full = make_trainer(lastfm, tmp_path / "full", sampler=sampler).fit()

    crashed = make_trainer(lastfm, tmp_path / "crash", sampler=sampler)
    original = Trainer.train_epoch

    def crash_at_5(self, epoch):
        if epoch == 5:
            raise KeyboardInterrupt("simulated kill")
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crash_at_5)
    with pytest.raises(KeyboardInterrupt):
        crashed.fit()
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert (tmp_path / "crash" / "checkpoint.pt").exists()
    assert [r["epoch"] for r in records(tmp_path / "crash" / "metrics.jsonl")] == [2, 4]

    # a fresh process would re-seed differently before resuming: the checkpoint must win
    resumed = make_trainer(lastfm, tmp_path / "crash", seed=1, resume=True, sampler=sampler)
    torch.manual_seed(12345)
    out = resumed.fit()
    assert out["test"] == full["test"]
    assert out["best_epoch"] == full["best_epoch"]
    assert (out["resumed_from_epoch"], full["resumed_from_epoch"]) == (4, 0)
    assert strip_times(records(tmp_path / "crash" / "metrics.jsonl")) == strip_times(
        records(tmp_path / "full" / "metrics.jsonl")
    )


def test_sampler_choice(lastfm, tmp_path):
    from sslrec.data import BPRSampler
    from sslrec.data.device_sampling import DeviceSampler

    assert isinstance(make_trainer(lastfm, tmp_path / "a").sampler, BPRSampler)  # auto, CPU
    device = make_trainer(lastfm, tmp_path / "b", sampler="device").sampler
    assert isinstance(device, DeviceSampler) and device.device.type == "cpu"


def test_resume_without_checkpoint_starts_fresh(lastfm, tmp_path):
    out = make_trainer(lastfm, tmp_path, epochs=2, resume=True).fit()
    assert out["epochs_run"] == 2 and out["resumed_from_epoch"] == 0


def test_same_seed_same_metrics_different_seed_differs(lastfm, tmp_path):
    a = make_trainer(lastfm, tmp_path / "a", seed=7, epochs=2).fit()
    b = make_trainer(lastfm, tmp_path / "b", seed=7, epochs=2).fit()
    c = make_trainer(lastfm, tmp_path / "c", seed=8, epochs=2).fit()
    assert a["test"] == b["test"]
    assert a["test"] != c["test"]


def test_paper_protocol_selects_on_test_and_says_so(lastfm, tmp_path):
    out = make_trainer(lastfm, tmp_path, epochs=2, protocol="paper").fit()
    assert out["selection_split"] == "test"
    assert "TEST" in out["protocol"]
    assert out["valid"] == {}
    assert all(r["split"] == "test" for r in records(tmp_path / "metrics.jsonl"))


def test_sgl_resume_redraws_the_same_views(tiny_dataset_dir, tmp_path, monkeypatch):
    from sslrec.augment import EdgeDropout
    from sslrec.data import DatasetSpec, load_dataset, split_validation
    from sslrec.models import SGL

    data = split_validation(
        load_dataset(DatasetSpec(name="tiny", path=str(tiny_dataset_dir))), 0.2, seed=0
    )

    def sgl_trainer(out, **overrides):
        seed_everything(4)
        u, i = (torch.from_numpy(a) for a in data.train_pairs())
        model = SGL(
            train_users=u,
            train_items=i,
            augmenter=EdgeDropout(0.2),
            n_users=data.n_users,
            n_items=data.n_items,
            embedding_dim=8,
            adjacency=normalized_adjacency(u, i, data.n_users, data.n_items),
        )
        cfg = TrainerConfig(
            **{
                "epochs": 4,
                "eval_every": 1,
                "batch_size": 64,
                "lr": 0.01,
                "progress": False,
                "metric": "recall@5",
            }
            | overrides
        )
        return Trainer(model, data, Evaluator(data, ks=(5,)), cfg, out, seed=4)

    full = sgl_trainer(tmp_path / "full").fit()
    original = Trainer.train_epoch

    def crash_at_3(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crash_at_3)
    with pytest.raises(KeyboardInterrupt):
        sgl_trainer(tmp_path / "crash").fit()
    monkeypatch.setattr(Trainer, "train_epoch", original)
    torch.manual_seed(999)
    resumed = sgl_trainer(tmp_path / "crash", resume=True).fit()
    assert resumed["test"] == full["test"]
    assert strip_times(records(tmp_path / "crash" / "metrics.jsonl")) == strip_times(
        records(tmp_path / "full" / "metrics.jsonl")
    )
