"""SimGCL's CPU noise, part by part, against the plain numpy/torch call each part replaces.

    python experiments/bench_noise.py --threads T [--rows 70839 --dim 64 --repeats 30]

Interleaved in one run (a shared machine drifts), medians in ms, on a gowalla-sized ``[N, d]``:

- the chunked ``U[0, 1)`` draw (``sslrec.augment.noise._cpu_fill``, PCG64 raw outputs converted
  by :func:`~sslrec.augment.noise.uniform_fill`) against the same chunks, streams and threads
  drawn by ``Generator.random(dtype=float32)``; the two must be equal bit for bit (checked);
- the zero check of ``sign(x)`` (``_has_zero``: numpy's ``all``) against ``torch.count_nonzero``;
- the whole ``UniformNoise.additive_noise`` (draw, row norm, scale, sign), for its share.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from sslrec.augment import noise as noise_mod


def generator_random(out: np.ndarray, bit_generator: np.random.PCG64) -> None:
    """What :func:`~sslrec.augment.noise.uniform_fill` replaces: numpy's own float32 draw."""
    np.random.Generator(bit_generator).random(out=out, dtype=np.float32)


def fill_with(fill, buf: np.ndarray, seed: int) -> None:
    """``_cpu_fill`` (same chunks, streams and threads) with ``fill`` drawing each chunk."""
    kept = noise_mod.uniform_fill
    noise_mod.uniform_fill = fill
    try:
        noise_mod._cpu_fill(buf, seed, "uniform")
    finally:
        noise_mod.uniform_fill = kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=70_839, help="N (gowalla: users + items)")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.rows, args.dim, generator=torch.Generator().manual_seed(0))
    a = np.empty((args.rows, args.dim), np.float32)
    b = np.empty_like(a)
    noise_mod._cpu_fill(a, 7, "uniform")
    fill_with(generator_random, b, 7)
    assert np.array_equal(a, b), "uniform_fill differs from Generator.random"
    augmenter = noise_mod.UniformNoise(eps=0.1)
    cases = {
        "draw: Generator.random chunks": lambda r: fill_with(generator_random, b, r),
        "draw: uniform_fill chunks (sslrec)": lambda r: noise_mod._cpu_fill(a, r, "uniform"),
        "zero check: torch.count_nonzero": lambda r: bool(torch.count_nonzero(x) < x.numel()),
        "zero check: numpy all (sslrec)": lambda r: noise_mod._has_zero(x),
        "additive_noise, whole (sslrec)": lambda r: augmenter.additive_noise(x),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(args.repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn(r)
            times[name].append(time.perf_counter() - t0)
    print(
        f"[{args.rows}, {args.dim}] float32, {args.threads} threads, {args.repeats} interleaved "
        f"repeats, torch {torch.__version__}, numpy {np.__version__}, {platform.machine()}; "
        "uniform_fill equals Generator.random bit for bit: checked"
    )
    print("| part | median ms |\n|---|---:|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts) * 1e3:.2f} |")


if __name__ == "__main__":
    main()
