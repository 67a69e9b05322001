"""Growth of training cost with dataset size, on synthetic power-law interaction graphs.

**Generator** (:func:`generate`, seeded): ``E`` unique training pairs over ``U = E / e_u`` users
and ``I = E / e_i`` items, with Zipf-like degrees fitted to a real dataset (``--profile``;
``--fit-real`` prints the fit). The degree of the user of rank ``r`` is ``c · ((r − ½)/U)^−s_u``
(the quantile function of a Pareto law with tail exponent ``α = 1 + 1/s``), capped at ``I/20``
and floored at 1 so that every user has an interaction, ``c`` set so that the degrees sum to
``E`` exactly; items are drawn with probability ``∝ ((r − ½)/I)^−s_i`` by rank, user and item
ids are shuffled (degree is not sorted by id, as in real data), and a duplicate pair is redrawn
until none is left. ``gowalla`` (default): ``e_u = 34.41``, ``e_i = 25.07`` (gowalla's
interactions per user and per item, train + test) and rank exponents ``0.72`` (users) and
``0.63`` (items): least squares of log degree on log rank over every user / item of gowalla
(the bulk of the ranks, where the mean ``c/(1 − s)`` also holds); the generated data are fitted
the same way and match (``stats`` in the cache's ``.json``). At ``E = 1M`` the graph is
gowalla-sized (29,061 users, 39,888 items); the top degrees are heavier than gowalla's, whose
10-core filtering and finite size cut the tail (max user 1,994 vs 1,014, max item 5,156 vs
2,310). ``E``
counts *training* interactions (the generated set is all training: valid and test are empty).

**Measurement**: each (size, model, threads) runs in its own subprocess, so that its peak RSS
is its own; the data are generated once per size by another subprocess and cached as ``.npz``
(``--cache``), so the generator's memory is not counted. A run builds the model as
``sslrec.factory.build_model`` does (the normalised adjacency is timed in there), the
optimiser and sampler as the trainer does (``make_optimizer``, ``make_sampler``), draws one
epoch of batches, and times ``--steps`` optimisation steps after a warm-up step, exactly as
``bench_epoch.py`` (batch to the device, ``model.loss``, ``total``, backward, optimiser step):
the median step (wall clock and process CPU time), and the epoch estimate ``start_epoch +
n_batches × median step``. RSS (current and peak) is read after every phase for a breakdown.
On CUDA also ``torch.cuda.max_memory_allocated``. The parent kills a child whose RSS passes
``--max-rss-gb`` (the machine is shared) and skips that model's larger sizes.

On a shared machine the wall clock of a 1-thread run is inflated by time slicing; its CPU time
much less (cache and memory-bandwidth contention remain): both are reported, the exponents are
fitted on both, and the load average is recorded at the start and end of every run.

    python experiments/bench_scale.py                       # 1M 3M 10M 30M, 1 thread, CPU
    python experiments/bench_scale.py --threads 1 2         # 2 threads only if load < 1.5
    python experiments/bench_scale.py --device cuda --sizes 1e6 3e6 1e7 3e7 1e8
    python experiments/bench_scale.py --dataset yelp2018 --models simgcl --sizes  # real data
    python experiments/bench_scale.py --fit-real            # the profiles' fitted exponents

Writes ``results.jsonl`` (one row per run, with its phases), ``table.md`` and ``scale.png``
into ``--out`` (default ``experiments/results/scale_<date>/``).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sslrec.data.dataset import benchmark_data_root

HERE = Path(__file__).resolve().parent
MODELS = ("lightgcn", "simgcl", "xsimgcl")
#: interactions per user, per item (train + test), and the generator's rank exponents of the
#: user degrees and item popularities. ``--fit-real`` fits the real datasets: gowalla s_user 0.72,
#: s_item 0.63; yelp2018 0.60, 0.80. User degrees are set exactly (the fit of the generated data
#: is s_user); item degrees are sampled, and the sample's fit is ~0.05 above the popularity's
#: exponent, so s_item is set to give the real fit (gowalla 0.58 → 0.63 at 1M and 3M).
PROFILES = {
    "gowalla": {"per_user": 34.41, "per_item": 25.07, "s_user": 0.72, "s_item": 0.58},
    "yelp2018": {"per_user": 49.31, "per_item": 41.04, "s_user": 0.60, "s_item": 0.765},
}
#: no user interacts with more than this share of the items
USER_CAP = 1 / 20
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


# -- the generator -------------------------------------------------------------------------
def _degrees(n_users: int, n_items: int, n_pairs: int, s_user: float) -> np.ndarray:
    """``[U]`` int64 degrees ``min(c · ((r − ½)/U)^−s, cap)`` (rank order), floored at 1,
    summing to ``n_pairs`` exactly (largest remainders get the rounding)."""
    cap = max(1, int(n_items * USER_CAP))
    if not n_users <= n_pairs <= n_users * cap:
        raise ValueError(f"{n_pairs:,} pairs do not fit {n_users:,} users of degree 1..{cap}")
    w = ((np.arange(n_users) + 0.5) / n_users) ** -s_user
    lo, hi = 0.0, float(n_pairs)  # c: the capped degrees sum to n_pairs (monotone in c)
    for _ in range(200):
        c = (lo + hi) / 2
        if np.minimum(c * w, cap).sum() < n_pairs:
            lo = c
        else:
            hi = c
    x = np.clip(hi * w, 1, cap)
    deg = np.floor(x).astype(np.int64)
    short = n_pairs - int(deg.sum())
    if short > 0:  # round up the largest remainders below the cap
        frac = np.where(deg < cap, x - deg, -1.0)
        deg[np.argsort(-frac, kind="stable")[:short]] += 1
    elif short < 0:  # the floor at 1 overshot: take from the largest degrees
        deg[np.argsort(-deg, kind="stable")[:-short]] -= 1
    assert deg.sum() == n_pairs and deg.min() >= 1 and deg.max() <= cap
    return deg


def _dedupe_rounds(users, items, n_items, draw, rng) -> int:
    """Redraw the items of duplicate ``(user, item)`` pairs until none is left; returns the
    number of rounds. After the first round only the users that had a duplicate are checked."""
    rows = np.arange(len(users))
    for rounds in range(1, 1000):
        keys = users[rows] * n_items + items[rows]
        order = np.argsort(keys, kind="stable")
        dup = np.zeros(len(rows), dtype=bool)
        dup[order[1:]] = keys[order[1:]] == keys[order[:-1]]
        bad = rows[dup]
        if not len(bad):
            return rounds
        items[bad] = draw(len(bad))
        touched = np.zeros(users.max() + 1, dtype=bool)
        touched[users[bad]] = True
        rows = np.flatnonzero(touched[users])
    raise RuntimeError("duplicate redraws did not converge")


def generate(n_pairs: int, profile: str = "gowalla", seed: int = 0) -> dict:
    """Seeded power-law training pairs (see the module docstring) as CSR arrays and stats."""
    p = PROFILES[profile]
    n_users = max(1, round(n_pairs / p["per_user"]))
    n_items = max(2, round(n_pairs / p["per_item"]))
    rng = np.random.default_rng(seed)
    deg = _degrees(n_users, n_items, n_pairs, p["s_user"])[rng.permutation(n_users)]
    pop = ((np.arange(n_items) + 0.5) / n_items) ** -p["s_item"]
    cdf = np.cumsum(pop[rng.permutation(n_items)])
    cdf /= cdf[-1]

    def draw(n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), n_items - 1)

    users = np.repeat(np.arange(n_users, dtype=np.int64), deg)
    items = draw(n_pairs)
    rounds = _dedupe_rounds(users, items, n_items, draw, rng)
    order = np.lexsort((items, users))
    indices = items[order].astype(np.int32)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(deg)
    item_deg = np.bincount(indices, minlength=n_items)
    return {
        "indptr": indptr,
        "indices": indices,
        "shape": np.array([n_users, n_items]),
        "stats": {
            "profile": profile,
            "seed": seed,
            "interactions": n_pairs,
            "users": n_users,
            "items": n_items,
            "dedupe_rounds": rounds,
            "items_without_interaction": int((item_deg == 0).sum()),
            "max_user_degree": int(deg.max()),
            "max_item_degree": int(item_deg.max()),
            "s_user_fit": rank_exponent(deg),
            "s_item_fit": rank_exponent(item_deg[item_deg > 0]),
        },
    }


def rank_exponent(deg: np.ndarray) -> float:
    """``s`` of ``degree ∝ rank^−s``: least squares of log degree on log rank, every node."""
    deg = np.sort(np.asarray(deg, dtype=np.float64))[::-1]
    deg = deg[deg > 0]
    ranks = np.arange(1, len(deg) + 1)
    return float(-np.polyfit(np.log(ranks), np.log(deg), 1)[0])


def fit_real(data_root: str) -> None:
    """Print each profile dataset's interactions per user / item and rank exponents."""
    from sslrec.data import DatasetSpec, load_dataset

    for name in PROFILES:
        data = load_dataset(DatasetSpec(name=name, path=f"{data_root}/{name}"))
        full = (data.train + data.test).tocsr()
        users, items = np.diff(full.indptr), np.bincount(full.indices, minlength=data.n_items)
        print(
            f"{name}: {data.n_users:,} users, {data.n_items:,} items, {full.nnz:,} interactions;"
            f" per user {full.nnz / data.n_users:.2f}, per item {full.nnz / data.n_items:.2f};"
            f" s_user {rank_exponent(users):.3f}, s_item {rank_exponent(items):.3f};"
            f" min degree user {users.min()}, item {items.min()}; max user {users.max()},"
            f" item {items.max()}"
        )


