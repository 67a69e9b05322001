"""Shared fixtures: the bundled lastfm with a validation split, and a tiny custom dataset."""

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from sslrec.data import DatasetSpec, load_dataset, split_validation

SHARED_DATA = Path(
    os.environ.get("SSLREC_DATA_ROOT", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(scope="session")
def lastfm():
    data = load_dataset(DatasetSpec(name="lastfm", n_users=1892, n_items=4489))
    return split_validation(data, 0.1, seed=0)


@pytest.fixture
def tiny_dataset_dir(tmp_path: Path) -> Path:
    """A 40-user, 60-item dataset in LightGCN format: ``train.txt`` and ``test.txt``."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "tiny"
    folder.mkdir()
    train_lines, test_lines = [], []
    for u in range(40):
        items = rng.choice(60, size=8, replace=False)
        train_lines.append(" ".join(map(str, [u, *items[:6]])))
        test_lines.append(" ".join(map(str, [u, *items[6:]])))
    (folder / "train.txt").write_text("\n".join(train_lines) + "\n")
    (folder / "test.txt").write_text("\n".join(test_lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def hydra_conf():
    """Hydra's compose API initialised on sslrec's conf/ (use :func:`compose_run_config`)."""
    from hydra import initialize_config_dir

    from sslrec.__main__ import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        yield


def compose_run_config(*overrides: str):
    """The config a run with these command-line overrides sees, ``hydra`` node included."""
    from hydra import compose

    return compose("config", overrides=list(overrides), return_hydra_config=True)


def compose_quiet(*overrides: str):
    """The run config (no ``hydra`` node) for these overrides, with no logger and no progress
    bar; initialises Hydra on sslrec's conf/ unless ``hydra_conf`` already has."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from sslrec.__main__ import config_dir

    overrides = ("logger=none", "trainer.progress=false", *overrides)
    if GlobalHydra.instance().is_initialized():
        return compose("config", overrides=list(overrides))
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=list(overrides))


#: every model trained by gradient steps (``conf/model/NAME.yaml``; the closed-form ones fit
#: once): the accelerator's paths are checked for each on the CPU
#: (``tests/test_accelerator_paths.py``, which also checks that this list misses no config) and
#: on a GPU (``tests/test_gpu.py``)
TRAINED_MODELS = (
    "lightgcn", "mf", "sgl", "simgcl", "xsimgcl", "ncl", "directau", "lightgcl", "lightgcnpp",
    "mixgcf", "simplex", "neumf", "fm", "gmf", "mlp", "joint",
)  # fmt: skip


def device_sampler(model, data, batch_size: int, device: str, k: int = 1):
    """The device sampler (seed 0) of ``model`` on ``data``: ``k`` negatives per positive, or
    the model's own ``required_negatives`` (MixGCF draws its ``n_negs``)."""
    from sslrec.data.device_sampling import DeviceSampler

    k = getattr(model, "required_negatives", None) or k
    return DeviceSampler(data.train, batch_size, seed=0, num_negatives=k, device=device)


def seeded_steps(model_name: str, data, device: str, steps: int = 3, batch_size: int = 2048):
    """``(losses [steps], parameters, validation metrics)`` after ``steps`` steps of
    ``model_name`` (its config's defaults) from seed 0 with the device sampler on ``device``:
    what a seeded run's first steps and evaluation compute there."""
    import torch

    from sslrec.evaluation import Evaluator
    from sslrec.factory import build_model
    from sslrec.losses import total
    from sslrec.train import TrainerConfig
    from sslrec.train.seeding import seed_everything
    from sslrec.train.trainer import make_optimizer

    cfg = compose_quiet(f"model={model_name}")
    seed_everything(0)
    model = build_model(cfg.model, data, torch.device(device))
    sampler = device_sampler(model, data, batch_size, device)
    opt = make_optimizer(model, TrainerConfig())
    model.train()
    model.start_epoch()
    losses = []
    for batch, _ in zip(sampler.epoch(), range(steps), strict=False):
        loss = total(model.loss(batch))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    model.eval()
    with torch.no_grad():
        metrics = Evaluator(data, ks=(20,)).evaluate_scorer(model.scorer(), "valid")
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    return torch.stack(losses).cpu(), params, metrics


SAMPLER_USERS, SAMPLER_ITEMS = 40, 15


@pytest.fixture(scope="session")
def dense_train() -> sp.csr_matrix:
    """~70% dense, so most uniform negative draws hit a positive and must be redrawn.

    User 0 has every item but one (only item 7 is a valid negative), user 1 has no items.
    """
    rng = np.random.default_rng(0)
    dense = rng.random((SAMPLER_USERS, SAMPLER_ITEMS)) < 0.7
    dense[dense.sum(1) == SAMPLER_ITEMS, 0] = False  # nobody else has every item
    dense[0] = True
    dense[0, 7] = False
    dense[1] = False
    mat = sp.csr_matrix(dense.astype(np.float32))
    mat.sort_indices()
    return mat
