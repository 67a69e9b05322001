"""The accelerator's code paths, run on the CPU (:func:`sslrec.devices.accelerator_paths`).

A GPU is seldom at hand, and its branches (no ``torch.unique``, no reused buffers, no ``bool()``
of a tensor, the recomputing InfoNCE backward, torch's own noise draws) would otherwise run
only there. Here, without one: every trainable model's step dispatches no operation that
makes a GPU wait for the host, and computes the loss and gradients of the host's paths; an
epoch of the trainer and an evaluation read the device a fixed number of times, however many
batches or user blocks they take. ``tests/test_gpu.py`` checks the first on a real GPU with
CUDA's sync debug mode (``experiments/gpu_check.sh``).
"""

from __future__ import annotations

import traceback
from collections import Counter

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from sslrec.devices import KernelCounter, accelerator_paths, host_paths
from tests.conftest import TRAINED_MODELS, compose_quiet, device_sampler

aten = torch.ops.aten

#: aten ops whose CUDA kernels copy a value back to the host: a scalar read (``item``, ``bool``,
#: ``float``, ``int``), an output whose size depends on the data, or a bool result
SYNCING = {
    aten._local_scalar_dense.default,
    aten.nonzero.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
    aten.masked_select.default,
    aten.equal.default,
    aten.is_nonzero.default,
    aten.bincount.default,
}
#: Tensor methods that hand the data to the host (under emulation the tensors are already
#: there, so they dispatch nothing to see)
TO_HOST = {"numpy", "tolist", "cpu", "__array__"}


def _where() -> str:
    """The innermost sslrec frames of the current stack, for the failure message."""
    frames = [f for f in traceback.extract_stack() if "/sslrec/" in f.filename]
    return " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in frames[::-1][:4])


class HostSyncs(TorchDispatchMode):
    """Counts, by op and place, what would sync a GPU with the host: :data:`SYNCING`, indexing
    with a bool mask (a ``nonzero`` inside), ``repeat_interleave`` without ``output_size``, and
    (with :class:`_ToHost`) :data:`TO_HOST`."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket
        if func in SYNCING:
            self.seen[f"{func} at {_where()}"] += 1
        elif packet in (aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_):
            masks = [i for i in args[1] if i is not None and i.dtype in (torch.bool, torch.uint8)]
            if masks:
                self.seen[f"{func} with a bool mask at {_where()}"] += 1
        elif packet is aten.repeat_interleave and func is not aten.repeat_interleave.self_int:
            if kwargs.get("output_size") is None:
                self.seen[f"{func} without output_size at {_where()}"] += 1
        return func(*args, **kwargs)

    def __enter__(self):
        self._to_host = _ToHost(self.seen).__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self._to_host.__exit__(*exc)

    @property
    def total(self) -> int:
        return sum(self.seen.values())


class _ToHost(TorchFunctionMode):
    def __init__(self, seen: Counter[str]) -> None:
        super().__init__()
        self.seen = seen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in TO_HOST:
            self.seen[f"Tensor.{func.__name__} at {_where()}"] += 1
        return func(*args, **(kwargs or {}))


def test_the_detector_sees_the_host_paths_syncs():
    """Without emulation the CPU's own branches read the host: the detector must say so."""
    ids = torch.tensor([2, 1, 2])
    with HostSyncs() as syncs:
        torch.unique(ids)
        bool(ids.sum() > 0)
        ids[ids > 1]
        ids.numpy()
        torch.repeat_interleave(ids, ids)
        torch.repeat_interleave(ids, ids, output_size=5)  # sized: no sync
        ids.index_select(0, ids)  # no sync
    assert syncs.total == 5, syncs.seen


def test_host_paths_and_their_emulation():
    assert host_paths("cpu") and not host_paths("meta")
    with accelerator_paths():
        assert not host_paths("cpu")
        with accelerator_paths():
            pass
        assert not host_paths(torch.device("cpu"))  # nesting restores the outer setting
    assert host_paths("cpu")


