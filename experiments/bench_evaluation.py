"""Benchmark one full-ranking evaluation (all test users × all items, metrics at K≤50).

python experiments/bench_evaluation.py --dataset gowalla --dim 64 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from sslrec.data import DatasetSpec, load_dataset
from sslrec.evaluation import Evaluator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="gowalla")
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    data = load_dataset(DatasetSpec(name=args.dataset, path=f"{args.data_root}/{args.dataset}"))
    gen = torch.Generator().manual_seed(0)
    users = torch.randn(data.n_users, args.dim, generator=gen)
    items = torch.randn(data.n_items, args.dim, generator=gen)
    ev = Evaluator(data, ks=(10, 20, 50), batch_size=args.batch_size)
    ev.evaluate(users, items, "test")  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ev.evaluate(users, items, "test")
        times.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "dataset": args.dataset,
                "users_evaluated": int(len(data.eval_users("test"))),
                "items": data.n_items,
                "dim": args.dim,
                "batch_size": args.batch_size,
                "median_s": statistics.median(times),
                "min_s": min(times),
                "repeats": args.repeats,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "machine": platform.machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
