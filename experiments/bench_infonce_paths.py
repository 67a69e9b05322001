"""The all-node logsumexp's two CPU paths, interleaved in one process: gradients recomputed tile
by tile in the backward (``rows=0``) against gradients computed in the forward, in row blocks.

SGL's shapes on gowalla by default: B = 2048 anchors against all 29,858 users, then against all
40,981 items (one step's two terms), d = 64, fp32, normalised rows with τ = 0.2, forward +
backward of ``Σ lse``. Each repeat times every variant once, in an order rotated per repeat;
each variant's time is reported as the median of its per-repeat ratio to the recomputing path.

    python experiments/bench_infonce_paths.py --threads 1 --rows 0 32 64 128 256
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from sslrec.losses.tiled import default_rows, tiled_logsumexp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--B", type=int, default=2048)
    ap.add_argument("--N", type=int, nargs="+", default=[29858, 40981])
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--rows", type=int, nargs="+", default=[0], help="0: default_rows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    sides = []
    for n in args.N:
        a = F.normalize(torch.randn(args.B, args.d, generator=g), dim=-1) / 0.2
        c = F.normalize(torch.randn(n, args.d, generator=g), dim=-1)
        sides.append((a.requires_grad_(), c.requires_grad_()))

    def step(rows: int | None) -> None:
        for a, c in sides:
            tiled_logsumexp(a, c, rows=rows).sum().backward()
            a.grad = c.grad = None

    variants = {"recompute (rows=0)": 0}
    for r in args.rows:
        name = (
            f"eager, default rows ({default_rows(max(args.N), torch.float32)})"
            if r == 0
            else f"eager, rows={r}"
        )
        variants[name] = r or None
    for rows in variants.values():
        step(rows)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for k in range(args.repeats):
        for name in names[k % len(names) :] + names[: k % len(names)]:
            t0 = time.perf_counter()
            step(variants[name])
            times[name].append(time.perf_counter() - t0)
    base = times[names[0]]
    print(
        f"B={args.B}, N={args.N}, d={args.d}, fp32, {args.threads} threads, torch "
        f"{torch.__version__}, {platform.machine()}; {args.repeats} interleaved repeats"
    )
    print("| variant | median s (both sides) | / recompute (median of ratios, quartiles) |")
    print("|---|---:|---:|")
    for name in names:
        ratio = sorted(t / b for t, b in zip(times[name], base, strict=True))
        q1, med, q3 = statistics.quantiles(ratio, n=4)
        print(f"| {name} | {statistics.median(times[name]):.3f} | {med:.3f} ({q1:.3f}–{q3:.3f}) |")


if __name__ == "__main__":
    main()
