"""Why a step grows faster than the graph from 10M to 30M interactions: one sparse product,
per stored entry, with the same graph laid out three ways.

    python experiments/bench_spmm_locality.py --sizes 1e6 3e6 1e7 3e7 --datasets gowalla yelp2018

``bench_scale.py`` measured local slopes of 1.37-1.45 for a step from 10M to 30M interactions
(1.05-1.20 below), and the sparse products are most of a step. A product ``Â X`` reads, for
each of ``Â``'s ``2E`` stored entries, one random row of the ``[U + I, d]`` block ``X``; its
own arrays (``crow``, ``col``, values) and the output are read or written in order. So the
same count of multiply-adds costs more per entry once ``X`` no longer fits a cache. Each size's
adjacency (the power-law graphs of ``bench_scale.py``, cached in ``--cache``, and real datasets)
is timed, interleaved in one process, as

- ``shuffled``: as built (ids in no order of degree, as in real data);
- ``degree``: nodes renumbered by falling degree, users and items apart (the rows that most
  entries point at share cache lines and pages);
- ``cached``: the same row pointers and values, each column id folded into the first
  ``--window`` rows (``c mod window``): the same work with every read of ``X`` in cache, the
  per-entry floor;
- ``blocked``: ``shuffled`` cut into ``--col-blocks`` column blocks, one product each,
  accumulated into the output (``β = 1`` after the first): each block's rows of ``X`` stay in
  cache while it runs, for one more pass over the output per block (values equal up to the
  order of each row's sums);
- ``huge``: ``shuffled`` with ``X`` in transparent huge pages (numpy's ``madvise``; the
  kernel may back fewer than asked: the backed MiB are printed): 2 MiB pages instead of 4 KiB,
  so address translation misses fewer times per random row.

Each product is ``spmm`` into a reused output (what the encoder does). Printed: ns per stored
entry (median of ``--repeats``), ratios taken in the same run, and ``X``'s size against the
caches (``lscpu``). Results are equal across layouts only up to the renumbering (checked
for ``degree``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from sslrec.data import DatasetSpec, load_dataset
from sslrec.graph import normalized_adjacency
from sslrec.graph.spmm import spmm

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale import cached_data  # noqa: E402

from sslrec.data.dataset import benchmark_data_root


def _pairs_synthetic(path: Path) -> tuple[np.ndarray, np.ndarray, int, int]:
    arrays = np.load(path)
    n_users, n_items = (int(v) for v in arrays["shape"])
    users = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(arrays["indptr"]))
    return users, arrays["indices"].astype(np.int64), n_users, n_items


def _pairs_real(name: str, root: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    data = load_dataset(DatasetSpec(name=name, path=f"{root}/{name}"))
    coo = data.train.tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64), data.n_users, data.n_items


def _by_degree(ids: np.ndarray, n: int) -> np.ndarray:
    """``[n]`` new id of each old id: falling degree (ties by old id)."""
    deg = np.bincount(ids, minlength=n)
    order = np.argsort(-deg, kind="stable")
    new = np.empty(n, dtype=np.int64)
    new[order] = np.arange(n)
    return new


def layouts(
    users, items, n_users, n_items, window: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The three adjacencies of the module docstring (each ``[U+I, U+I]`` CSR), and ``[U+I]``
    each node's id in ``degree``."""
    build = normalized_adjacency
    shuffled = build(torch.from_numpy(users), torch.from_numpy(items), n_users, n_items)
    du, di = _by_degree(users, n_users), _by_degree(items, n_items)
    degree = build(torch.from_numpy(du[users]), torch.from_numpy(di[items]), n_users, n_items)
    cols = shuffled.col_indices()
    folded = torch.sparse_csr_tensor(
        shuffled.crow_indices(), cols % window, shuffled.values(), shuffled.shape
    )
    new = torch.from_numpy(np.concatenate([du, di + n_users]))
    return {"shuffled": shuffled, "degree": degree, "cached": folded}, new


def _anon_huge_mib() -> float:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _array(n: int, dim: int, huge: bool) -> torch.Tensor:
    """``[n, dim]`` float32 in numpy memory, with or without its huge-page ``madvise``."""
    from numpy._core.multiarray import _set_madvise_hugepage

    before = _set_madvise_hugepage(huge)
    try:
        a = np.empty((n, dim), dtype=np.float32)
    finally:
        _set_madvise_hugepage(before)
    a.fill(0.0)  # first touch: the pages (huge or not) are backed here
    return torch.from_numpy(a)


def column_blocks(adj: torch.Tensor, n_blocks: int) -> list[tuple[int, int, torch.Tensor]]:
    """``adj`` ``[N, N]`` CSR as ``(start, stop, adj[:, start:stop])`` column blocks."""
    n = adj.shape[0]
    whole = sp.csr_array(
        (adj.values().numpy(), adj.col_indices().numpy(), adj.crow_indices().numpy()),
        shape=(n, n),
    )
    edges = np.linspace(0, n, n_blocks + 1).astype(np.int64)
    out = []
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        block = whole[:, start:stop].tocsr()
        crow, cols = (torch.from_numpy(a.astype(np.int32)) for a in (block.indptr, block.indices))
        tensor = torch.sparse_csr_tensor(
            crow, cols, torch.from_numpy(block.data), (n, stop - start)
        )
        out.append((int(start), int(stop), tensor))
    return out


