"""SimGCL's three encoders (clean, two noisy), forward + backward, in each of sslrec's layouts.

    python experiments/bench_views.py --dataset gowalla --threads T [--repeats 15]
    python experiments/bench_views.py --dataset yelp2018 --device cuda   # in gpu_check.sh

Interleaved in one run (a shared machine drifts), median seconds per forward + backward of the
three views (noise included, as in a training step):

- ``separate``: three ``LightGCN.encode`` calls, ``3 K`` sparse products each way;
- ``shared`` (SimGCL's default): one node, the views one after another with their common first
  product taken once, ``3 (K − 1) + 1`` each way;
- ``wide`` (``model.fused=true``): one ``[N, 3d]`` product per layer.

The three give the same values (tests/test_layer_sum.py); the gradients agree to float32
rounding.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from omegaconf import OmegaConf

from sslrec.data import DatasetSpec, load_dataset
from sslrec.data.dataset import benchmark_data_root
from sslrec.factory import build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="gowalla")
    ap.add_argument("--data-root", default=benchmark_data_root())
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    data = load_dataset(DatasetSpec(name=args.dataset, path=f"{args.data_root}/{args.dataset}"))
    cfg = {
        "_target_": "sslrec.models.simgcl.SimGCL",
        "embedding_dim": args.dim,
        "num_layers": args.layers,
    }
    torch.manual_seed(0)
    model = build_model(OmegaConf.create(cfg), data, device)
    perturbs = [None, model.noise, model.noise]
    params = [model.user_embedding.weight, model.item_embedding.weight]
    layouts = {
        "separate": lambda: [model.encode(perturb=p)[0] for p in perturbs],
        "shared": lambda: model.encode_views(perturbs, "shared"),
        "wide": lambda: model.encode_views(perturbs, "wide"),
    }

    def step(encode) -> None:
        views = encode()
        loss = sum((u * u).sum() + (i * i).sum() for u, i in views)
        torch.autograd.grad(loss, params)

    times: dict[str, list[float]] = {name: [] for name in layouts}
    for name in layouts:  # warm-up: buffers, caches
        step(layouts[name])
    for _ in range(args.repeats):
        for name, encode in layouts.items():
            sync()
            t0 = time.perf_counter()
            step(encode)
            sync()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["separate"])
    nnz = model.adjacency.values().numel()
    print(
        f"{args.dataset} (N {data.n_users + data.n_items}, nnz {nnz}), "
        f"d {args.dim}, {args.layers} layers, {device}, {args.threads} threads, {args.repeats} "
        f"interleaved repeats, torch {torch.__version__}, {platform.machine()}"
    )
    print("| layout | s (fwd + bwd, 3 views) | × separate |\n|---|---:|---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.4f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
