"""Mean ± std over seeds of test metrics for every run under the given directories.

Runs are grouped by model (and augmenter); each run directory must hold ``results.json`` and
``config.yaml`` (the sslrec output contract).

    python experiments/summarize.py RUN_DIR [RUN_DIR ...] --metrics recall@20 ndcg@20
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import yaml


def label(cfg: dict) -> str:
    name = cfg["model"]["_target_"].rsplit(".", 1)[-1]
    aug = cfg.get("augmenter")
    if name == "SGL" and aug:
        name += "-" + {"EdgeDropout": "ED", "NodeDropout": "ND", "RandomWalk": "RW"}.get(
            aug["_target_"].rsplit(".", 1)[-1], "?"
        )
    if "ssl_weight" in cfg["model"]:
        name += f" λ={cfg['model']['ssl_weight']}"
    return name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--metrics", nargs="+", default=["recall@20", "ndcg@20"])
    args = ap.parse_args()
    groups: dict[str, list[dict]] = defaultdict(list)
    for d in args.dirs:
        for res in sorted(d.rglob("results.json")):
            cfg = yaml.safe_load((res.parent / "config.yaml").read_text())
            out = json.loads(res.read_text())
            groups[label(cfg)].append(out | {"seed": cfg["seed"]})
    head = "| model | seeds | " + " | ".join(args.metrics) + " | best epoch | s/epoch |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for name, runs in groups.items():
        cells = []
        for m in args.metrics:
            vals = [r["test"][m] for r in runs]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):.4f} ± {sd:.4f}")
        epochs = statistics.mean(r["best_epoch"] for r in runs)
        spe = statistics.mean(r["seconds_per_epoch"] for r in runs)
        seeds = ",".join(str(r["seed"]) for r in runs)
        print(f"| {name} | {seeds} | " + " | ".join(cells) + f" | {epochs:.0f} | {spe:.2f} |")


if __name__ == "__main__":
    main()