def cached_data(n_pairs: int, profile: str, seed: int, cache: Path) -> Path:
    """The ``.npz`` of :func:`generate` (made by a subprocess when missing)."""
    path = cache / f"powerlaw_{profile}_{n_pairs}_{seed}.npz"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, __file__, "--generate", str(n_pairs), "--profile", profile]
        cmd += ["--seed", str(seed), "--cache", str(cache)]
        subprocess.run(cmd, check=True)
    return path


def _write_generated(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    out = generate(int(args.generate), args.profile, args.seed)
    out["stats"]["generate_s"] = time.perf_counter() - t0
    path = Path(args.cache) / f"powerlaw_{args.profile}_{int(args.generate)}_{args.seed}.npz"
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, indptr=out["indptr"], indices=out["indices"], shape=out["shape"])
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(out["stats"], indent=1))
    print(json.dumps(out["stats"]), flush=True)


# -- one run (child process) ---------------------------------------------------------------
def _memory() -> dict[str, float]:
    """Current and peak RSS of this process, MB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) / 1024
    return {"rss_mb": out["VmRSS"], "peak_mb": out["VmHWM"]}


def child(args: argparse.Namespace) -> dict:
    """Build, then time ``--steps`` steps of one model in this process."""
    if args.malloc == "mmap":  # before torch allocates anything
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    phases: list[dict] = []
    load_start = os.getloadavg()[0]

    def mark(name: str, **extra) -> None:
        row = {"phase": name, **_memory(), **extra}
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            row["cuda_mb"] = torch.cuda.memory_allocated(device) / 2**20
            row["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        phases.append(row)

    import scipy.sparse as sp
    import torch

    torch.set_num_threads(args.threads[0])
    device = torch.device(args.device)
    mark("import torch")

    from hydra import compose, initialize_config_dir

    import sslrec.factory as factory
    from sslrec.__main__ import config_dir
    from sslrec.config import TrainerConfig
    from sslrec.data import DatasetSpec, Interactions, load_dataset, split_validation
    from sslrec.devices import synchronize
    from sslrec.losses import total
    from sslrec.train.trainer import make_optimizer, make_sampler

    mark("import sslrec")
    if args.dataset:
        data = load_dataset(DatasetSpec(name=args.dataset, path=f"{args.data_root}/{args.dataset}"))
        mark("load dataset")
        data = split_validation(data, 0.1, seed=0)
    else:
        arrays = np.load(args.data_file)
        n_users, n_items = (int(v) for v in arrays["shape"])
        indices = arrays["indices"]
        train = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), indices, arrays["indptr"]),
            shape=(n_users, n_items),
        )
        empty = sp.csr_matrix((n_users, n_items), dtype=np.float32)
        data = Interactions(Path(args.data_file).stem, n_users, n_items, train, empty, empty)
    mark("data")

    timings: dict[str, float] = {}
    build_adjacency = factory.normalized_adjacency

    def timed_adjacency(*a, **kw):
        synchronize(device)
        mark("adjacency inputs")
        t0 = time.perf_counter()
        adj = build_adjacency(*a, **kw)
        synchronize(device)
        timings["adjacency_s"] = time.perf_counter() - t0
        mark("adjacency")
        return adj

    factory.normalized_adjacency = timed_adjacency
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={args.child}", *args.set])
    torch.manual_seed(0)
    model = factory.build_model(cfg.model, data, device)
    mark("model")
    tcfg = TrainerConfig(
        batch_size=cfg.trainer.batch_size, lr=cfg.trainer.lr, sampling=cfg.trainer.sampling
    )
    opt = make_optimizer(model, tcfg)
    mark("optimizer")
    sampler = make_sampler(data, tcfg, 0, device)
    mark("sampler")
    synchronize(device)
    t0 = time.perf_counter()
    model.start_epoch()
    synchronize(device)
    timings["start_epoch_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    batches = sampler.epoch()
    batch = next(batches)  # k = 1: the whole epoch's users, positives and negatives
    synchronize(device)
    timings["epoch_draw_s"] = time.perf_counter() - t0
    mark("epoch draw")
    walls, cpus = [], []
    for k in range(args.steps + 1):
        synchronize(device)
        t0, c0 = time.perf_counter(), time.process_time()
        loss = total(model.loss(batch.to(device)))
        if k == 0:
            mark("first forward")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        synchronize(device)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if k == 0:  # the warm-up step (Adam's state is allocated here)
            mark("first step")
        else:
            walls.append(wall)
            cpus.append(cpu)
        batch = next(batches)
    mark("steps")
    n_batches = len(sampler)
    step_wall, step_cpu = statistics.median(walls), statistics.median(cpus)
    out = {
        "model": args.child,
        "dataset": args.dataset or Path(args.data_file).stem,
        "interactions": int(data.train.nnz),
        "users": data.n_users,
        "items": data.n_items,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "malloc": args.malloc,
        "batch_size": tcfg.batch_size,
        "batches_per_epoch": n_batches,
        "step_s": step_wall,
        "step_cpu_s": step_cpu,
        "steps_s": walls,
        "steps_cpu_s": cpus,
        **timings,
        "epoch_s": timings["start_epoch_s"] + n_batches * step_wall,
        "epoch_cpu_s": timings["start_epoch_s"] + n_batches * step_cpu,
        "peak_rss_mb": _memory()["peak_mb"],
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "phases": phases,
    }
    if device.type == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


# -- the parent ----------------------------------------------------------------------------
def run_child(cmd: list[str], max_rss_mb: float) -> tuple[dict | None, str]:
    """Run one child, killing it when its RSS passes ``max_rss_mb``; (row or None, note)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status, worst = Path(f"/proc/{proc.pid}/status"), 0.0
    while proc.poll() is None:
        try:
            text = status.read_text()
            rss = int(text.split("VmRSS:")[1].split()[0]) / 1024 if "VmRSS:" in text else 0.0
        except (OSError, IndexError, ValueError):
            rss = 0.0
        worst = max(worst, rss)
        if rss > max_rss_mb:
            proc.kill()
            proc.wait()
            return None, f"killed: RSS {rss:,.0f} MB passed --max-rss-gb"
        time.sleep(0.2)
    out, err = proc.communicate()
    if proc.returncode:
        return None, f"failed (exit {proc.returncode}): {err.strip().splitlines()[-1][-300:]}"
    return json.loads(out.strip().splitlines()[-1]), ""


