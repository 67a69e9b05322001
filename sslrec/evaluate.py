"""``sslrec evaluate RUN_DIR [--split test|valid] [--ks 10 20 50] [--dataset-path DIR]``.

Recomputes a finished run's metrics from its saved model (``embeddings.npz`` for inner-product
models, the checkpoint's selected weights otherwise) on its own split, or on another dataset
folder with the same ids; prints the table and writes it as JSON.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sslrec.data import DataFormatError
from sslrec.evaluation import Evaluator
from sslrec.io import save_json
from sslrec.saved import RunNotUsable, load_run_data, load_scorer, open_run


def evaluate(
    run_dir: str | Path,
    split: str = "test",
    ks: Sequence[int] | None = None,
    dataset_path: str | Path | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """``{"metrics": {...}, "split", "ks", "dataset", "run"}`` of the run's selected model."""
    run = open_run(run_dir)
    data = load_run_data(run, dataset_path)
    cfg_eval = run.config.get("eval", {})
    ks = list(ks) if ks else list(cfg_eval.get("ks", (10, 20, 50)))
    metrics = list(cfg_eval.get("metrics", ("recall", "ndcg", "precision", "hit_rate", "mrr")))
    evaluator = Evaluator(data, ks=ks, metrics=metrics)
    scores = evaluator.evaluate_scorer(load_scorer(run, data, device), split)
    return {
        "run": str(run.path),
        "split": split,
        "ks": sorted(ks),
        "dataset": data.stats() | {"name": data.name},
        "metrics": scores,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sslrec evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished run directory")
    parser.add_argument("--split", choices=("test", "valid"), default="test")
    parser.add_argument("--ks", type=int, nargs="+", default=None, help="cut-offs (default: run's)")
    parser.add_argument("--dataset-path", default=None, help="another dataset folder, same ids")
    parser.add_argument(
        "--out", default=None, help="JSON file (default RUN_DIR/evaluate_SPLIT.json)"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        result = evaluate(args.run_dir, args.split, args.ks, args.dataset_path, args.device)
    except (RunNotUsable, DataFormatError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(args.run_dir) / f"evaluate_{args.split}.json"
    save_json(result, out)
    print(f"{args.split} of {result['dataset']['name']}")
    for key, value in result["metrics"].items():
        print(f"{key:<14}{value:>10.4f}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