def blocked_spmm(blocks, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``Σ_b Â[:, b] X[b]`` into ``out``, block by block."""
    for j, (start, stop, block) in enumerate(blocks):
        out.addmm_(block, x[start:stop], beta=0 if j == 0 else 1)
    return out


def time_layouts(
    adjs: dict[str, torch.Tensor], dim: int, repeats: int, col_blocks: int
) -> tuple[dict[str, float], float, float]:
    """Median seconds of one product per layout (and ``blocked``, ``huge``), interleaved
    (rotated each repeat); the MiB that huge pages back (``X`` in ``huge`` and anything else);
    and ``blocked``'s max difference from ``shuffled``."""
    n = next(iter(adjs.values())).shape[0]
    base = _anon_huge_mib()
    x = _array(n, dim, huge=False)
    x.copy_(torch.randn(n, dim, generator=torch.Generator().manual_seed(0)))
    x_huge = _array(n, dim, huge=True).copy_(x)
    blocks = column_blocks(adjs["shuffled"], col_blocks)
    runs = {name: (partial(spmm, adj), x) for name, adj in adjs.items()}
    runs["blocked"] = (partial(blocked_spmm, blocks), x)
    runs["huge"] = (partial(spmm, adjs["shuffled"]), x_huge)
    outs = {name: _array(n, dim, huge=False) for name in runs}
    for name, (product, xs) in runs.items():  # warm-up, first touch of the outputs
        product(xs, out=outs[name])
    if not torch.equal(outs["huge"], outs["shuffled"]):
        raise AssertionError("the huge-page product differs")
    blocked_diff = float((outs["blocked"] - outs["shuffled"]).abs().max())
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            product, xs = runs[name]
            t0 = time.perf_counter()
            product(xs, out=outs[name])
            times[name].append(time.perf_counter() - t0)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    return medians, _anon_huge_mib() - base, blocked_diff


def check_degree(adjs: dict[str, torch.Tensor], new: torch.Tensor, dim: int) -> float:
    """Max |difference| between the shuffled product and the renumbered one mapped back
    (``new``: each node's id in ``degree``)."""
    x = torch.randn(len(new), dim, generator=torch.Generator().manual_seed(1))
    x_new = torch.empty_like(x).index_copy_(0, new, x)
    ref = spmm(adjs["shuffled"], x)
    got = spmm(adjs["degree"], x_new).index_select(0, new)
    return float((ref - got).abs().max())


def caches() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return "; ".join(line.strip() for line in out.splitlines() if "cache" in line.lower())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="*", default=[1e6, 3e6, 1e7, 3e7])
    ap.add_argument("--datasets", nargs="*", default=[])
    ap.add_argument("--data-root", default=benchmark_data_root())
    ap.add_argument("--cache", default="/tmp/sslrec_scale_cache")
    ap.add_argument("--profile", default="gowalla")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--window", type=int, default=4096, help="rows of X in the cached layout")
    ap.add_argument("--col-blocks", type=int, default=8, help="column blocks in blocked")
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="append one JSON line per graph here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{platform.processor() or platform.machine()}, {args.threads} thread(s), "
        f"torch {torch.__version__}, d = {args.dim}; {caches()}"
    )
    print(
        "| graph | U + I | stored entries | X MiB | ns/entry shuffled | degree | cached | blocked "
        "| huge | shuffled / cached | degree / shuffled | blocked / shuffled | huge / shuffled "
        "| huge MiB | max diff degree / blocked |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    graphs = [
        (
            f"{s / 1e6:g}M",
            lambda s=s: _pairs_synthetic(cached_data(int(s), args.profile, 0, Path(args.cache))),
        )
        for s in args.sizes
    ]
    graphs += [
        (name, lambda name=name: _pairs_real(name, args.data_root)) for name in args.datasets
    ]
    for label, load in graphs:
        users, items, n_users, n_items = load()
        adjs, new = layouts(users, items, n_users, n_items, args.window)
        diff = check_degree(adjs, new, args.dim)
        secs, huge_mib, blocked_diff = time_layouts(adjs, args.dim, args.repeats, args.col_blocks)
        nnz = adjs["shuffled"].values().numel()
        ns = {name: 1e9 * s / nnz for name, s in secs.items()}
        n = n_users + n_items
        row = {
            "graph": label,
            "nodes": n,
            "entries": nnz,
            "x_mib": n * args.dim * 4 / 2**20,
            "threads": args.threads,
            "ns_per_entry": ns,
            "huge_mib": huge_mib,
            "max_diff": diff,
            "blocked_max_diff": blocked_diff,
            "col_blocks": args.col_blocks,
        }
        sh = ns["shuffled"]
        print(
            f"| {label} | {n:,} | {nnz:,} | {row['x_mib']:.0f} | {sh:.2f} | {ns['degree']:.2f} "
            f"| {ns['cached']:.2f} | {ns['blocked']:.2f} | {ns['huge']:.2f} "
            f"| {sh / ns['cached']:.2f} | {ns['degree'] / sh:.2f} | {ns['blocked'] / sh:.2f} "
            f"| {ns['huge'] / sh:.2f} | {huge_mib:.0f} | {diff:.1e} / {blocked_diff:.1e} |",
            flush=True,
        )
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")
        del adjs


if __name__ == "__main__":
    main()
