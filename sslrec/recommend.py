"""``sslrec recommend RUN_DIR --k 20 [--users FILE] [--out recs.csv]``: top-k items per user.

Items the user trained on (and, where the run had one, validated on) are never recommended;
ranking goes through the model's own scorer, in blocks of users, so it works for every model.
Ids in the CSV are the dataset's raw ids (``format: triples`` remaps them; adjacency lists use
their integer ids).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sslrec.data import DataFormatError, Interactions
from sslrec.evaluation.ranker import hit_matrix, rank_top_k
from sslrec.evaluation.scoring import Scorer
from sslrec.io import save_text
from sslrec.saved import RunNotUsable, load_run_data, load_scorer, open_run


def recommend(
    scorer: Scorer,
    data: Interactions,
    users: np.ndarray,
    k: int,
    batch_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``([n, k] items, [n, k] scores)`` best first for ``users`` ``[n]`` (contiguous ids),
    excluding train and valid items. A user with fewer than ``k`` unseen items gets ``-inf``
    scores in the last places (dropped from the CSV)."""
    if not 1 <= k <= data.n_items:
        raise ValueError(f"--k must be in [1, {data.n_items}], got {k}")
    exclude = (data.train + data.valid).tocsr()
    items = rank_top_k(scorer, users, exclude, k, batch_size).cpu()
    users_t = torch.from_numpy(users).to(scorer.device)
    scores = scorer.score(users_t, items.to(scorer.device)).cpu()
    seen = hit_matrix(items, users, exclude).bool()  # padding: fewer than k unseen items
    scores[seen] = -torch.inf
    return items, scores


def read_users(path: str | Path, data: Interactions) -> np.ndarray:
    """Contiguous ids of the raw user ids in ``path`` (one per line; blank lines skipped)."""
    raw_to_id = (
        {raw: i for i, raw in enumerate(data.id_map.raw_users())}
        if data.id_map is not None
        else None
    )
    ids = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        token = line.strip()
        if not token:
            continue
        if raw_to_id is not None:
            if token not in raw_to_id:
                raise DataFormatError(path, lineno, f"unknown user {token!r}")
            ids.append(raw_to_id[token])
            continue
        if not token.isdigit() or int(token) >= data.n_users:
            raise DataFormatError(
                path, lineno, f"expected a user id in [0, {data.n_users}), got {token!r}"
            )
        ids.append(int(token))
    if not ids:
        raise DataFormatError(path, None, "no user ids; expected one id per line")
    return np.asarray(ids, dtype=np.int64)


def to_csv(data: Interactions, users: np.ndarray, items: torch.Tensor, scores: torch.Tensor) -> str:
    """``user,item,rank,score`` rows with raw ids; ``-inf`` padding is left out."""
    raw_users = data.id_map.raw_users() if data.id_map is not None else None
    raw_items = data.id_map.raw_items() if data.id_map is not None else None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["user", "item", "rank", "score"])
    for row, user in enumerate(users.tolist()):
        u = raw_users[user] if raw_users is not None else user
        for rank, (item, score) in enumerate(
            zip(items[row].tolist(), scores[row].tolist(), strict=True), start=1
        ):
            if score == float("-inf"):
                break
            writer.writerow([u, raw_items[item] if raw_items is not None else item, rank, score])
    return buf.getvalue()


def recommend_to_csv(
    run_dir: str | Path,
    out: str | Path = "recs.csv",
    k: int = 20,
    users: str | Path | None = None,
    dataset_path: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 1024,
) -> Path:
    """Write the top-``k`` items of every user with training items (or of the raw ids listed
    in ``users``) of a finished run to ``out`` (``user,item,rank,score``); returns ``out``."""
    run = open_run(run_dir)
    data = load_run_data(run, dataset_path)
    scorer = load_scorer(run, data, device)
    if users is not None:
        ids = read_users(users, data)
    else:
        ids = np.flatnonzero(np.diff(data.train.indptr) > 0).astype(np.int64)
    items, scores = recommend(scorer, data, ids, k, batch_size)
    save_text(to_csv(data, ids, items, scores), out)
    return Path(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sslrec recommend", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished run directory")
    parser.add_argument("--k", type=int, default=20, help="items per user (default 20)")
    parser.add_argument("--users", default=None, help="file of raw user ids, one per line")
    parser.add_argument("--out", default="recs.csv", help="CSV to write (default recs.csv)")
    parser.add_argument("--dataset-path", default=None, help="the dataset folder, if moved")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=1024, help="users per score block")
    args = parser.parse_args(argv)
    try:
        out = recommend_to_csv(
            args.run_dir, args.out, args.k, args.users, args.dataset_path, args.device,
            args.batch_size,
        )  # fmt: skip
    except (RunNotUsable, DataFormatError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n_users = len({line.split(",")[0] for line in out.read_text().splitlines()[1:]})
    print(f"{n_users} users x top {args.k} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
