"""Benchmark one full-ranking evaluation (all test users × all items, metrics at K≤50).

python experiments/bench_evaluation.py --dataset gowalla --dim 64 --repeats 5
python experiments/bench_evaluation.py --model lightgcn neumf --threads 1 --repeats 3
python experiments/bench_evaluation.py --item-tile 0 2048 8192 --threads 2 --repeats 5
python experiments/bench_evaluation.py --selection full chunked --threads 2 --repeats 5
python experiments/bench_evaluation.py --selection chunked --precision fp32 bf16 --threads 2
python experiments/bench_evaluation.py --gemm mkl onednn --threads 2 --repeats 5

``--model embeddings`` (the default) ranks random ``[U, dim]``/``[I, dim]`` embeddings by inner
product: the ranker alone. ``--model lightgcn`` / ``neumf`` time a whole evaluation of a
randomly initialised model as the trainer runs it: ``model.scorer()`` (LightGCN's propagation;
NeuMF's split first layer) and the ranking through it (NeuMF: its tiled tower scorer in
``eval_memory_mb`` blocks). With several models each runs in its own process, so that each
peak RSS (the process's high-water mark: data, model and evaluation) is its own; the output
adds the ratio of their median seconds to the first model's. ``--item-tile`` times the ranker
with whole score rows (0) and with item tiles merged into a running top-k, ``--selection`` the
whole-row ``torch.topk`` (``full``, the path before 2026-12-06) against the chunk-maxima
selection over cache-sized user sub-blocks (``chunked``, the CPU default); variants run
interleaved and every variant's metrics must equal the first's bit for bit. ``--device cuda``
runs it on a GPU. ``--gemm`` times the CPU's fp32 score products on MKL and on oneDNN
(:mod:`sslrec.gemm`; the default is the library this CPU gets).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

from sslrec.data import DatasetSpec, load_dataset
from sslrec.data.dataset import benchmark_data_root
from sslrec.devices import synchronize
from sslrec.evaluation import Evaluator
from sslrec.gemm import BACKENDS, cpu_gemm, cpu_gemm_backend, cpu_name

MODELS = ("embeddings", "lightgcn", "neumf")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def bench_one(args: argparse.Namespace, model_name: str) -> dict:
    """Time ``args.repeats`` test evaluations of one model in this process."""
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(DatasetSpec(name=args.dataset, path=f"{args.data_root}/{args.dataset}"))
    torch.manual_seed(0)
    device = torch.device(args.device)
    ev = Evaluator(data, ks=(10, 20, 50), batch_size=args.batch_size)
    extra: dict = {}
    if model_name == "embeddings":
        gen = torch.Generator().manual_seed(0)
        users = torch.randn(data.n_users, args.dim, generator=gen).to(device)
        items = torch.randn(data.n_items, args.dim, generator=gen).to(device)

        def evaluate() -> dict:
            return ev.evaluate(users, items, "test")

        extra["dim"] = args.dim
    else:
        from omegaconf import OmegaConf

        from sslrec.factory import build_model

        target = {"lightgcn": "sslrec.models.LightGCN", "neumf": "sslrec.models.neumf.NeuMF"}
        cfg = {"_target_": target[model_name]}
        if model_name == "neumf":
            cfg["eval_memory_mb"] = args.eval_memory_mb
        model = build_model(OmegaConf.create(cfg), data, device).eval()
        scorer = model.scorer()
        extra["block_users"] = min(args.batch_size, scorer.block_users or args.batch_size)
        if model_name == "neumf":
            extra |= {"eval_memory_mb": args.eval_memory_mb, "layers": model.layers}
        else:
            extra |= {"dim": model.embedding_dim, "num_layers": model.num_layers}
        del scorer

        def evaluate() -> dict:
            with torch.no_grad():
                return ev.evaluate_scorer(model.scorer(), "test")

    rss_before = _peak_rss_mb()
    tiles = args.item_tile if model_name != "neumf" else [0]
    # (item_tile, selection, precision, gemm): a tile overrides the selection, so tiles run once
    grid = [
        (t, s, p, g)
        for g in args.gemm
        for p in args.precision
        for t in tiles
        for s in (args.selection if t == 0 else ["full"])
    ]
    metrics: dict[tuple, dict] = {}

    def configure(variant: tuple) -> None:
        ev.item_tile, ev.selection, ev.precision = variant[0] or None, variant[1], variant[2]

    for variant in grid:
        configure(variant)
        for _ in range(args.warmup):
            with cpu_gemm(variant[3]):
                metrics[variant] = evaluate()
    times: dict[tuple, list[float]] = {v: [] for v in grid}
    for _ in range(args.repeats):  # variants interleaved: a noisy machine hits them alike
        for variant in grid:
            configure(variant)
            synchronize(device)
            t0 = time.perf_counter()
            with cpu_gemm(variant[3]):
                metrics[variant] = evaluate()
            synchronize(device)
            times[variant].append(time.perf_counter() - t0)
    first = grid[0]
    variants = {
        f"item_tile={v[0] or 'rows'},selection={v[1]},precision={v[2]},gemm={v[3]}": {
            "median_s": statistics.median(times[v]),
            "ratio_to_first": statistics.median(times[v]) / statistics.median(times[first]),
            "metrics_identical_to_first": metrics[v] == metrics[first],
            "max_abs_metric_diff_to_first": max(
                abs(metrics[v][k] - metrics[first][k]) for k in metrics[first]
            ),
        }
        for v in grid
    }
    users_evaluated = int(len(data.eval_users("test")))
    return {
        "model": model_name,
        "dataset": args.dataset,
        "users_evaluated": users_evaluated,
        "items": data.n_items,
        "pairs": users_evaluated * data.n_items,
        "batch_size": args.batch_size,
        **extra,
        "median_s": statistics.median(times[first]),
        "min_s": min(times[first]),
        "times_s": times[first],
        "variants": variants,
        "device": str(device),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "peak_rss_mb_before_eval": rss_before,
        "peak_rss_mb": _peak_rss_mb(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu": cpu_name(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="gowalla")
    ap.add_argument("--data-root", default=benchmark_data_root())
    ap.add_argument("--model", nargs="+", choices=MODELS, default=["embeddings"])
    ap.add_argument("--dim", type=int, default=64, help="--model embeddings only")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--eval-memory-mb", type=float, default=256, help="NeuMF's block budget")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--item-tile",
        type=int,
        nargs="+",
        default=[0],
        help="items per score tile, 0 = whole rows; several are timed interleaved and their "
        "metrics compared bit for bit with the first's",
    )
    ap.add_argument(
        "--selection",
        nargs="+",
        choices=("full", "chunked", "auto"),
        default=["auto"],
        help="top-k selections for whole rows, timed interleaved (the first is the baseline)",
    )
    ap.add_argument(
        "--precision",
        nargs="+",
        choices=("fp32", "bf16"),
        default=["fp32"],
        help="score precisions (bf16: not exact; its metric difference is reported)",
    )
    ap.add_argument(
        "--gemm",
        nargs="+",
        choices=BACKENDS,
        default=[cpu_gemm_backend()],
        help="CPU fp32 GEMM libraries (sslrec.gemm), timed interleaved",
    )
    args = ap.parse_args()
    if len(args.model) == 1:
        print(json.dumps(bench_one(args, args.model[0]), indent=2))
        return
    runs = []
    for name in args.model:  # one process each: separate peak RSS, no shared allocator state
        argv = [
            "--dataset", args.dataset, "--data-root", args.data_root, "--model", name,
            "--dim", str(args.dim), "--batch-size", str(args.batch_size),
            "--eval-memory-mb", str(args.eval_memory_mb), "--repeats", str(args.repeats),
            "--warmup", str(args.warmup), "--device", args.device,
            "--item-tile", *map(str, args.item_tile), "--selection", *args.selection,
            "--precision", *args.precision, "--gemm", *args.gemm,
        ] + (["--threads", str(args.threads)] if args.threads else [])  # fmt: skip
        out = subprocess.run(
            [sys.executable, __file__, *argv], check=True, capture_output=True, text=True
        ).stdout
        runs.append(json.loads(out[out.index("{") :]))
    base = runs[0]["median_s"]
    summary = {
        "runs": runs,
        "ratio_median_s": {r["model"]: r["median_s"] / base for r in runs},
        "ratio_to": runs[0]["model"],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
