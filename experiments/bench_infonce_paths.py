"""The all-node logsumexp's two CPU paths, interleaved in one process: gradients recomputed tile
by tile in the backward (``rows=0``) against gradients computed in the forward, in row blocks.

SGL's shapes on gowalla by default: B = 2048 anchors against all 29,858 users, then against all
40,981 items (one step's two terms), d = 64, fp32, normalised rows with τ = 0.2, forward +
backward of ``Σ lse``. Each repeat times every variant once, in an order rotated per repeat;
each variant's time is reported as the median of its per-repeat ratio to the recomputing path.

    python experiments/bench_infonce_paths.py --threads 1 --rows 0 32 64 128 256
    python experiments/bench_infonce_paths.py --threads 1 --weighted
    python experiments/bench_infonce_paths.py --threads 2 --gemm mkl onednn

``--gemm`` runs each eager variant with each CPU GEMM library (:mod:`sslrec.gemm`; the
recomputing path always takes torch's ``mm``); the default is the one this CPU gets.

``--weighted`` takes a loss over each distinct anchor once, weighted by its count (LightGCL's, and
SGL's since 2026-12-07): the anchors are the distinct ids of ``B`` draws from ``B`` ids (~63%
distinct), the loss ``Σ w_i lse_i`` with ``w`` their counts. It times the recomputing path, the
eager path told the weights (``tiled_logsumexp(weights=w)``: the backward scales), and the eager
path not told them (its forward's ``∂/∂c`` is then discarded and recomputed).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from sslrec.gemm import BACKENDS, cpu_gemm, cpu_gemm_backend, cpu_name
from sslrec.losses.tiled import default_rows, tiled_logsumexp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--B", type=int, default=2048)
    ap.add_argument("--N", type=int, nargs="+", default=[29858, 40981])
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--rows", type=int, nargs="+", default=[0], help="0: default_rows")
    ap.add_argument("--weighted", action="store_true", help="a count-weighted loss (see above)")
    ap.add_argument("--gemm", nargs="+", choices=BACKENDS, default=[cpu_gemm_backend()])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    sides = []
    for n in args.N:
        b = args.B
        w = None
        if args.weighted:
            _, counts = torch.unique(torch.randint(0, b, (b,), generator=g), return_counts=True)
            w, b = counts.float(), counts.numel()
        a = F.normalize(torch.randn(b, args.d, generator=g), dim=-1) / 0.2
        c = F.normalize(torch.randn(n, args.d, generator=g), dim=-1)
        sides.append((a.requires_grad_(), c.requires_grad_(), w))

    def step(variant: tuple[int | None, bool, str]) -> None:
        rows, told, gemm = variant
        with cpu_gemm(gemm):
            for a, c, w in sides:
                lse = tiled_logsumexp(a, c, rows=rows, weights=w if told else None)
                (lse.sum() if w is None else (lse * w).sum()).backward()
                a.grad = c.grad = None

    variants: dict[str, tuple[int | None, bool, str]] = {
        "recompute (rows=0)": (0, True, args.gemm[0])
    }
    for gemm in args.gemm:
        for r in args.rows:
            with cpu_gemm(gemm):  # the library sets the default rows
                rows_default = default_rows(max(args.N), torch.float32)
            name = f"eager, default rows ({rows_default})" if r == 0 else f"eager, rows={r}"
            if len(args.gemm) > 1:
                name += f", {gemm}"
            if args.weighted:
                variants[name + ", weights given"] = (r or None, True, gemm)
                variants[name + ", weights not given"] = (r or None, False, gemm)
            else:
                variants[name] = (r or None, True, gemm)
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
    rows_seen = [a.shape[0] for a, _, _ in sides]
    kind = f"distinct {rows_seen}, count-weighted" if args.weighted else "anchors"
    print(
        f"B={args.B} ({kind}), "
        f"N={args.N}, d={args.d}, fp32, {args.threads} threads, torch "
        f"{torch.__version__}, {platform.machine()} ({cpu_name()}); CPU GEMM {args.gemm}; "
        f"{args.repeats} interleaved repeats"
    )
    print("| variant | median s (both sides) | / recompute (median of ratios, quartiles) |")
    print("|---|---:|---:|")
    for name in names:
        ratio = sorted(t / b for t, b in zip(times[name], base, strict=True))
        q1, med, q3 = statistics.quantiles(ratio, n=4)
        print(f"| {name} | {statistics.median(times[name]):.3f} | {med:.3f} ({q1:.3f}–{q3:.3f}) |")


if __name__ == "__main__":
    main()
