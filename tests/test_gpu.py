"""The accelerator path (skipped without CUDA; ``experiments/gpu_check.sh`` runs it on a lent
GPU): no host sync inside a training step, the device sampler's guarantees on the device, the
fused kernels against their references, and a short run end to end."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import TRAINED_MODELS, seeded_steps

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _model_and_batches(model_name: str, tiny_dataset_dir, k: int = 1):
    from sslrec.data import DatasetSpec
    from sslrec.data.device_sampling import DeviceSampler
    from sslrec.factory import build_model
    from sslrec.run import load_data
    from tests.conftest import compose_run_config

    cfg = compose_run_config(f"model={model_name}")
    data = load_data(DatasetSpec(name="tiny", path=str(tiny_dataset_dir)), "validation")
    torch.manual_seed(0)
    model = build_model(cfg.model, data, torch.device("cuda"))
    k = getattr(model, "required_negatives", None) or k  # MixGCF draws from its own n_negs
    sampler = DeviceSampler(data.train, 32, seed=0, num_negatives=k, device="cuda")
    return model, sampler, data


@pytest.mark.parametrize("model_name", TRAINED_MODELS)
def test_a_training_step_never_syncs_the_host(hydra_conf, tiny_dataset_dir, model_name):
    """Inside the step (loss, total, backward, fused Adam) any device→host sync raises."""
    model, sampler, _ = _model_and_batches(model_name, tiny_dataset_dir)
    _steps_without_syncs(model, list(sampler.epoch())[:3])


@pytest.mark.parametrize("model_name", TRAINED_MODELS)
def test_a_full_size_step_never_syncs_the_host(lastfm, model_name):
    """The same at yelp2018's batch of 2,048 on lastfm: CUDA picks some kernels by size (an
    embedding's backward sorts its ids past 3,072 of them, with cub's scans), which the tiny
    graph's batches of 32 never reach."""
    from sslrec.data.device_sampling import DeviceSampler
    from sslrec.factory import build_model
    from tests.conftest import compose_quiet

    torch.manual_seed(0)
    model = build_model(compose_quiet(f"model={model_name}").model, lastfm, torch.device("cuda"))
    k = getattr(model, "required_negatives", None) or 1
    sampler = DeviceSampler(lastfm.train, 2048, seed=0, num_negatives=k, device="cuda")
    batches = [b for b, _ in zip(sampler.epoch(), range(2), strict=False)]
    assert batches[0].users.numel() == 2048
    _steps_without_syncs(model, batches)


def _steps_without_syncs(model, batches) -> None:
    from sslrec.config import TrainerConfig
    from sslrec.losses import total
    from sslrec.train.trainer import make_optimizer

    opt = make_optimizer(model, TrainerConfig())
    model.train()
    model.start_epoch()  # view redraws may sync: once per epoch, outside the step
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for batch in batches:
            loss = total(model.loss(batch))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss)


@pytest.mark.parametrize("model_name", TRAINED_MODELS)
def test_a_seeded_run_repeats_on_the_device(lastfm, model_name):
    """The same seed gives the same losses, parameters and metrics, bit for bit, after three
    steps at a batch of 2,048 and an evaluation: no kernel of the step sums in an order that
    changes from run to run (CUDA's atomics; torch's deterministic mode is not set)."""
    first, second = (seeded_steps(model_name, lastfm, "cuda") for _ in range(2))
    assert torch.equal(first[0], second[0]), f"losses {first[0]} then {second[0]}"
    differ = [n for n, p in first[1].items() if not torch.equal(p, second[1][n])]
    assert not differ, f"parameters differ: {differ}"
    assert first[2] == second[2]


def test_device_sampler_on_the_device(tiny_dataset_dir, hydra_conf):
    _, sampler, data = _model_and_batches("lightgcn", tiny_dataset_dir, k=3)
    dense = torch.from_numpy(data.train.toarray() > 0).cuda()
    for batch in sampler.epoch():
        assert batch.neg.is_cuda and batch.neg.shape == (batch.users.numel(), 3)
        assert not dense[batch.users[:, None], batch.neg].any()
        assert dense[batch.users, batch.pos].all()


def test_tiled_logsumexp_on_the_device():
    from sslrec.losses.tiled import tiled_logsumexp

    torch.manual_seed(0)
    a = torch.randn(300, 16, device="cuda", dtype=torch.float64, requires_grad=True)
    c = torch.randn(1000, 16, device="cuda", dtype=torch.float64, requires_grad=True)
    got = tiled_logsumexp(a, c, tile=128)
    ref = torch.logsumexp(a @ c.T, 1)
    torch.testing.assert_close(got, ref)
    g1 = torch.autograd.grad(got.sum(), (a, c))
    g2 = torch.autograd.grad(ref.sum(), (a, c))
    for x, y in zip(g1, g2, strict=True):
        torch.testing.assert_close(x, y)


def test_a_short_run_on_the_device(tmp_path, tiny_dataset_dir):
    import json
    import subprocess
    import sys

    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sslrec",
            "dataset=custom",
            f"dataset.path={tiny_dataset_dir}",
            "model=simgcl",
            "trainer.epochs=2",
            "trainer.eval_every=1",
            "device=cuda",
            "logger=none",
            f"hydra.run.dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["device"].startswith("cuda") and results["status"] == "finished"
