"""The accelerator path (skipped without CUDA; ``experiments/gpu_check.sh`` runs it on a lent
GPU): no host sync inside a training step, the device sampler's guarantees on the device, the
fused kernels against their references, and a short run end to end."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

#: every model trained by gradient steps (``tests/test_accelerator_paths.py`` checks the same
#: steps on the CPU, where it can see the ops that sync but not the copies)
MODELS = [
    "lightgcn", "mf", "sgl", "simgcl", "xsimgcl", "ncl", "directau", "lightgcl", "lightgcnpp",
    "mixgcf", "simplex", "neumf", "fm", "gmf", "mlp", "joint",
]  # fmt: skip


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


@pytest.mark.parametrize("model_name", MODELS)
def test_a_training_step_never_syncs_the_host(hydra_conf, tiny_dataset_dir, model_name):
    """Inside the step (loss, total, backward, fused Adam) any device→host sync raises."""
    from sslrec.config import TrainerConfig
    from sslrec.losses import total
    from sslrec.train.trainer import make_optimizer

    model, sampler, _ = _model_and_batches(model_name, tiny_dataset_dir)
    opt = make_optimizer(model, TrainerConfig())
    model.start_epoch()  # view redraws may sync: once per epoch, outside the step
    batches = list(sampler.epoch())
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for batch in batches[:3]:
            loss = total(model.loss(batch))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss)


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
