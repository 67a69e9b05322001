"""Kernels and host ms per step of two trees, measured in alternation (the machine drifts):
    python before_after.py RUNS BEFORE_TREE AFTER_TREE [MODEL ...]
Each tree needs experiments/bench_host_overhead.py (copy it into the older one). Prints the
table of before_after.md and the raw runs as JSON."""

import json
import os
import statistics
import subprocess
import sys

runs, before, after = int(sys.argv[1]), sys.argv[2], sys.argv[3]
trees = {"before": before, "after": after}
models = sys.argv[4:] or [
    "lightgcn", "sgl-ed", "simgcl", "xsimgcl", "ncl", "directau", "simplex", "lightgcl", "mf"
]  # fmt: skip
res = {t: {m: [] for m in models} for t in trees}
kern: dict = {t: {} for t in trees}
for r in range(runs):
    for t in list(trees) if r % 2 == 0 else list(trees)[::-1]:
        out = f"/tmp/host_overhead_{t}.jsonl"
        cmd = [sys.executable, f"{trees[t]}/experiments/bench_host_overhead.py", "--rounds", "3"]
        env = dict(os.environ, PYTHONPATH=trees[t])
        subprocess.run([*cmd, "--out", out, "--models", *models], cwd=trees[t], env=env,
                       check=True, capture_output=True)  # fmt: skip
        for line in open(out):
            row = json.loads(line)
            res[t][row["model"]].append(row["host_ms_per_step"])
            kern[t][row["model"]] = row["kernels_per_step"]
print("| model | kernels before | kernels after | host ms before | host ms after "
      f"| after/before (median of {runs} paired runs) |")  # fmt: skip
print("|---|---:|---:|---:|---:|---:|")
for m in models:
    ratios = [a / b for a, b in zip(res["after"][m], res["before"][m], strict=True)]
    print(
        f"| {m} | {kern['before'][m]:.0f} | {kern['after'][m]:.0f} | "
        f"{statistics.median(res['before'][m]):.2f} | {statistics.median(res['after'][m]):.2f} | "
        f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |"
    )
print(json.dumps({"runs": res, "kernels": kern}))
