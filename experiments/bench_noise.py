"""SimGCL's CPU noise, part by part, against the plain numpy/torch call each part replaces.

    python experiments/bench_noise.py --threads T [--rows 70839 --dim 64 --repeats 30]

Interleaved in one run (a shared machine drifts), medians in ms, on a gowalla-sized ``[N, d]``:

- the chunked ``U[0, 1)`` draw (``sslrec.augment.noise._cpu_fill``, PCG64 raw outputs converted
  by :func:`~sslrec.augment.noise.uniform_fill`) against the same chunks, streams and threads
  drawn by ``Generator.random(dtype=float32)``; the two must be equal bit for bit (checked);
- a whole noisy layer ``x + noise``: ``UniformNoise.add_noise`` (draws kept as ``2²⁴ · U``, the
  sign and the addition in one ``addcmul``) against the path it replaced on 2026-12-07 (``U``
  draws, row scale, ``copysign``, a zero check, a separate addition; kept here for the record),
  which must give the same numbers bit for bit (checked).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from sslrec.augment import noise as noise_mod


def generator_random(out: np.ndarray, bit_generator: np.random.PCG64, unit: bool = True) -> None:
    """What :func:`~sslrec.augment.noise.uniform_fill` replaces: numpy's own float32 draw."""
    assert unit
    np.random.Generator(bit_generator).random(out=out, dtype=np.float32)


def fill_with(fill, buf: np.ndarray, seed: int) -> None:
    """``_cpu_fill`` (same chunks, streams and threads) with ``fill`` drawing each chunk."""
    kept = noise_mod.uniform_fill
    noise_mod.uniform_fill = fill
    try:
        noise_mod._cpu_fill(buf, seed, "uniform")
    finally:
        noise_mod.uniform_fill = kept


def before_add_noise(x: torch.Tensor, eps: float) -> torch.Tensor:
    """What ``UniformNoise.add_noise`` replaced: ``x += copysign(ε Δ / ‖Δ‖, x)``, zero where
    ``x`` is, in five passes after the draw."""
    noise = noise_mod.draw_like(x, "uniform")
    norm = torch.linalg.vector_norm(noise, dim=-1, keepdim=True)
    noise.mul_(norm.clamp_min_(noise_mod.NORM_EPS).reciprocal_().mul_(eps))
    noise.copysign_(x)
    if not x.numpy().all():
        noise.masked_fill_(x == 0, 0.0)
    return x.add_(noise)


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
    x[5] = 0.0  # a node without edges, as after a propagation
    y = x.clone()
    torch.manual_seed(1)
    before_add_noise(x, 0.1)
    torch.manual_seed(1)
    augmenter.add_noise(y)
    assert torch.equal(x, y), "add_noise differs from the path it replaced"
    cases = {
        "draw: Generator.random chunks": lambda r: fill_with(generator_random, b, r),
        "draw: uniform_fill chunks (sslrec)": lambda r: noise_mod._cpu_fill(a, r, "uniform"),
        "noisy layer: before 2026-12-07": lambda r: before_add_noise(x, 0.1),
        "noisy layer: add_noise (sslrec)": lambda r: augmenter.add_noise(y),
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
        "uniform_fill equals Generator.random, and add_noise the path before, bit for bit: checked"
    )
    print("| part | median ms |\n|---|---:|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts) * 1e3:.2f} |")


if __name__ == "__main__":
    main()