#: every model trained by gradient steps (id: model, overrides; :data:`TRAINED_MODELS` each at
#: least once), with overrides that make its two
#: paths draw the same numbers: torch's noise on the accelerator path, numpy's PCG64 on the
#: host's (ε = 0 keeps the draws and removes their effect); SimpleX also with its attentions,
#: a history cut (lastfm's are up to 50 long) and the official padded softmax
MODELS = {
    "lightgcn": ("lightgcn", ()),
    "mf": ("mf", ()),
    "sgl": ("sgl", ()),
    "simgcl": ("simgcl", ("augmenter.eps=0.0",)),
    "xsimgcl": ("xsimgcl", ("augmenter.eps=0.0",)),
    "ncl": ("ncl", ()),
    "directau": ("directau", ()),
    "lightgcl": ("lightgcl", ()),
    "lightgcnpp": ("lightgcnpp", ()),
    "mixgcf": ("mixgcf", ()),
    "neumf": ("neumf", ()),
    "fm": ("fm", ()),
    "gmf": ("gmf", ()),
    "mlp": ("mlp", ()),
    "joint": ("joint", ()),
    "simplex": ("simplex", ()),
    "simplex-user-attention": (
        "simplex",
        ("model.aggregator=user_attention", "model.max_history=20", "model.share_embedding=false"),
    ),
    "simplex-self-attention-padded": (
        "simplex",
        ("model.aggregator=self_attention", "model.max_history=30", "model.attention_padding=true"),
    ),
    "simplex-mean-cut": ("simplex", ("model.max_history=10", "model.exclude_target=false")),
}


def test_every_trained_model_is_checked():
    """:data:`TRAINED_MODELS` (which this module and ``tests/test_gpu.py`` take) holds every
    config of ``conf/model`` but the closed-form ones, and :data:`MODELS` covers each: a new
    model cannot miss the accelerator's checks."""
    from pathlib import Path

    from hydra.utils import get_class
    from omegaconf import OmegaConf

    from sslrec.__main__ import config_dir

    trained = set()
    for yaml in sorted(Path(config_dir(), "model").glob("*.yaml")):
        target = OmegaConf.load(yaml)["_target_"]
        if not getattr(get_class(target), "closed_form", False):
            trained.add(yaml.stem)
    assert trained == set(TRAINED_MODELS)
    assert {model for model, _ in MODELS.values()} == trained


def _model(name: str, overrides: tuple[str, ...] = (), *, data):
    from sslrec.factory import build_model

    cfg = compose_quiet(f"model={name}", *overrides)
    torch.manual_seed(0)
    return build_model(cfg.model, data, torch.device("cpu"))


def _batches(model, data, n: int = 2, batch_size: int = 512):
    return list(device_sampler(model, data, batch_size, "cpu").epoch())[:n]


