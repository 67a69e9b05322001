"""LightGCL's loss + backward with its all-node term's weights told to the logsumexp kernel or
not, interleaved batch by batch in one process.

    python experiments/bench_lightgcl_cl.py --threads T [--dataset gowalla --batches 10]

The current code's CL term takes each distinct anchor once, weighted by its count / B. Told the
weights (``tiled_logsumexp(weights=...)``, the default since 2026-12-07), the kernel's CPU forward
sums ``∂/∂e`` with them and the backward only scales it; not told (the path before), the backward
finds the upstream gradient non-uniform and recomputes ``∂/∂e`` tile by tile, after the forward
had already computed one. Same model, same batches (``tests/test_lightgcl.py`` checks the
gradients). Prints the medians after two warm-up batches and the median of per-batch ratios.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from hydra import compose, initialize_config_dir

import sslrec.models.lightgcl as lightgcl
from sslrec.__main__ import config_dir
from sslrec.data import DatasetSpec, load_dataset
from sslrec.data.dataset import benchmark_data_root
from sslrec.data.sampling import BPRSampler
from sslrec.factory import build_model
from sslrec.losses import total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="gowalla")
    ap.add_argument("--data-root", default=benchmark_data_root())
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(DatasetSpec(name=args.dataset, path=f"{args.data_root}/{args.dataset}"))
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["model=lightgcl"])
    torch.manual_seed(0)
    model = build_model(cfg.model, data, torch.device("cpu"))
    model.start_epoch()
    sampler = BPRSampler(data.train, cfg.trainer.batch_size, seed=0)
    batches = [b for _, b in zip(range(args.batches + 2), sampler.epoch(), strict=False)]
    told = lightgcl.tiled_logsumexp

    def not_told(a, c, tile=None, weights=None):
        return told(a, c, tile)

    variants = {"weights told (default)": told, "weights not told (before)": not_told}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r, batch in enumerate(batches):
        names = list(variants)
        for name in names[r % 2 :] + names[: r % 2]:
            lightgcl.tiled_logsumexp = variants[name]
            t0 = time.perf_counter()
            total(model.loss(batch)).backward()
            model.zero_grad(set_to_none=True)
            if r >= 2:  # warm-up: buffers, caches
                times[name].append(time.perf_counter() - t0)
    lightgcl.tiled_logsumexp = told
    base = times["weights not told (before)"]
    print(
        f"lightgcl on {args.dataset}, batch {cfg.trainer.batch_size}, {args.threads} threads, "
        f"{args.batches} batches interleaved, torch {torch.__version__}, {platform.machine()}; "
        "loss + backward"
    )
    print("| kernel | median s | / before (median of per-batch ratios) |\n|---|---:|---:|")
    for name, ts in times.items():
        ratio = statistics.median(t / b for t, b in zip(ts, base, strict=True))
        print(f"| {name} | {statistics.median(ts):.4f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
