"""Per-epoch training time of each model on a real dataset, from the project's own configs.

Times ``--batches`` optimisation steps after a warm-up (median step time), plus the per-epoch
view redraw (``start_epoch``), and extrapolates to the batches of one epoch:
``epoch ≈ start_epoch + n_batches × median step``. One full epoch is also run when
``--full-epoch`` is given, to check the extrapolation.

    python experiments/bench_epoch.py --dataset gowalla --models lightgcn sgl simgcl xsimgcl
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from hydra import compose, initialize_config_dir

from sslrec.__main__ import config_dir
from sslrec.data import BPRSampler, DatasetSpec, load_dataset, split_validation
from sslrec.run import build_model


def bench(model_name: str, overrides: list[str], data, batches: int, full_epoch: bool) -> dict:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={model_name}", *overrides])
    torch.manual_seed(0)
    model = build_model(cfg, data, torch.device("cpu"))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.trainer.lr)
    sampler = BPRSampler(data.train, cfg.trainer.batch_size, cfg.trainer.sampling, seed=0)
    t0 = time.perf_counter()
    model.start_epoch()
    redraw = time.perf_counter() - t0
    steps = []
    it = sampler.epoch()
    for k, (u, p, n) in enumerate(it):
        t0 = time.perf_counter()
        loss = model.loss(u, p, n)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if k > 0:  # the first step is a warm-up
            steps.append(time.perf_counter() - t0)
        if len(steps) == batches:
            break
    out = {
        "model": model_name,
        "overrides": overrides,
        "batches_per_epoch": len(sampler),
        "median_step_s": statistics.median(steps),
        "start_epoch_s": redraw,
        "epoch_estimate_s": redraw + len(sampler) * statistics.median(steps),
    }
    if full_epoch:
        t0 = time.perf_counter()
        model.start_epoch()
        for u, p, n in sampler.epoch():
            loss = model.loss(u, p, n)["total"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        out["full_epoch_s"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="gowalla")
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--models", nargs="+", default=["lightgcn", "sgl", "simgcl", "xsimgcl"])
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--full-epoch", action="store_true")
    args = ap.parse_args()
    data = load_dataset(DatasetSpec(name=args.dataset, path=f"{args.data_root}/{args.dataset}"))
    data = split_validation(data, 0.1, seed=0)
    variants = {
        "sgl": [["augmenter=ed"], ["augmenter=nd"], ["augmenter=rw"]],
        "simgcl": [["model.fused=false"], ["model.fused=true"]],
    }
    for name in args.models:
        for overrides in variants.get(name, [[]]):
            res = bench(name, overrides, data, args.batches, args.full_epoch)
            res.update(
                dataset=args.dataset,
                threads=torch.get_num_threads(),
                torch=torch.__version__,
                machine=platform.machine(),
            )
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