def machine() -> dict:
    import torch

    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(
        (k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lscpu.splitlines())
    )
    out = {
        "cpu": fields.get("Model name", platform.processor()),
        "cpus": fields.get("CPU(s)", str(os.cpu_count())),
        "threads_per_core": fields.get("Thread(s) per core", "?"),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
    }
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def fit_exponent(xs, ys) -> float:
    """Slope of log y on log x (nan with fewer than two points)."""
    if len(xs) < 2:
        return float("nan")
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def _fmt_size(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 10**6 else f"{n:,}"


def write_report(out: Path, rows: list[dict], notes: list[str], meta: dict) -> None:
    """``table.md`` (machine, command, table, exponents, phases) and ``scale.png``."""
    cuda = any("cuda_peak_mb" in r for r in rows)
    lines = [
        f"# Training cost vs. size ({meta['date']})",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['cpus']} logical CPUs "
        f"({meta['machine']['threads_per_core']} per core), {meta['machine']['memory_gb']} GiB; "
        f"torch {meta['machine']['torch']}, Python {meta['machine']['python']}"
        + (f"; GPU {meta['machine']['gpu']}" if "gpu" in meta["machine"] else "")
        + ".",
        f"Load average (1 min) at the start {meta['load_start']:.2f}, at the end "
        f"{meta['load_end']:.2f}; per run below. Data: {meta['data']}.",
        "",
        "| E (train) | U | I | model | thr | s/step | CPU s/step | steps/epoch | s/epoch | "
        "CPU s/epoch | adjacency s | peak RSS MB |"
        + (" CUDA peak MB |" if cuda else "")
        + " load |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        + ("---:|" if cuda else "")
        + "---|",
    ]
    for r in rows:
        lines.append(
            f"| {_fmt_size(r['interactions'])} | {r['users']:,} | {r['items']:,} | {r['model']} "
            f"| {r['threads']} | {r['step_s']:.3f} | {r['step_cpu_s']:.3f} | "
            f"{r['batches_per_epoch']:,} | {r['epoch_s']:,.0f} | {r['epoch_cpu_s']:,.0f} | "
            f"{r['adjacency_s']:.2f} | {r['peak_rss_mb']:,.0f} |"
            + (f" {r.get('cuda_peak_mb', float('nan')):,.0f} |" if cuda else "")
            + f" {r['load_start']:.1f}–{r['load_end']:.1f} |"
        )
    groups = sorted({(r["model"], r["threads"]) for r in rows})
    if len({r["interactions"] for r in rows}) > 1:
        lines += [
            "",
            "Fitted exponents (slope of log y on log E, all sizes; the local slope between "
            "consecutive sizes in brackets):",
            "",
            "| model | thr | s/step | CPU s/step | s/epoch | CPU s/epoch | peak RSS | "
            "RSS − import |" + (" CUDA peak |" if cuda else ""),
            "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if cuda else ""),
        ]
        for model, threads in groups:
            sel = sorted(
                (r for r in rows if r["model"] == model and r["threads"] == threads),
                key=lambda r: r["interactions"],
            )
            xs = [r["interactions"] for r in sel]

            def cell(ys, xs=xs):
                local = ", ".join(
                    f"{fit_exponent(xs[k : k + 2], ys[k : k + 2]):.2f}" for k in range(len(xs) - 1)
                )
                return f"{fit_exponent(xs, ys):.2f} ({local})"

            base = [r["peak_rss_mb"] - r["phases"][0]["rss_mb"] for r in sel]
            keys = ["step_s", "step_cpu_s", "epoch_s", "epoch_cpu_s", "peak_rss_mb"]
            cells = [cell([r[k] for r in sel]) for k in keys] + [cell(base)]
            if cuda:
                cells.append(cell([r.get("cuda_peak_mb", float("nan")) for r in sel]))
            lines.append(f"| {model} | {threads} | " + " | ".join(cells) + " |")
    lines += ["", "Peak RSS (MB) after each phase (cumulative high-water mark):", ""]
    names = list(dict.fromkeys(p["phase"] for r in rows for p in r["phases"]))
    lines += [
        "| run | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for r in rows:
        peaks = {p["phase"]: p["peak_mb"] for p in r["phases"]}
        cells = [f"{peaks[n]:,.0f}" if n in peaks else "" for n in names]
        label = f"{_fmt_size(r['interactions'])} {r['model']} ×{r['threads']}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    if len({r["interactions"] for r in rows}) > 1:
        plot(out / "scale.png", rows, cuda)


def plot(path: Path, rows: list[dict], cuda: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("step_cpu_s", "CPU s/step"),
        ("epoch_cpu_s", "CPU s/epoch (est.)"),
        ("peak_rss_mb", "peak RSS (MB)"),
    ]
    if cuda:
        panels.append(("cuda_peak_mb", "CUDA peak allocated (MB)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    groups = sorted({(r["model"], r["threads"]) for r in rows})
    for ax, (key, label) in zip(axes, panels, strict=True):
        for model, threads in groups:
            sel = sorted(
                (r for r in rows if r["model"] == model and r["threads"] == threads and key in r),
                key=lambda r: r["interactions"],
            )
            if sel:
                xs, ys = [r["interactions"] for r in sel], [r[key] for r in sel]
                ax.plot(xs, ys, "o-", label=f"{model} ({threads} thr)")
        xs = sorted({r["interactions"] for r in rows})
        ys = [r[key] for r in rows if r["interactions"] == xs[0] and key in r]
        if ys:
            y0 = min(ys)
            ax.plot(xs, [y0 * x / xs[0] for x in xs], "k--", lw=1, label="slope 1")
            if key.startswith("epoch"):
                ax.plot(xs, [y0 * (x / xs[0]) ** 2 for x in xs], "k:", lw=1, label="slope 2")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training interactions E")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="*", type=float, default=[1e6, 3e6, 1e7, 3e7])
    ap.add_argument("--models", nargs="+", default=["lightgcn", "simgcl", "xsimgcl"])
    ap.add_argument("--profile", default="gowalla", choices=list(PROFILES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", default=None, help="a real dataset instead of --sizes")
    ap.add_argument("--data-root", default=benchmark_data_root())
    ap.add_argument("--steps", type=int, default=3, help="timed steps after a warm-up step")
    ap.add_argument("--threads", nargs="+", type=int, default=[1])
    ap.add_argument("--force-threads", action="store_true", help="run >1 thread under load")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--malloc", default="default", choices=["default", "mmap"])
    ap.add_argument("--max-rss-gb", type=float, default=14.0)
    ap.add_argument("--cache", default="/tmp/sslrec_scale_cache")
    ap.add_argument("--out", default=None)
    ap.add_argument("--set", nargs="*", default=[], help="extra Hydra overrides for every model")
    ap.add_argument("--fit-real", action="store_true")
    ap.add_argument("--generate", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data-file", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fit_real:
        fit_real(args.data_root)
        return
    if args.generate:
        _write_generated(args)
        return
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return
    import torch

    date = datetime.date.today().isoformat()
    out = Path(args.out or HERE / "results" / f"scale_{date}")
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": date,
        "command": "python " + " ".join([os.path.relpath(__file__), *sys.argv[1:]]),
        "machine": machine(),
        "load_start": os.getloadavg()[0],
        "data": (
            f"{args.dataset} (validation split 0.1, seed 0, as bench_epoch.py)"
            if args.dataset
            else f"synthetic power law, profile {args.profile} {PROFILES[args.profile]}, "
            f"seed {args.seed}"
        ),
    }
    sizes = [None] if args.dataset else [int(s) for s in sorted(args.sizes)]
    rows, notes, generated = [], [], {}
    results = out / "results.jsonl"
    over: set[tuple[str, int]] = set()
    for size in sizes:
        data_args: list[str] = []
        if size is not None:
            path = cached_data(size, args.profile, args.seed, Path(args.cache))
            generated[size] = json.loads(path.with_suffix(".json").read_text())
            data_args = ["--data-file", str(path)]
        else:
            data_args = ["--dataset", args.dataset, "--data-root", args.data_root]
        for threads in args.threads:
            load = os.getloadavg()[0]
            if threads > 1 and load >= 1.5 and not args.force_threads:
                note = f"{threads} threads not measured: load average {load:.1f} >= 1.5"
                if note.split(":")[0] not in " ".join(notes):
                    notes.append(note)
                continue
            for model in args.models:
                if (model, threads) in over:
                    continue
                cmd = [sys.executable, __file__, "--child", model, *data_args]
                cmd += ["--steps", str(args.steps), "--device", args.device]
                cmd += ["--threads", str(threads), "--malloc", args.malloc, "--set", *args.set]
                row, note = run_child(cmd, args.max_rss_gb * 1024)
                label = f"{_fmt_size(size) if size else args.dataset} {model} ×{threads}"
                if row is None:
                    notes.append(f"{label}: {note}")
                    print(f"{label}: {note}", file=sys.stderr, flush=True)
                    if note.startswith("killed"):  # larger sizes would not fit either
                        over.add((model, threads))
                    continue
                row["generated"] = generated.get(size)
                row["command"] = meta["command"]
                with results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                rows.append(row)
                print(
                    f"{label}: step {row['step_s']:.3f} s (CPU {row['step_cpu_s']:.3f}), "
                    f"epoch {row['epoch_s']:,.0f} s (CPU {row['epoch_cpu_s']:,.0f}), adjacency "
                    f"{row['adjacency_s']:.2f} s, peak RSS {row['peak_rss_mb']:,.0f} MB, load "
                    f"{row['load_start']:.1f}–{row['load_end']:.1f}",
                    flush=True,
                )
    meta["load_end"] = os.getloadavg()[0]
    if generated:
        meta["generated"] = generated
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    write_report(out, rows, notes, meta)
    print(f"wrote {out}/table.md (torch {torch.__version__})")


if __name__ == "__main__":
    main()
