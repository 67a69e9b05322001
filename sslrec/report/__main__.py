"""CLI: ``python -m sslrec.report DIR [DIR ...] [--out OUTDIR] [--metric M ...]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sslrec.report import DEFAULT_METRICS, build_report, write_report
from sslrec.report.stats import TESTS


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m sslrec.report",
        description="Summarise run directories into report.md, report.csv and PNG plots.",
    )
    parser.add_argument("dirs", nargs="+", help="run directories or folders searched for them")
    parser.add_argument("--out", default="report", help="output folder (default: ./report)")
    parser.add_argument("--metric", nargs="+", default=list(DEFAULT_METRICS), dest="metrics")
    parser.add_argument(
        "--baseline",
        nargs="+",
        default=None,
        help="label(s) of the baseline(s), exact or a substring; each row is tested against "
        "one of its own model where there is one (default: lightgcn)",
    )
    parser.add_argument("--split", default="test", help="results split (default: test)")
    parser.add_argument("--test", choices=TESTS, default="ttest", help="paired test vs baseline")
    parser.add_argument(
        "--wandb", action="store_true", help="also log the table and plots to wandb (offline)"
    )
    parser.add_argument("--wandb-mode", choices=("offline", "online"), default="offline")
    parser.add_argument("--wandb-project", default="sslrec")
    parser.add_argument("--wandb-group", default=None, help="default: the sweep's group")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build and write the report; print the files written. Returns the exit status."""
    args = parse_args(argv)
    try:
        report = build_report(args.dirs, args.metrics, args.baseline, args.split, args.test)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not report.groups:
        print(f"error: no run directories (with config.yaml) under {args.dirs}", file=sys.stderr)
        return 1
    n_runs = sum(len(g.runs) for g in report.groups)
    print(
        f"{n_runs} runs, {len(report.groups)} configurations, {len(report.unfinished)} unfinished"
    )
    paths = write_report(report, args.out)
    for path in paths:
        print(path)
    if args.wandb:
        from sslrec.report.dashboard import sweep_group, upload_report

        group = args.wandb_group or sweep_group(args.dirs[0])
        plots = [p for p in paths if p.suffix == ".png"]
        if upload_report(
            report, plots, group, args.wandb_project, mode=args.wandb_mode, dir=args.out
        ):
            print(f"logged to wandb ({args.wandb_mode}), group {group}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