def _step_grads(model, batch, seed: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    from sslrec.losses import total

    torch.manual_seed(seed)
    model.zero_grad(set_to_none=True)
    terms = model.loss(batch)
    total(terms).backward()
    values = {key: float(term.value.detach()) for key, term in terms.items()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return values, grads


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_step_on_the_accelerator_paths_never_syncs(lastfm, name):
    """Two steps (loss, backward, fused Adam) after ``start_epoch`` (whose view redraws may
    read the host: once per epoch)."""
    from sslrec.config import TrainerConfig
    from sslrec.losses import total
    from sslrec.train.trainer import make_optimizer

    with accelerator_paths():
        model = _model(*MODELS[name], data=lastfm)
        opt = make_optimizer(model, TrainerConfig())
        model.train()
        model.start_epoch()
        batches = _batches(model, lastfm)
        with HostSyncs() as syncs:
            for batch in batches:
                loss = total(model.loss(batch))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    assert torch.isfinite(loss)
    assert not syncs.seen, f"{name}: {dict(syncs.seen)}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_accelerator_paths_compute_the_host_paths_loss_and_gradients(lastfm, name):
    """The same batch and seed through both paths: the same terms and gradients, to float32
    rounding (the paths sum in different orders: the recomputing InfoNCE backward, repeated
    anchors kept, every row propagated)."""
    model = _model(*MODELS[name], data=lastfm)
    model.train()
    torch.manual_seed(1)
    model.start_epoch()
    (batch,) = _batches(model, lastfm, n=1)
    host_values, host_grads = _step_grads(model, batch, seed=2)
    with accelerator_paths():
        values, grads = _step_grads(model, batch, seed=2)
    assert values.keys() == host_values.keys()
    for key, value in values.items():
        assert value == pytest.approx(host_values[key], rel=2e-5, abs=1e-7), key
    assert grads.keys() == host_grads.keys()
    for key, grad in grads.items():
        scale = host_grads[key].abs().max().item()
        torch.testing.assert_close(grad, host_grads[key], rtol=1e-4, atol=1e-5 * scale + 1e-12)


def _syncs_of_an_epoch(data, tmp_path, batch_size: int, model: str) -> int:
    from sslrec.evaluation import Evaluator
    from sslrec.train import Trainer, TrainerConfig, seed_everything

    seed_everything(0)
    with accelerator_paths():
        built = _model(model, data=data)
        config = TrainerConfig(epochs=1, batch_size=batch_size, progress=False)
        out = tmp_path / str(batch_size)
        trainer = Trainer(built, data, Evaluator(data, ks=(20,)), config, out)
        assert type(trainer.sampler).__name__ == "DeviceSampler"
        with HostSyncs() as syncs:
            trainer.train_epoch(1)
    return syncs.total


@pytest.mark.parametrize("model", ["lightgcn", "sgl", "xsimgcl"])
def test_an_epoch_reads_the_device_a_fixed_number_of_times(lastfm, tmp_path, model):
    """The losses stay on the device until the epoch's end: an epoch of 4 times the batches
    syncs as often (``start_epoch``'s redraws and the final read, not one per step)."""
    few = _syncs_of_an_epoch(lastfm, tmp_path, 8192, model)
    many = _syncs_of_an_epoch(lastfm, tmp_path, 2048, model)
    assert many == few


def _syncs_of_an_evaluation(data, batch_size: int) -> int:
    from sslrec.evaluation import Evaluator

    with accelerator_paths():
        model = _model("lightgcn", data=data)
        evaluator = Evaluator(data, ks=(20,), batch_size=batch_size)
        with HostSyncs() as syncs:
            evaluator.evaluate_scorer(model.scorer(), "valid")
    return syncs.total


def test_an_evaluation_reads_the_device_a_fixed_number_of_times(lastfm):
    """Scores and top-k stay on the device for every block of users; the metrics are read
    at the end: 8 times the blocks, as many syncs."""
    assert _syncs_of_an_evaluation(lastfm, 1024) == _syncs_of_an_evaluation(lastfm, 128)


def _head_kernels(sides: int) -> int:
    """Kernels of the in-batch head's loss and backward over ``sides`` sides of 64 anchors."""
    from sslrec.losses.infonce import _in_batch_masked_sides

    torch.manual_seed(0)
    tables = [torch.randn(50, 8, requires_grad=True) for _ in range(2 * sides)]
    ids = [torch.randint(0, 50, (64,)) for _ in range(sides)]
    with accelerator_paths(), KernelCounter() as kernels:
        views = [(tables[2 * s], tables[2 * s + 1], ids[s]) for s in range(sides)]
        _in_batch_masked_sides(views, 0.2, "mean").backward()
    return kernels.total


def test_the_in_batch_head_takes_both_sides_in_the_kernels_of_one():
    """An accelerator's step is bound by its launches: users and items in one [2, B, B] block
    cost one side's kernels plus the gathers and stacks of the second."""
    one, two = _head_kernels(1), _head_kernels(2)
    assert two <= one + 6, (one, two)


def test_noise_drawn_ahead_takes_a_fixed_number_of_kernels():
    """SimGCL's six noisy layers: one draw and its scaling for all, then sign and add per
    layer (eight kernels per layer one by one)."""
    from sslrec.augment import UniformNoise

    aug, x = UniformNoise(0.1), torch.randn(30, 8)

    def kernels(ahead: bool) -> int:
        with accelerator_paths(), KernelCounter() as seen:
            if ahead:
                with aug.drawn_ahead(6, (30, 8), "cpu"):
                    for _ in range(6):
                        aug.add_noise(x.clone())
            else:
                for _ in range(6):
                    aug.add_noise(x.clone())
        return seen.total - 6  # the clones

    assert kernels(ahead=False) == 6 * 8
    assert kernels(ahead=True) == 6 + 6 * 2


@pytest.mark.parametrize("name", ["simgcl", "xsimgcl"])
def test_noise_drawn_ahead_trains_as_drawn_one_by_one(lastfm, monkeypatch, name):
    """With noise (ε = 0.1), a step on the accelerator's paths with the noise drawn ahead gives
    the loss and gradients of the noise drawn layer by layer: on the CPU's generator the same
    numbers, added to the same layers."""
    from contextlib import nullcontext

    from sslrec.augment import UniformNoise

    model = _model(name, data=lastfm)
    model.train()
    torch.manual_seed(1)
    model.start_epoch()
    (batch,) = _batches(model, lastfm, n=1)
    entered = []
    real = UniformNoise._scaled_ahead
    monkeypatch.setattr(
        UniformNoise, "_scaled_ahead", lambda self, *a: entered.append(a[0]) or real(self, *a)
    )
    with accelerator_paths():
        ahead = _step_grads(model, batch, seed=2)
        assert entered == [3 if name == "xsimgcl" else 6]  # the layers of its noisy views
        monkeypatch.setattr(UniformNoise, "drawn_ahead", lambda *a, **k: nullcontext())
        one_by_one = _step_grads(model, batch, seed=2)
    assert ahead[0] == one_by_one[0]
    for key, grad in ahead[1].items():
        assert torch.equal(grad, one_by_one[1][key]), key


@pytest.mark.parametrize("join", [True, False])
@pytest.mark.parametrize("k", [None, 4])
def test_the_ranking_scores_take_one_product_on_the_accelerator_paths(k, join):
    """The items from one gather of their ids side by side (``join``) or from two, their
    scores from one ``bmm``: the host's rows, scores and the tables' gradients (float64, so to
    rounding), in fewer kernels."""
    import torch.nn.functional as F

    from sslrec.models.base import _scores

    torch.manual_seed(0)
    user_table, item_table = torch.randn(10, 5).double(), torch.randn(12, 5).double()
    users, pos_items = torch.randint(0, 10, (6,)), torch.randint(0, 12, (6,))
    neg_items = torch.randint(0, 12, (6,) if k is None else (6, k))
    w_pos, w_neg = torch.randn(6).double(), torch.randn(neg_items.shape).double()

    def run(accelerator: bool):
        ut, it = user_table.clone().requires_grad_(), item_table.clone().requires_grad_()
        with KernelCounter() as seen:
            u = F.embedding(users, ut)
            if accelerator:
                with accelerator_paths():
                    p, n, pos, neg = _scores(u, it, pos_items, neg_items, join)
            else:
                p, n, pos, neg = _scores(u, it, pos_items, neg_items)
            ((pos * w_pos).sum() + (neg * w_neg).sum()).backward()
        return [p.detach(), n.detach(), pos.detach(), neg.detach(), ut.grad, it.grad], seen

    (host, host_kernels), (accel, accel_kernels) = run(False), run(True)
    for a, b in zip(host, accel, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert accel_kernels.total < host_kernels.total, (accel_kernels.total, host_kernels.total)
    assert accel_kernels.ops["embedding"] == (1 if join else 2) + 1  # + the users'


@pytest.mark.parametrize(
    ("batch", "k", "joined"),
    [(1024, None, True), (1536, None, True), (1537, None, False), (2048, None, False),
     (2048, 2, True), (1024, 3, False), (2048, 4, True), (3072, None, False), (3073, None, True)],
)  # fmt: skip
def test_the_ranking_scores_keep_each_gather_on_cudas_one_kernel_backward(batch, k, joined):
    """One gather unless the joined ids pass :data:`SMALL_GATHER_IDS` while each part stays
    within it: at yelp2018's batch of 2,048 with one negative, two gathers of 2,048 ids."""
    from sslrec.models.base import _scores

    u, table = torch.randn(batch, 4), torch.randn(50, 4)
    pos = torch.randint(0, 50, (batch,))
    neg = torch.randint(0, 50, (batch,) if k is None else (batch, k))
    with accelerator_paths(), KernelCounter() as seen:
        _scores(u, table, pos, neg)
    assert seen.ops["embedding"] == (1 if joined else 2)
