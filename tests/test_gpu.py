"""The accelerator path on CUDA (``experiments/gpu_check.sh`` runs this on a lent GPU): no host
sync inside a training step, a seeded run that repeats, the device sampler's guarantees on the
device, the fused kernels against their references, and a short run end to end.

Without CUDA the same tests run on the accelerator's paths emulated on the CPU
(:func:`sslrec.devices.accelerator_paths`; the sync checks are then
``tests/test_accelerator_paths.py``'s), so that the code a short GPU lease runs has run
before it; the end-to-end run needs CUDA."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from sslrec.devices import accelerator_paths
from tests.conftest import TRAINED_MODELS, device_sampler, seeded_steps

CUDA = torch.cuda.is_available()


@pytest.fixture(params=["cuda" if CUDA else "emulated"])
def device(request) -> Iterator[str]:
    """``"cuda"``, or ``"cpu"`` on the accelerator's paths when there is no GPU."""
    if request.param == "cuda":
        yield "cuda"
        return
    with accelerator_paths():
        yield "cpu"


@contextmanager
def _syncs_raise(device: str) -> Iterator[None]:
    """On CUDA, any device→host sync inside raises (CUDA's sync debug mode)."""
    if device != "cuda":
        yield
        return
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _model_and_batches(model_name: str, tiny_dataset_dir, device: str, k: int = 1):
    from sslrec.data import DatasetSpec
    from sslrec.factory import build_model
    from sslrec.run import load_data
    from tests.conftest import compose_run_config

    cfg = compose_run_config(f"model={model_name}")
    data = load_data(DatasetSpec(name="tiny", path=str(tiny_dataset_dir)), "validation")
    torch.manual_seed(0)
    model = build_model(cfg.model, data, torch.device(device))
    return model, device_sampler(model, data, 32, device, k), data


@pytest.mark.parametrize("model_name", TRAINED_MODELS)
def test_a_training_step_never_syncs_the_host(hydra_conf, tiny_dataset_dir, device, model_name):
    """Inside the step (loss, total, backward, fused Adam) any device→host sync raises."""
    model, sampler, _ = _model_and_batches(model_name, tiny_dataset_dir, device)
    _steps_without_syncs(model, list(sampler.epoch())[:3], device)


@pytest.mark.parametrize("model_name", TRAINED_MODELS)
def test_a_full_size_step_never_syncs_the_host(lastfm, device, model_name):
    """The same at yelp2018's batch of 2,048 on lastfm: CUDA picks some kernels by size (an
    embedding's backward sorts its ids past 3,072 of them, with cub's scans), which the tiny
    graph's batches of 32 never reach."""
    from sslrec.factory import build_model
    from tests.conftest import compose_quiet

    torch.manual_seed(0)
    model = build_model(compose_quiet(f"model={model_name}").model, lastfm, torch.device(device))
    sampler = device_sampler(model, lastfm, 2048, device)
    batches = [b for b, _ in zip(sampler.epoch(), range(2), strict=False)]
    assert batches[0].users.numel() == 2048
    _steps_without_syncs(model, batches, device)


def _steps_without_syncs(model, batches, device: str) -> None:
    from sslrec.config import TrainerConfig
    from sslrec.losses import total
    from sslrec.train.trainer import make_optimizer

    opt = make_optimizer(model, TrainerConfig())
    model.train()
    model.start_epoch()  # view redraws may sync: once per epoch, outside the step
    with _syncs_raise(device):
        for batch in batches:
            loss = total(model.loss(batch))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("model_name", TRAINED_MODELS)
def test_a_seeded_run_repeats_on_the_device(lastfm, device, model_name):
    """The same seed gives the same losses, parameters and metrics, bit for bit, after three
    steps at a batch of 2,048 and an evaluation: no kernel of the step sums in an order that
    changes from run to run (CUDA's atomics; torch's deterministic mode is not set)."""
    first, second = (seeded_steps(model_name, lastfm, device) for _ in range(2))
    assert torch.equal(first[0], second[0]), f"losses {first[0]} then {second[0]}"
    differ = [n for n, p in first[1].items() if not torch.equal(p, second[1][n])]
    assert not differ, f"parameters differ: {differ}"
    assert first[2] == second[2]


def test_device_sampler_on_the_device(tiny_dataset_dir, hydra_conf, device):
    _, sampler, data = _model_and_batches("lightgcn", tiny_dataset_dir, device, k=3)
    dense = torch.from_numpy(data.train.toarray() > 0).to(device)
    for batch in sampler.epoch():
        assert batch.neg.device.type == device and batch.neg.shape == (batch.users.numel(), 3)
        assert not dense[batch.users[:, None], batch.neg].any()
        assert dense[batch.users, batch.pos].all()


def test_tiled_logsumexp_on_the_device(device):
    from sslrec.losses.tiled import tiled_logsumexp

    torch.manual_seed(0)
    a = torch.randn(300, 16, device=device, dtype=torch.float64, requires_grad=True)
    c = torch.randn(1000, 16, device=device, dtype=torch.float64, requires_grad=True)
    got = tiled_logsumexp(a, c, tile=128)
    ref = torch.logsumexp(a @ c.T, 1)
    torch.testing.assert_close(got, ref)
    g1 = torch.autograd.grad(got.sum(), (a, c))
    g2 = torch.autograd.grad(ref.sum(), (a, c))
    for x, y in zip(g1, g2, strict=True):
        torch.testing.assert_close(x, y)


@pytest.mark.skipif(not CUDA, reason="needs CUDA (a run in its own process cannot be emulated)")
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
