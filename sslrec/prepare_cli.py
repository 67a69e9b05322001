"""``sslrec prepare INPUT --format FORMAT --out DIR [options]``: raw data → a dataset folder.

Examples::

    sslrec prepare ml-1m/ratings.dat --format movielens-dat --out data/ml1m \\
        --min-rating 4 --kcore 10 --split random --ratios 0.8 0.1 0.1 --seed 0
    sslrec prepare ratings.csv --format movielens-csv --out data/ml --split loo --valid
    sslrec prepare log.tsv --format csv --user-col uid --item-col iid --time-col ts \\
        --out data/log --split temporal --by global --ratios 0.8 0.2

The folder then trains with ``python -m sslrec dataset=custom dataset.path=DIR``; see
:mod:`sslrec.data.prepare` for every step and the per-user rounding rule of the splits.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sslrec.data.prepare import DEDUP_POLICIES, FORMATS, SPLITS, prepare, summary
from sslrec.data.readers import DataFormatError


def _separator(value: str) -> str:
    """``tab``/``\\t`` → a tab, ``space`` → a space; anything else verbatim."""
    return {"tab": "\t", "\\t": "\t", "space": " "}.get(value, value)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="sslrec prepare",
        description="Turn raw interactions into train.txt / valid.txt / test.txt (LightGCN "
        "format, contiguous ids), user_ids.tsv, item_ids.tsv and stats.json.",
    )
    p.add_argument("input", help="the raw interaction file")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="output folder (must be empty unless --force)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out")
    g = p.add_argument_group("columns (csv; the names also override recbole's defaults)")
    g.add_argument(
        "--sep",
        type=_separator,
        default=None,
        help="separator: ',', tab, ';' ... (default: tab if the header has one, else ',')",
    )
    g.add_argument("--user-col", default=None, help="user column (default user_id)")
    g.add_argument("--item-col", default=None, help="item column (default item_id)")
    g.add_argument("--rating-col", default=None, help="rating column (default: none)")
    g.add_argument("--time-col", default=None, help="timestamp column (default: none)")
    g.add_argument("--encoding", default="utf-8", help="input text encoding (default utf-8)")
    g = p.add_argument_group("filters")
    g.add_argument("--min-rating", type=float, default=None, help="keep ratings >= X")
    g.add_argument("--kcore", type=int, default=None, help="K for both --user-core and --item-core")
    g.add_argument("--user-core", type=int, default=None, help="drop users with < K items")
    g.add_argument("--item-core", type=int, default=None, help="drop items with < K users")
    g.add_argument(
        "--dedup",
        choices=DEDUP_POLICIES,
        default="first",
        help="repeated (user, item) pairs: keep the first/last (by timestamp, else "
        "file order), the highest rating, or stop (default first)",
    )
    g = p.add_argument_group("split")
    g.add_argument("--split", choices=SPLITS, default="random")
    g.add_argument(
        "--ratios",
        type=float,
        nargs="+",
        default=None,
        help="train [valid] test, summing to 1 (default 0.8 0.1 0.1)",
    )
    g.add_argument(
        "--by",
        choices=("global", "user"),
        default="global",
        help="temporal: one time cut for everyone, or per user (default global)",
    )
    g.add_argument("--valid", action="store_true", help="loo: also a validation item per user")
    g.add_argument("--seed", type=int, default=0, help="seed of the random splits (default 0)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare the dataset and print what each step removed; returns the exit status
    (0 done, 1 bad input data, 2 bad options or an output folder in the way)."""
    args = parse_args(argv)
    user_core = args.user_core if args.user_core is not None else (args.kcore or 0)
    item_core = args.item_core if args.item_core is not None else (args.kcore or 0)
    try:
        stats = prepare(
            args.input,
            args.format,
            args.out,
            sep=args.sep,
            user_col=args.user_col,
            item_col=args.item_col,
            rating_col=args.rating_col,
            time_col=args.time_col,
            encoding=args.encoding,
            min_rating=args.min_rating,
            user_core=user_core,
            item_core=item_core,
            dedup_policy=args.dedup,
            split=args.split,
            ratios=args.ratios,
            by=args.by,
            valid=args.valid,
            seed=args.seed,
            force=args.force,
        )
    except (DataFormatError, FileNotFoundError) as exc:
        print(f"sslrec prepare: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, FileExistsError, LookupError) as exc:  # LookupError: unknown encoding
        print(f"sslrec prepare: error: {exc}", file=sys.stderr)
        return 2
    print(summary(stats))
    print(f"wrote {', '.join(stats['files'])} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
