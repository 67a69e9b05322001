"""DirectAU's uniformity term, forward + backward: the official ``torch.pdist`` expression
against sslrec's one-block form (:func:`sslrec.losses.alignment.uniformity`), in one process,
the two taken in turn (a shared machine drifts), with each one's gradient error against the
same expression in float64 (max abs error over the max abs gradient).

    python experiments/bench_uniformity.py                     # B 1024 and 2048, 1 and 2 threads
    python experiments/bench_uniformity.py --rows 4096 --threads 2
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from sslrec.losses.alignment import uniformity


def official(x: torch.Tensor) -> torch.Tensor:
    """THUwangcy/DirectAU's ``uniformity``: ``pdist(x̃)² · −2 → exp → mean → log``."""
    return torch.pdist(F.normalize(x, dim=-1), p=2).pow(2).mul(-2).exp().mean().log()


def timed(fn, x: torch.Tensor) -> float:
    x.grad = None
    t0 = time.perf_counter()
    fn(x).backward()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {platform.machine()}, d {args.dim}, fp32; medians of "
          f"{args.repeats} forward + backward passes each, taken in turn")  # fmt: skip
    print(
        "| threads | B | pdist ms | sslrec ms | sslrec / pdist | value rel diff "
        "| grad error pdist | grad error sslrec |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for rows in args.rows:
            torch.manual_seed(0)
            x = torch.randn(rows, args.dim, requires_grad=True)
            with torch.no_grad():
                value_diff = float((uniformity(x) - official(x)).abs() / official(x).abs())
            x64 = x.detach().double().requires_grad_(True)
            (exact,) = torch.autograd.grad(official(x64), x64)
            errors = []
            for fn in (official, uniformity):
                (g,) = torch.autograd.grad(fn(x), x)
                errors.append(float((g.double() - exact).abs().max() / exact.abs().max()))
            times: dict[str, list[float]] = {"pdist": [], "sslrec": []}
            timed(official, x), timed(uniformity, x)  # warm-up
            for _ in range(args.repeats):
                times["pdist"].append(timed(official, x))
                times["sslrec"].append(timed(uniformity, x))
            ratios = [a / b for a, b in zip(times["sslrec"], times["pdist"], strict=True)]
            print(
                f"| {threads} | {rows} | {1e3 * statistics.median(times['pdist']):.1f} | "
                f"{1e3 * statistics.median(times['sslrec']):.1f} | "
                f"{statistics.median(ratios):.2f} | {value_diff:.1e} | {errors[0]:.1e} | "
                f"{errors[1]:.1e} |"
            )


if __name__ == "__main__":
    main()
