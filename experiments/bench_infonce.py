"""Benchmark the all-node InfoNCE logsumexp: naive ``[B, N]`` block vs the tiled kernel.

Times forward + backward of ``lse(a @ cᵀ) − (a · p)`` summed, with gradients to both ``a`` [B, d]
and ``c`` [N, d] (SGL's shape: B = 2048 anchors, N = all nodes), and measures the extra peak
memory of each variant. Every variant runs in a fresh subprocess so that its peak resident set
(``ru_maxrss``) is its own: the reported memory is the peak during the first forward + backward
minus the resident set just before it (inputs already allocated). ``positive_only`` (the ``a · p``
term alone) is the floor: its gradient buffers for ``a`` and ``c`` are common to all variants.
Prints a markdown table with the command.

    python experiments/bench_infonce.py --threads 1 --repeats 5 --tiles 0 64 256 1024 4096
    python experiments/bench_infonce.py --threads 1 --rows 0 32 64 128  # the eager path

``tiled:T`` recomputes the gradients tile by tile in the backward (``rows=0``); ``eager:R``
computes them in the forward in blocks of ``R`` anchors (:func:`tiled_logsumexp`'s default on
the CPU). ``experiments/bench_infonce_paths.py`` compares the two interleaved in one process.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from sslrec.losses.tiled import default_rows, default_tile, tiled_logsumexp


def _inputs(b: int, n: int, d: int, temperature: float, seed: int = 0):
    """SGL-like inputs: normalised anchors / τ, normalised candidates, positives among them."""
    g = torch.Generator().manual_seed(seed)
    c = F.normalize(torch.randn(n, d, generator=g), dim=-1)
    a = F.normalize(torch.randn(b, d, generator=g), dim=-1) / temperature
    pos = torch.randint(n, (b,), generator=g)
    return a.requires_grad_(), c.requires_grad_(), pos


def _step_fn(variant: str, a: torch.Tensor, c: torch.Tensor, pos: torch.Tensor):
    if variant == "positive_only":  # the floor: the a·p term and the gradient buffers

        def lse() -> torch.Tensor:
            return a.new_zeros(a.shape[0])

    elif variant == "naive":

        def lse() -> torch.Tensor:
            return torch.logsumexp(a @ c.t(), dim=1)

    elif variant.startswith("eager:"):  # the forward computes the gradients, in row blocks
        rows = int(variant.split(":")[1]) or None  # 0: the kernel's default_rows

        def lse() -> torch.Tensor:
            return tiled_logsumexp(a, c, rows=rows)

    else:  # tiled:<tile>, gradients recomputed tile by tile in the backward
        tile = int(variant.split(":")[1]) or None  # 0: the kernel's default_tile

        def lse() -> torch.Tensor:
            return tiled_logsumexp(a, c, tile, rows=0)

    def step() -> float:
        loss = (lse() - (a * c[pos]).sum(-1)).sum()
        loss.backward()
        a.grad = None
        c.grad = None
        return loss.item()

    return step


def _maxrss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mib() -> float:
    """Current resident set (Linux /proc; elsewhere the peak so far, a lower bound)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return _maxrss_mib()


def _child(args: argparse.Namespace) -> None:
    """One variant in this process: peak memory of the first step, then timed repeats."""
    torch.set_num_threads(args.threads)
    a, c, pos = _inputs(args.B, args.N, args.d, args.temperature)
    step = _step_fn(args.variant, a, c, pos)
    gc.collect()
    before, peak_before = _rss_mib(), _maxrss_mib()
    t0 = time.perf_counter()
    loss = step()  # also the warm-up
    first = time.perf_counter() - t0
    # The step's own peak is only visible if it exceeds the process's earlier peak (imports);
    # otherwise it is at most that margin, reported as such.
    peak = _maxrss_mib()
    extra = peak - before if peak > peak_before else peak_before - before
    extra_exact = peak > peak_before
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(
        json.dumps(
            {
                "variant": args.variant,
                "median_s": statistics.median(times),
                "min_s": min(times),
                "cpu_s": statistics.median(cpu),
                "first_s": first,
                "extra_peak_mib": extra,
                "extra_peak_exact": extra_exact,
                "loss": loss,
            }
        )
    )


def _run_variant(args: argparse.Namespace, variant: str) -> dict:
    cmd = [sys.executable, __file__, "--child", "--variant", variant]
    for key in ("repeats", "threads", "B", "N", "d", "temperature"):
        cmd += [f"--{key}", str(getattr(args, key))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--B", type=int, default=2048)
    ap.add_argument("--N", type=int, default=70839)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.2)
    ap.add_argument(
        "--tiles",
        type=int,
        nargs="+",
        default=[0, 256, 1024, 4096],
        help="column tiles to time; 0 is the kernel's default for --threads",
    )
    ap.add_argument(
        "--rows",
        type=int,
        nargs="*",
        default=[0],
        help="row blocks of the eager path (the forward computes the gradients) to time; 0 is "
        "the kernel's default_rows",
    )
    ap.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="naive", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return

    variants = ["positive_only"] + ([] if args.no_naive else ["naive"])
    variants += [f"tiled:{tile}" for tile in args.tiles]
    variants += [f"eager:{rows}" for rows in args.rows]
    results = {}
    for v in variants:
        results[v] = _run_variant(args, v)
        print(json.dumps(results[v]), file=sys.stderr, flush=True)

    base = results.get("naive")
    print(f"\n`{shlex.join(['python', 'experiments/bench_infonce.py', *sys.argv[1:]])}`\n")
    print(
        f"B={args.B}, N={args.N}, d={args.d}, τ={args.temperature}, threads={args.threads}, "
        f"repeats={args.repeats}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}; forward + backward, medians\n"
    )
    # CPU seconds (process time, all threads) are less sensitive than wall time to other
    # processes sharing the cores; compare ratios within one run.
    print("| variant | wall s | / naive | CPU s | / naive | extra peak MiB | loss |")
    print("|---|---|---|---|---|---|---|")
    torch.set_num_threads(args.threads)  # default_tile depends on it
    default = default_tile(args.B, torch.float32)
    rows = default_rows(args.N, torch.float32)
    for v, r in results.items():
        name = {"tiled:0": f"tiled:default ({default})", "eager:0": f"eager:default ({rows})"}
        name = name.get(v, v)
        wall = f"{r['median_s'] / base['median_s']:.3f}" if base else "–"
        cpu = f"{r['cpu_s'] / base['cpu_s']:.3f}" if base else "–"
        if v == "positive_only":
            wall = cpu = "–"
        print(
            f"| {name} | {r['median_s']:.3f} | {wall} | {r['cpu_s']:.3f} | {cpu} "
            f"| {'' if r['extra_peak_exact'] else '≤ '}{r['extra_peak_mib']:.0f} "
            f"| {r['loss']:.8g} |"
        )


if __name__ == "__main__":
    main()
