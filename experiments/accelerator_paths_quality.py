"""Do the accelerator's code paths train as well as the host's? Runs on the CPU, no GPU needed.

    python experiments/accelerator_paths_quality.py OUT_DIR [--models lightgcn simgcl ...]
        [--seeds 1 2 3] [--jobs 2]

Each model and seed is trained twice on the bundled lastfm with its default config (validation
protocol): once on the host's paths, once under :func:`sslrec.devices.accelerator_paths`, which
takes every branch a GPU takes (the device sampler with its own seeded stream, torch's noise
draws, repeated anchors kept, the masked in-batch InfoNCE, the recomputing all-node backward,
every row propagated) on the CPU's kernels. The two draw different random numbers, so the
metrics differ run by run; across seeds they should agree within the seed-to-seed spread. One
torch thread per job; ``--jobs`` jobs at a time. Writes ``OUT_DIR/<model>-<path>-s<seed>/`` runs
and prints (and writes to ``OUT_DIR/summary.md``) the test metrics of both paths.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PATHS = ("host", "accelerator")


def child(model: str, seed: int, path: str, out: Path) -> None:
    """Train one run in this process."""
    from contextlib import nullcontext

    from sslrec import fit
    from sslrec.devices import accelerator_paths

    overrides = (f"model={model}", f"seed={seed}", "threads=1", "logger=none")
    with accelerator_paths() if path == "accelerator" else nullcontext():
        fit(*overrides, "trainer.progress=false", out_dir=out)


def run_one(out_dir: Path, model: str, seed: int, path: str) -> Path:
    out = out_dir / f"{model}-{path}-s{seed}"
    if not (out / "results.json").is_file():
        cmd = [sys.executable, __file__, "--child", model, str(seed), path, str(out)]
        with (out_dir / f"{out.name}.log").open("w") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
    return out


def summary(out_dir: Path, models: list[str], seeds: list[int]) -> str:
    lines = [
        "| model | path | seeds | Recall@20 | NDCG@20 | best epochs | s/epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in models:
        for path in PATHS:
            res = [
                json.loads((out_dir / f"{model}-{path}-s{s}" / "results.json").read_text())
                for s in seeds
            ]
            if any(r.get("status", "finished") != "finished" for r in res):
                lines.append(f"| {model} | {path} | failed: see the run folders | | | | |")
                continue

            def stat(key: str, res=res) -> str:
                values = [r["test"][key] for r in res]
                spread = statistics.stdev(values) if len(values) > 1 else float("nan")
                return f"{statistics.mean(values):.4f} ± {spread:.4f}"

            epochs = ", ".join(str(r["best_epoch"]) for r in res)
            per_epoch = statistics.median(r["seconds"] / r["epochs_run"] for r in res)
            lines.append(
                f"| {model} | {path} | {','.join(map(str, seeds))} | {stat('recall@20')} | "
                f"{stat('ndcg@20')} | {epochs} | {per_epoch:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default="outputs/accelerator_paths_quality")
    ap.add_argument("--models", nargs="+", default=["lightgcn", "simgcl", "xsimgcl"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        model, seed, path, out = args.child
        child(model, int(seed), path, Path(out))
        return 0
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(m, s, p) for m in args.models for s in args.seeds for p in PATHS]
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda job: run_one(out_dir, *job), jobs))
    table = summary(out_dir, args.models, args.seeds)
    (out_dir / "summary.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
