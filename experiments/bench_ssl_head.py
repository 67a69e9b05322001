"""A model's loss + backward with its InfoNCE head tiled (``fused``, the default) or as the
logits block, interleaved batch by batch in one process.

    python experiments/bench_ssl_head.py --model xsimgcl --threads T [--batches 12]

Both heads see the same batches and the same model; only the logsumexp's path differs
(``tests/test_infonce.py`` checks they agree). Prints the medians after two warm-up batches.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time

import torch
from omegaconf import OmegaConf

from sslrec.data import DatasetSpec, load_dataset
from sslrec.data.sampling import BPRSampler
from sslrec.factory import build_model
from sslrec.losses import total

TARGETS = {
    "xsimgcl": "sslrec.models.xsimgcl.XSimGCL",
    "simgcl": "sslrec.models.simgcl.SimGCL",
    "sgl": "sslrec.models.sgl.SGL",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(TARGETS), default="xsimgcl")
    ap.add_argument("--dataset", default="gowalla")
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(DatasetSpec(name=args.dataset, path=f"{args.data_root}/{args.dataset}"))
    torch.manual_seed(0)
    cfg = OmegaConf.create({"_target_": TARGETS[args.model]})
    model = build_model(cfg, data, torch.device("cpu"))
    model.start_epoch()  # SGL draws its views here
    sampler = BPRSampler(data.train, 2048, seed=0)
    batches = [b for _, b in zip(range(args.batches + 2), sampler.epoch(), strict=False)]
    heads = {"block": dataclasses.replace(model.head, fused=False), "tiled": model.head}
    times: dict[str, list[float]] = {name: [] for name in heads}
    for r, batch in enumerate(batches):
        for name, head in heads.items():
            model.head = head
            t0 = time.perf_counter()
            total(model.loss(batch)).backward()
            model.zero_grad(set_to_none=True)
            if r >= 2:  # warm-up: buffers, caches
                times[name].append(time.perf_counter() - t0)
    block, tiled = (statistics.median(times[k]) for k in ("block", "tiled"))
    print(
        f"{args.model} on {args.dataset}, {args.threads} threads, {args.batches} batches "
        f"interleaved, torch {torch.__version__}, {platform.machine()}; loss + backward, median s"
    )
    print("| head | s | × block |\n|---|---:|---:|")
    print(f"| block | {block:.4f} | 1.00 |\n| tiled | {tiled:.4f} | {tiled / block:.2f} |")


if __name__ == "__main__":
    main()
