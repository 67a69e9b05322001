"""The host's share of a GPU step: kernels launched per step and the host time to launch them.

A training step on a GPU costs the larger of two times: the device's kernels, and the host's
work to issue them (Python, autograd, the dispatcher, a launch each; the step never waits on
the device: ``tests/test_accelerator_paths.py``). On yelp2018 an H100 runs a LightGCN or
XSimGCL step's kernels in well under a millisecond, so the host's part sets the pace, and the
issue's targets (LightGCN ≤ 1.0 s/epoch, XSimGCL ≤ 1.5, SimGCL ≤ 2.5, SGL-ED ≤ 3.0 over
yelp2018's 605 batches) leave 1.7, 2.5, 4.1 and 5.0 ms of host time per step.

This measures that part without a GPU: each model trains whole epochs through
``Trainer.train_epoch`` under :func:`sslrec.devices.accelerator_paths` (the GPU's branches, the
device sampler) on a tiny seeded graph (``--users`` × ``--items``), where each CPU kernel's own
work is a few microseconds, so the time is mostly the host's issuing work. It reports per step:

- **kernels**: the aten operations dispatched, views excluded (a ``TorchDispatchMode`` counts
  them; each is one launch on a GPU), the epoch's count divided by its batches;
- **host ms**: wall time of an epoch divided by its batches, the median of ``--rounds``
  interleaved rounds (the models take turns, so a drifting machine hits all alike);
- **yelp2018 floor s/epoch**: host ms × 605, against the issue's targets.

The CPU's dispatch is cheaper than a CUDA launch (~2-4 µs more each) and a GPU machine's CPU
may be faster or slower than this one: the floor is an estimate; the kernel count is exact.

    python experiments/bench_host_overhead.py
    python experiments/bench_host_overhead.py --models lightgcn xsimgcl --rounds 9
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from reproduce_published import BATCHES, TARGET_EPOCH_S

# name -> Hydra overrides
MODELS = {
    "lightgcn": ["model=lightgcn"],
    "sgl-ed": ["model=sgl", "augmenter=ed"],
    "simgcl": ["model=simgcl"],
    "xsimgcl": ["model=xsimgcl"],
    "ncl": ["model=ncl"],
    "directau": ["model=directau"],
    "simplex": ["model=simplex"],
    "lightgcl": ["model=lightgcl"],
    "mf": ["model=mf"],
}
# the H100 s/epoch on yelp2018 and that split's batches of 2048: the reproduction's
# estimates use the same (run as a script, experiments/ is on the path)
TARGETS = TARGET_EPOCH_S
YELP2018_BATCHES = BATCHES["yelp2018"]


def tiny_dataset(folder: Path, users: int, items: int, per_user: int, seed: int = 0) -> Path:
    """A seeded ``users × items`` dataset in LightGCN format, ``per_user`` training items
    each (and two test items)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    for u in range(users):
        picked = rng.choice(items, size=per_user + 2, replace=False)
        train.append(" ".join(map(str, [u, *picked[:per_user]])))
        test.append(" ".join(map(str, [u, *picked[per_user:]])))
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")
    return folder


def build(name: str, data, batch_size: int, out: Path):
    """A :class:`~sslrec.train.Trainer` of model ``name`` on ``data`` as the run builds it,
    on the accelerator's paths (call inside :func:`~sslrec.devices.accelerator_paths`)."""
    from hydra import compose, initialize_config_dir

    from sslrec.__main__ import config_dir
    from sslrec.evaluation import Evaluator
    from sslrec.factory import build_model
    from sslrec.train import Trainer, TrainerConfig

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=MODELS[name])
    torch.manual_seed(0)
    model = build_model(cfg.model, data, torch.device("cpu"))
    config = TrainerConfig(epochs=1, batch_size=batch_size, progress=False, lr=cfg.trainer.lr)
    trainer = Trainer(model, data, Evaluator(data, ks=(20,)), config, out / name)
    assert type(trainer.sampler).__name__ == "DeviceSampler", "not on the accelerator's paths"
    return trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--users", type=int, default=64)
    ap.add_argument("--items", type=int, default=96)
    ap.add_argument("--per-user", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=None, help="write the rows as JSON lines here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from sslrec.data import DatasetSpec, load_dataset, split_validation
    from sslrec.devices import KernelCounter, accelerator_paths

    tmp = Path(tempfile.mkdtemp(prefix="sslrec-host-"))
    folder = tiny_dataset(tmp / "tiny", args.users, args.items, args.per_user)
    data = split_validation(load_dataset(DatasetSpec(name="tiny", path=str(folder))), 0.1, seed=0)
    with accelerator_paths():
        trainers = {name: build(name, data, args.batch_size, tmp) for name in args.models}
        batches = {name: len(t.sampler) for name, t in trainers.items()}
        kernels: dict[str, Counter[str]] = {}
        for name, trainer in trainers.items():
            trainer.train_epoch(1)  # warm-up
            with KernelCounter() as seen:
                trainer.train_epoch(2)
            kernels[name] = seen.ops
        times: dict[str, list[float]] = {name: [] for name in args.models}
        for r in range(args.rounds):
            names = args.models[r % len(args.models) :] + args.models[: r % len(args.models)]
            for name in names:
                t0 = time.perf_counter()
                trainers[name].train_epoch(3 + r)
                times[name].append((time.perf_counter() - t0) / batches[name])

    print(
        f"tiny graph {args.users} x {args.items}, {args.per_user} per user, batch "
        f"{args.batch_size}; accelerator paths on the CPU, 1 thread, torch {torch.__version__}, "
        f"{platform.machine()}; host ms: median of {args.rounds} interleaved epochs"
    )
    print("| model | kernels/step | host ms/step | yelp2018 floor s/epoch | H100 target |")
    print("|---|---:|---:|---:|---:|")
    rows = []
    for name in args.models:
        per_step = sum(kernels[name].values()) / batches[name]
        ms = 1e3 * statistics.median(times[name])
        target = TARGETS.get(name)
        print(
            f"| {name} | {per_step:.1f} | {ms:.2f} | {ms * YELP2018_BATCHES / 1e3:.2f} | "
            f"{'–' if target is None else f'≤ {target}'} |"
        )
        rows.append(
            {
                "model": name,
                "kernels_per_step": per_step,
                "host_ms_per_step": ms,
                "epochs_ms": [1e3 * t for t in times[name]],
                "top_ops": kernels[name].most_common(15),
            }
        )
    if args.out:
        Path(args.out).write_text("".join(json.dumps(row) + "\n" for row in rows))


if __name__ == "__main__":
    main()
