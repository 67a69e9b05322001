"""Turn raw interaction files into sslrec's dataset layout (``sslrec prepare``).

Pipeline, each step a small pure function on numpy arrays:

1. **read** one raw file (:data:`READERS`, one per ``format``) into a :class:`Table`: one row per
   interaction in file order, raw ids coded in order of first appearance;
2. :func:`dedup` repeated (user, item) pairs (``first``/``last`` by timestamp, file order without
   timestamps or on ties; ``max-rating``; ``error``);
3. :func:`filter_min_rating` keeps ratings ``>= min_rating`` (after dedup, so the kept row's
   rating decides: a pair last rated 1 is dropped under ``--dedup last --min-rating 3``);
4. :func:`kcore` removes users with fewer than ``user_core`` items and items with fewer than
   ``item_core`` users until a fixed point;
5. :func:`contiguous_ids` maps raw ids to ``0..U-1`` / ``0..I-1`` (numeric order when every raw
   id is an integer, string order otherwise, so the ids do not depend on the row order);
6. one split (:func:`split_random`, :func:`split_loo`, :func:`split_temporal_global`,
   :func:`split_temporal_user`) assigns each interaction to train (0), valid (1) or test (2);
7. the files are written atomically: ``train.txt``, ``valid.txt`` (only when the valid split is
   non-empty), ``test.txt`` in the LightGCN format (``user item1 item2 ...``, one line per user
   with items in that split, ids ascending), ``user_ids.tsv`` / ``item_ids.tsv`` (header
   ``id<TAB>raw_id``, then one line per contiguous id) and ``stats.json``.

**Per-user rounding** (random splits and ``temporal --by user``): a user with ``n`` items gets
``n_test = floor(n·r_test + 0.5)`` and ``n_valid = floor(n·r_valid + 0.5)`` (round half up); if
that leaves no train item, valid gives items back first, then test, until one train item is
kept. So users with too few items keep everything in train (with 0.8/0.1/0.1: ``n <= 4`` →
all train, ``n = 5..14`` → 1 valid and 1 test; with 0.7/0.1/0.2: ``n = 3`` → 1 test,
``n = 5`` → 1 valid and 1 test).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sslrec.data.readers import DataFormatError

FORMATS = ("recbole", "movielens-dat", "movielens-csv", "csv", "triples", "lightgcn")
DEDUP_POLICIES = ("first", "last", "max-rating", "error")
SPLITS = ("random", "loo", "temporal")
TRAIN, VALID, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "valid", "test")
OUTPUT_FILES = (
    "train.txt",
    "valid.txt",
    "test.txt",
    "user_ids.tsv",
    "item_ids.tsv",
    "stats.json",
)


# -- the table of raw interactions -------------------------------------------------------------
@dataclass
class Table:
    """Interactions read from one raw file, one row per data line (per pair for adjacency lists).

    Attributes:
        users, items: ``[n]`` int64 codes into ``user_names`` / ``item_names``.
        lines: ``[n]`` int64 1-based line each row came from.
        ratings, timestamps: ``[n]`` float64, or ``None`` when the format has none.
        user_names, item_names: raw id of each code, in order of first appearance.
        path: the file read.
    """

    users: np.ndarray
    items: np.ndarray
    lines: np.ndarray
    user_names: list[str]
    item_names: list[str]
    path: str
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)

    def take(self, rows: np.ndarray) -> Table:
        """The rows ``rows`` (indices or a boolean mask), same id codes."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return Table(
            self.users[rows],
            self.items[rows],
            self.lines[rows],
            self.user_names,
            self.item_names,
            self.path,
            pick(self.ratings),
            pick(self.timestamps),
        )


class _TableBuilder:
    """Accumulates rows while a reader scans a file; raw ids get codes on first sight.

    Columns are ``array.array`` (8 bytes a value, not a Python object): 25M rows fit.
    """

    def __init__(self, path: Path, has_rating: bool, has_time: bool) -> None:
        self.path = path
        self.user_codes: dict[str, int] = {}
        self.item_codes: dict[str, int] = {}
        self.users = array("q")
        self.items = array("q")
        self.lines = array("q")
        self.ratings = array("d") if has_rating else None
        self.times = array("d") if has_time else None

    def add(
        self, lineno: int, user: str, item: str, rating: str | None = None, time: str | None = None
    ) -> None:
        if not user or not item:
            what = "user" if not user else "item"
            raise DataFormatError(self.path, lineno, f"expected a non-empty {what} id")
        try:  # the common case in one try; the precise error is worked out only on failure
            if self.ratings is not None:
                self.ratings.append(float(rating))  # type: ignore[arg-type]
            if self.times is not None:
                self.times.append(float(time))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            for token, what in ((rating, "rating"), (time, "timestamp")):
                try:
                    float(token)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise DataFormatError(
                        self.path, lineno, f"expected a numeric {what}, got {token!r}"
                    ) from None
            raise
        self.users.append(self.user_codes.setdefault(user, len(self.user_codes)))
        self.items.append(self.item_codes.setdefault(item, len(self.item_codes)))
        self.lines.append(lineno)

    def build(self, expected: str) -> Table:
        if not self.users:
            raise DataFormatError(self.path, None, f"no interactions found; expected {expected}")
        lines = np.frombuffer(self.lines, dtype=np.int64)
        columns = {}
        for name, values in (("rating", self.ratings), ("timestamp", self.times)):
            if values is None:
                columns[name] = None
                continue
            arr = np.frombuffer(values, dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(arr))
            if len(bad):
                raise DataFormatError(
                    self.path,
                    int(lines[bad[0]]),
                    f"expected a finite numeric {name}, got {float(arr[bad[0]])!r}",
                )
            columns[name] = arr
        return Table(
            users=np.frombuffer(self.users, dtype=np.int64),
            items=np.frombuffer(self.items, dtype=np.int64),
            lines=lines,
            user_names=list(self.user_codes),
            item_names=list(self.item_codes),
            path=str(self.path),
            ratings=columns["rating"],
            timestamps=columns["timestamp"],
        )


def _decode_error(path: Path, encoding: str) -> DataFormatError:
    """Find the first undecodable line (binary rescan, only after text decoding failed)."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as err:
                return DataFormatError(
                    path,
                    lineno,
                    f"byte 0x{raw[err.start]:02x} at column {err.start + 1} is not "
                    f"valid {encoding}; expected {encoding} text (or pass --encoding)",
                )
    return DataFormatError(path, None, f"the file is not valid {encoding} text")


def iter_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """``(1-based line number, text)`` of each non-blank line, streamed.

    Lines end at ``\\n`` only (a stray ``\\r`` inside a line does not shift the numbering);
    a trailing ``\\r`` and a leading byte-order mark are dropped.

    Raises:
        DataFormatError: an empty (or whitespace-only) file, or bytes that do not decode; the
            latter names the line and the byte's column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    seen = False
    try:
        with path.open(encoding=encoding, newline="\n") as f:
            for lineno, line in enumerate(f, start=1):
                if lineno == 1:
                    line = line.removeprefix("\ufeff")  # spreadsheet exports start with a BOM
                line = line.rstrip("\r\n")
                if line and not line.isspace():
                    seen = True
                    yield lineno, line
    except UnicodeDecodeError:
        raise _decode_error(path, encoding) from None
    if not seen:
        raise DataFormatError(path, None, "file is empty; expected at least one interaction")


# -- readers, one per format -------------------------------------------------------------------
def _split_fields(line: str, sep: str) -> list[str]:
    if '"' in line:  # quoted fields (a comma inside a title); rare, so the slow path only then
        return next(csv.reader([line], delimiter=sep))
    return line.split(sep)


def read_delimited(
    path: str | Path,
    sep: str | None,
    columns: dict[str, str | None],
    required: Sequence[str] = ("user", "item"),
    encoding: str = "utf-8",
    typed_header: bool = False,
) -> Table:
    """Read a file with a header row naming its columns (CSV, TSV, RecBole ``.inter``).

    Args:
        sep: the field separator; ``None`` picks a tab when the header has one, else a comma.
        columns: role (``user``, ``item``, ``rating``, ``time``) → column name, ``None`` to skip.
        required: roles whose column must exist.
        typed_header: RecBole headers are ``name:type``; columns are matched on ``name``.

    Raises:
        DataFormatError: a missing column (named, with the columns found), a row with another
            column count than the header, a non-numeric rating or timestamp, an empty id.
    """
    path = Path(path)
    lines = iter_lines(path, encoding)
    header_line, header = next(lines)
    if sep is None:
        sep = "\t" if "\t" in header else ","
    names = [h.strip().strip('"') for h in _split_fields(header, sep)]
    keys = [n.split(":", 1)[0] if typed_header else n for n in names]
    index: dict[str, int] = {}
    for role, name in columns.items():
        if name is None:
            continue
        if name not in keys:
            found = ", ".join(repr(n) for n in names)
            raise DataFormatError(
                path,
                header_line,
                f"missing column {name!r} ({role}); expected a header naming "
                f"it, found columns: {found}",
            )
        index[role] = keys.index(name)
    for role in required:
        if role not in index:
            raise ValueError(f"{path}: no column given for the {role} id")
    u, i = index["user"], index["item"]
    r, t = index.get("rating"), index.get("time")
    table = _TableBuilder(path, r is not None, t is not None)
    n_cols = len(names)
    for lineno, line in lines:
        fields = _split_fields(line, sep)
        if len(fields) != n_cols:
            raise DataFormatError(
                path,
                lineno,
                f"expected {n_cols} {_sep_name(sep)}-separated columns like the "
                f"header (line {header_line}), got {len(fields)}",
            )
        table.add(
            lineno,
            fields[u].strip(),
            fields[i].strip(),
            None if r is None else fields[r],
            None if t is None else fields[t],
        )
    return table.build(f"data rows after the header on line {header_line}")


def _sep_name(sep: str) -> str:
    return {"\t": "tab", ",": "comma", " ": "space", ";": "semicolon"}.get(sep, repr(sep))


def read_recbole(
    path: str | Path,
    user_col: str | None = None,
    item_col: str | None = None,
    rating_col: str | None = None,
    time_col: str | None = None,
    encoding: str = "utf-8",
    **_: object,
) -> Table:
    """RecBole atomic ``.inter`` file: tab-separated, header ``user_id:token item_id:token
    rating:float timestamp:float``; columns found by name (``rating``/``timestamp`` when present).
    """
    path = Path(path)
    _, header = next(iter_lines(path, encoding))
    present = {h.strip().split(":", 1)[0] for h in header.split("\t")}
    rating = rating_col or ("rating" if "rating" in present else None)
    time = time_col or ("timestamp" if "timestamp" in present else None)
    columns = {
        "user": user_col or "user_id",
        "item": item_col or "item_id",
        "rating": rating,
        "time": time,
    }
    return read_delimited(path, "\t", columns, encoding=encoding, typed_header=True)


def read_movielens_csv(path: str | Path, encoding: str = "utf-8", **_: object) -> Table:
    """MovieLens ``ratings.csv`` (ml-latest, ml-25m): ``userId,movieId,rating,timestamp``."""
    columns = {"user": "userId", "item": "movieId", "rating": "rating", "time": "timestamp"}
    return read_delimited(path, ",", columns, encoding=encoding)


def read_csv(
    path: str | Path,
    sep: str | None = None,
    user_col: str | None = None,
    item_col: str | None = None,
    rating_col: str | None = None,
    time_col: str | None = None,
    encoding: str = "utf-8",
    **_: object,
) -> Table:
    """Any CSV/TSV with a header; user/item columns default to ``user_id``/``item_id``; the
    rating and timestamp are read only when their columns are named."""
    columns = {
        "user": user_col or "user_id",
        "item": item_col or "item_id",
        "rating": rating_col,
        "time": time_col,
    }
    return read_delimited(path, sep, columns, encoding=encoding)


def read_movielens_dat(path: str | Path, encoding: str = "utf-8", **_: object) -> Table:
    """MovieLens ``ratings.dat`` (ml-1m, ml-10m): ``UserID::MovieID::Rating::Timestamp``."""
    path = Path(path)
    table = _TableBuilder(path, True, True)
    for lineno, line in iter_lines(path, encoding):
        fields = line.strip().split("::")
        if len(fields) != 4:
            raise DataFormatError(
                path,
                lineno,
                f"expected 'UserID::MovieID::Rating::Timestamp' (4 fields "
                f"separated by '::'), got {len(fields)} fields",
            )
        table.add(lineno, fields[0].strip(), fields[1].strip(), fields[2], fields[3])
    return table.build("'UserID::MovieID::Rating::Timestamp' lines")


def read_triples(path: str | Path, encoding: str = "utf-8", **_: object) -> Table:
    """SELFRec ``user item weight`` lines (whitespace separated); the weight is the rating and may
    be left out (``user item``), consistently over the file."""
    path = Path(path)
    table: _TableBuilder | None = None
    n_cols = 0
    for lineno, line in iter_lines(path, encoding):
        fields = line.split()
        if table is None:
            if len(fields) not in (2, 3):
                raise DataFormatError(
                    path,
                    lineno,
                    f"expected 'user item weight' (or 'user item'), got {len(fields)} columns",
                )
            n_cols = len(fields)
            table = _TableBuilder(path, n_cols == 3, False)
        elif len(fields) != n_cols:
            raise DataFormatError(
                path,
                lineno,
                f"expected {n_cols} whitespace-separated columns like the first "
                f"line, got {len(fields)}",
            )
        table.add(lineno, fields[0], fields[1], fields[2] if n_cols == 3 else None)
    assert table is not None  # iter_lines raised on a file without lines
    return table.build("'user item weight' lines")


def read_lightgcn(path: str | Path, encoding: str = "utf-8", **_: object) -> Table:
    """LightGCN adjacency lists ``user item1 item2 ...`` (ids are kept as raw ids and remapped)."""
    path = Path(path)
    table = _TableBuilder(path, False, False)
    for lineno, line in iter_lines(path, encoding):
        user, *items = line.split()
        for item in items:
            table.add(lineno, user, item)
    return table.build("lines 'user item1 item2 ...'")


READERS: dict[str, Callable[..., Table]] = {
    "recbole": read_recbole,
    "movielens-dat": read_movielens_dat,
    "movielens-csv": read_movielens_csv,
    "csv": read_csv,
    "triples": read_triples,
    "lightgcn": read_lightgcn,
}


def read_table(path: str | Path, format: str, **options: object) -> Table:
    """Read ``path`` in ``format`` (one of :data:`FORMATS`); ``options`` go to its reader."""
    if format not in READERS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    return READERS[format](path, **options)


# -- cleaning ----------------------------------------------------------------------------------
def _time_order(table: Table) -> np.ndarray:
    """``[n]`` row indices oldest first; file order breaks ties and stands in for no timestamps."""
    if table.timestamps is None:
        return np.arange(len(table))
    return np.lexsort((np.arange(len(table)), table.timestamps))


def dedup(table: Table, policy: str = "first") -> tuple[Table, int]:
    """Keep one row per (user, item) pair; returns the kept rows in file order and the count
    removed.

    ``first``/``last``: the earliest/latest by timestamp (file order without timestamps or on
    ties); ``max-rating``: the highest rating (the earliest of those on ties); ``error``: raise
    at the first repeated pair.
    """
    if policy not in DEDUP_POLICIES:
        raise ValueError(f"dedup must be one of {', '.join(DEDUP_POLICIES)}, got {policy!r}")
    keys = table.users * max(len(table.item_names), 1) + table.items
    if policy == "error":
        _, first = np.unique(keys, return_index=True)
        if len(first) < len(keys):
            dup = np.ones(len(keys), dtype=bool)
            dup[first] = False
            k = int(np.flatnonzero(dup)[0])
            orig = int(np.flatnonzero(keys == keys[k])[0])
            raise DataFormatError(
                table.path,
                int(table.lines[k]),
                f"pair (user {table.user_names[table.users[k]]!r}, item "
                f"{table.item_names[table.items[k]]!r}) repeats line {int(table.lines[orig])}; "
                "expected each pair once (or --dedup first|last|max-rating)",
            )
        return table, 0
    order = _time_order(table)
    if policy == "last":
        order = order[::-1]
    elif policy == "max-rating":
        if table.ratings is None:
            raise ValueError(f"--dedup max-rating needs ratings; {table.path} has none")
        # stable sort on -rating keeps the time order among equal ratings
        order = order[np.argsort(-table.ratings[order], kind="stable")]
    _, first = np.unique(keys[order], return_index=True)
    kept = np.sort(order[first])
    return table.take(kept), len(table) - len(kept)


def filter_min_rating(table: Table, min_rating: float) -> tuple[Table, int]:
    """Keep rows with ``rating >= min_rating``; returns the table and the count removed."""
    if table.ratings is None:
        raise ValueError(f"--min-rating needs ratings; {table.path} has no rating column")
    keep = table.ratings >= min_rating
    return table.take(keep), int((~keep).sum())


def kcore(
    users: np.ndarray, items: np.ndarray, user_core: int, item_core: int
) -> tuple[np.ndarray, list[dict[str, int]]]:
    """Iterated k-core filter over unique (user, item) pairs.

    Each iteration computes every user's and item's degree on the interactions still kept and
    drops, at once, every interaction whose user has fewer than ``user_core`` items or whose item
    has fewer than ``item_core`` users; it stops at the first iteration that drops nothing (that
    one is not counted).

    Args:
        users, items: ``[n]`` int64 codes of unique pairs.

    Returns:
        ``[n]`` bool mask of the kept interactions, and per counted iteration the users, items
        and interactions left after it.
    """
    keep = np.ones(len(users), dtype=bool)
    history: list[dict[str, int]] = []
    if user_core <= 1 and item_core <= 1:
        return keep, history
    while True:
        u_deg = np.bincount(users[keep], minlength=int(users.max()) + 1)
        i_deg = np.bincount(items[keep], minlength=int(items.max()) + 1)
        drop = keep & ((u_deg[users] < user_core) | (i_deg[items] < item_core))
        if not drop.any():
            return keep, history
        keep &= ~drop
        history.append(
            {
                "users": _distinct(users[keep]),
                "items": _distinct(items[keep]),
                "interactions": int(keep.sum()),
            }
        )


def contiguous_ids(codes: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Map the codes in use to ``0..m-1`` in the natural order of their raw ids.

    Numeric order when every raw id in use is an integer (so ``0..m-1`` input keeps its ids),
    string order otherwise.

    Returns:
        ``[n]`` int64 contiguous ids, and the raw id of each contiguous id.
    """
    used = np.unique(codes)
    raw = [names[c] for c in used]
    try:
        sort_key = [int(r) for r in raw]
    except ValueError:
        sort_key = raw  # type: ignore[assignment]
    order = sorted(range(len(used)), key=sort_key.__getitem__)
    new_id = np.empty(len(names), dtype=np.int64)
    new_id[used[order]] = np.arange(len(used))
    return new_id[codes], [raw[k] for k in order]


# -- splits: each returns [n] int8 assignments TRAIN / VALID / TEST -----------------------------
def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """``(train, valid, test)`` from 2 (no valid) or 3 ratios that are ``>= 0`` and sum to 1."""
    if len(ratios) not in (2, 3):
        raise ValueError(
            f"--ratios takes 2 (train test) or 3 (train valid test) values, got {len(ratios)}"
        )
    if any(r < 0 for r in ratios) or ratios[0] <= 0 or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"--ratios must be >= 0 with train > 0 and sum to 1, got {list(ratios)}")
    r = [float(x) for x in ratios]
    return (r[0], 0.0, r[1]) if len(r) == 2 else (r[0], r[1], r[2])


def per_user_counts(
    degree: np.ndarray, r_valid: float, r_test: float
) -> tuple[np.ndarray, np.ndarray]:
    """``([U], [U])`` valid and test counts per user (the module docstring's rounding rule)."""
    # the epsilon keeps exact halves that floats store just below (0.35·10) rounding up
    n_test = np.floor(degree * r_test + 0.5 + 1e-9).astype(np.int64)
    n_valid = np.floor(degree * r_valid + 0.5 + 1e-9).astype(np.int64)
    excess = np.maximum(n_test + n_valid - (degree - 1), 0)
    from_valid = np.minimum(excess, n_valid)
    return n_valid - from_valid, np.maximum(n_test - (excess - from_valid), 0)


def _assign_by_rank(
    users: np.ndarray, order: np.ndarray, n_valid: np.ndarray, n_test: np.ndarray
) -> np.ndarray:
    """Rows ranked within each user by ``order`` (a permutation grouping users, rank 0 first):
    ranks ``< n_test`` go to test, the next ``n_valid`` to valid, the rest to train."""
    ranked_users = users[order]
    starts = np.flatnonzero(np.r_[True, ranked_users[1:] != ranked_users[:-1]])
    lengths = np.diff(np.r_[starts, len(order)])
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(starts, lengths)
    out = np.full(len(users), TRAIN, dtype=np.int8)
    out[rank < n_test[users]] = TEST
    out[(rank >= n_test[users]) & (rank < n_test[users] + n_valid[users])] = VALID
    return out


def split_random(users: np.ndarray, ratios: Sequence[float], seed: int) -> np.ndarray:
    """Per-user random split; per-user counts by :func:`per_user_counts`, items drawn uniformly
    with ``seed`` (same input and seed → same split)."""
    _, r_valid, r_test = check_ratios(ratios)
    degree = np.bincount(users)
    n_valid, n_test = per_user_counts(degree, r_valid, r_test)
    noise = np.random.default_rng(seed).random(len(users))
    order = np.lexsort((noise, users))
    return _assign_by_rank(users, order, n_valid, n_test)


def _newest_first(users: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Permutation grouping users, newest interaction first (later in the file wins ties)."""
    pos = np.arange(len(users))
    return np.lexsort((-pos, -timestamps, users))


def split_loo(
    users: np.ndarray, timestamps: np.ndarray | None, valid: bool, seed: int
) -> np.ndarray:
    """Leave-one-out: each user's latest interaction (by timestamp; a random one, seeded, without
    timestamps) goes to test when the user has ``>= 2``; with ``valid`` the one before it (another
    random one) goes to valid when the user has ``>= 3``. One train item is always kept."""
    degree = np.bincount(users)
    n_test = (degree >= 2).astype(np.int64)
    n_valid = ((degree >= 3) & valid).astype(np.int64)
    if timestamps is None:
        noise = np.random.default_rng(seed).random(len(users))
        order = np.lexsort((noise, users))
    else:
        order = _newest_first(users, timestamps)
    return _assign_by_rank(users, order, n_valid, n_test)


def split_temporal_user(
    users: np.ndarray, timestamps: np.ndarray, ratios: Sequence[float]
) -> np.ndarray:
    """Per user: the newest ``n_test`` interactions to test, the ``n_valid`` before them to valid,
    the oldest rest to train (counts by :func:`per_user_counts`; file order breaks time ties)."""
    _, r_valid, r_test = check_ratios(ratios)
    n_valid, n_test = per_user_counts(np.bincount(users), r_valid, r_test)
    return _assign_by_rank(users, _newest_first(users, timestamps), n_valid, n_test)


def split_temporal_global(timestamps: np.ndarray, ratios: Sequence[float]) -> np.ndarray:
    """One time cut for everyone: sorted oldest first (file order on ties), the first
    ``floor(n·r_train + 0.5)`` interactions train, up to ``floor(n·(r_train + r_valid) + 0.5)``
    valid, the rest test; so every train timestamp is ``<=`` every valid one ``<=`` every test one.
    Users or items first seen after the cut have no train interactions (cold start)."""
    r_train, r_valid, _ = check_ratios(ratios)
    n = len(timestamps)
    order = np.lexsort((np.arange(n), timestamps))
    cut1 = min(int(np.floor(n * r_train + 0.5 + 1e-9)), n)
    cut2 = min(int(np.floor(n * (r_train + r_valid) + 0.5 + 1e-9)), n)
    out = np.full(n, TEST, dtype=np.int8)
    out[order[:cut1]] = TRAIN
    out[order[cut1:cut2]] = VALID
    return out


# -- output ------------------------------------------------------------------------------------
def adjacency_text(users: np.ndarray, items: np.ndarray) -> str:
    """LightGCN lines ``user item1 item2 ...``: users ascending, each user's items ascending."""
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else []
    bounds = np.r_[starts, len(users)]
    rows = [
        f"{users[a]} " + " ".join(map(str, items[a:b].tolist()))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    return "".join(row + "\n" for row in rows)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _distinct(ids: np.ndarray) -> int:
    """Distinct values of non-negative ``ids`` (codes, so a bincount is small and fast)."""
    return int(np.count_nonzero(np.bincount(ids))) if len(ids) else 0


def _split_stats(users: np.ndarray, items: np.ndarray) -> dict[str, int]:
    return {"users": _distinct(users), "items": _distinct(items), "interactions": len(users)}


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} is not empty; pass --force to overwrite")


# -- the whole pipeline ------------------------------------------------------------------------
def prepare(
    input: str | Path,
    format: str,
    out: str | Path,
    *,
    sep: str | None = None,
    user_col: str | None = None,
    item_col: str | None = None,
    rating_col: str | None = None,
    time_col: str | None = None,
    encoding: str = "utf-8",
    min_rating: float | None = None,
    user_core: int = 0,
    item_core: int = 0,
    dedup_policy: str = "first",
    split: str = "random",
    ratios: Sequence[float] | None = None,
    by: str = "global",
    valid: bool = False,
    seed: int = 0,
    force: bool = False,
) -> dict:
    """Read ``input`` in ``format``, clean and split it, write the dataset folder ``out``.

    Args:
        sep, user_col, item_col, rating_col, time_col: column options of ``csv`` (the names also
            override ``recbole``'s defaults ``user_id``/``item_id``/``rating``/``timestamp``).
        encoding: the input's text encoding.
        min_rating: keep ratings ``>= min_rating`` (``None``: no threshold).
        user_core, item_core: the k-core thresholds (``0``/``1``: none).
        dedup_policy: ``first``, ``last``, ``max-rating`` or ``error``.
        split: ``random`` (per user, ``ratios``), ``loo`` (``valid`` adds a validation item) or
            ``temporal`` (``by`` ``global`` or ``user``, ``ratios``).
        ratios: 2 (train, test) or 3 (train, valid, test) values; default ``0.8 0.1 0.1``.
        seed: the seed of the random and the timestamp-less leave-one-out splits.
        force: overwrite a non-empty ``out``.

    Returns:
        The statistics written to ``out/stats.json``.
    """
    input, out = Path(input), Path(out)
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if sep is not None and format != "csv":
        raise ValueError(f"--sep applies to --format csv, not {format}")
    if format not in ("csv", "recbole") and any((user_col, item_col, rating_col, time_col)):
        raise ValueError(f"column names apply to --format csv and recbole, not {format}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "loo" and ratios is not None:
        raise ValueError("--ratios does not apply to --split loo (use --valid for a valid item)")
    if split != "loo" and valid:
        raise ValueError("--valid applies to --split loo; give 3 --ratios for a valid split")
    if split == "temporal" and by not in ("global", "user"):
        raise ValueError(f"--by must be 'global' or 'user', got {by!r}")
    if ratios is None and split != "loo":
        ratios = (0.8, 0.1, 0.1)
    if ratios is not None:
        check_ratios(ratios)
    if dedup_policy not in DEDUP_POLICIES:
        raise ValueError(f"dedup must be one of {', '.join(DEDUP_POLICIES)}, got {dedup_policy!r}")
    _check_out(out, force)  # before reading: a long read must not end in this error

    table = read_table(
        input,
        format,
        sep=sep,
        user_col=user_col,
        item_col=item_col,
        rating_col=rating_col,
        time_col=time_col,
        encoding=encoding,
    )
    steps: dict[str, dict] = {
        "read": {
            "rows": len(table),
            **_split_stats(table.users, table.items),
            "has_rating": table.ratings is not None,
            "has_timestamp": table.timestamps is not None,
        }
    }
    if split == "temporal" and table.timestamps is None:
        raise ValueError(f"--split temporal needs timestamps; {input} ({format}) has none")
    if min_rating is not None and table.ratings is None:
        raise ValueError(f"--min-rating needs ratings; {input} ({format}) has no rating column")

    table, removed = dedup(table, dedup_policy)
    steps["dedup"] = {"policy": dedup_policy, "removed": removed}
    if min_rating is not None:
        table, removed = filter_min_rating(table, min_rating)
        steps["min_rating"] = {"threshold": min_rating, "removed": removed}
    if not len(table):
        raise ValueError(f"no interactions left after --min-rating {min_rating}")
    keep, history = kcore(table.users, table.items, user_core, item_core)
    before = _split_stats(table.users, table.items)
    table = table.take(keep)
    after = _split_stats(table.users, table.items) if len(table) else dict.fromkeys(before, 0)
    steps["kcore"] = {
        "user_core": user_core,
        "item_core": item_core,
        "iterations": len(history),
        **{f"{k}_removed": before[k] - after[k] for k in before},
        "per_iteration": history,
    }
    if not len(table):
        raise ValueError(f"no interactions left after the k-core filter ({user_core}, {item_core})")

    users, user_raw = contiguous_ids(table.users, table.user_names)
    items, item_raw = contiguous_ids(table.items, table.item_names)
    if split == "random":
        assign = split_random(users, ratios, seed)  # type: ignore[arg-type]
    elif split == "loo":
        assign = split_loo(users, table.timestamps, valid, seed)
    elif by == "global":
        assign = split_temporal_global(table.timestamps, ratios)  # type: ignore[arg-type]
    else:
        assign = split_temporal_user(users, table.timestamps, ratios)  # type: ignore[arg-type]

    splits = {
        name: _split_stats(users[assign == code], items[assign == code])
        for code, name in enumerate(SPLIT_NAMES)
    }
    if not splits["test"]["interactions"]:
        raise ValueError(
            "the test split is empty: every user has too few items for the ratios "
            "(see the rounding rule in sslrec.data.prepare)"
        )
    train_users = np.zeros(len(user_raw), dtype=bool)
    train_users[users[assign == TRAIN]] = True
    for code, name in ((VALID, "valid"), (TEST, "test")):
        splits[name]["users_without_train"] = _distinct(
            users[(assign == code) & ~train_users[users]]
        )
    # the input is fully read before anything is written, so `--out` may be the input's folder
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for code, name in enumerate(SPLIT_NAMES):
        path = out / f"{name}.txt"
        mask = assign == code
        if mask.any():
            write_atomic(path, adjacency_text(users[mask], items[mask]))
            files.append(path.name)
        else:
            path.unlink(missing_ok=True)  # a stale valid.txt from a forced earlier run
    for name, raw in (("user_ids.tsv", user_raw), ("item_ids.tsv", item_raw)):
        write_atomic(out / name, "id\traw_id\n" + "".join(f"{k}\t{r}\n" for k, r in enumerate(raw)))
        files.append(name)
    stats = {
        "input": {
            "path": str(input.resolve()),
            "sha256": sha256(input),
            "format": format,
            "bytes": input.stat().st_size,
        },
        "options": {
            "sep": sep,
            "user_col": user_col,
            "item_col": item_col,
            "rating_col": rating_col,
            "time_col": time_col,
            "encoding": encoding,
            "min_rating": min_rating,
            "user_core": user_core,
            "item_core": item_core,
            "dedup": dedup_policy,
            "split": split,
            "ratios": None if ratios is None else [float(r) for r in ratios],
            "by": by if split == "temporal" else None,
            "valid": valid,
            "seed": seed,
        },
        "steps": steps,
        "dataset": {"users": len(user_raw), "items": len(item_raw), "interactions": len(users)},
        "splits": splits,
        "files": [*files, "stats.json"],
    }
    write_atomic(out / "stats.json", json.dumps(stats, indent=2) + "\n")
    return stats


def summary(stats: dict) -> str:
    """A few human-readable lines of what each step read, removed and wrote."""
    s = stats["steps"]
    read = s["read"]
    lines = [
        f"read      {read['rows']:,} rows ({read['users']:,} users, {read['items']:,} items) "
        f"from {stats['input']['path']}",
        f"dedup     {s['dedup']['removed']:,} repeated pairs removed ({s['dedup']['policy']})",
    ]
    if "min_rating" in s:
        m = s["min_rating"]
        lines.append(f"rating    {m['removed']:,} rows below {m['threshold']:g} removed")
    k = s["kcore"]
    if k["user_core"] > 1 or k["item_core"] > 1:
        lines.append(
            f"k-core    users>={k['user_core']}, items>={k['item_core']}: removed "
            f"{k['users_removed']:,} users, {k['items_removed']:,} items, "
            f"{k['interactions_removed']:,} interactions in {k['iterations']} iterations"
        )
    d = stats["dataset"]
    lines.append(
        f"dataset   {d['users']:,} users, {d['items']:,} items, {d['interactions']:,} interactions"
    )
    for name in SPLIT_NAMES:
        sp = stats["splits"][name]
        extra = (
            f", {sp['users_without_train']:,} users without train items"
            if sp.get("users_without_train")
            else ""
        )
        lines.append(
            f"{name:<9} {sp['users']:,} users, {sp['items']:,} items, "
            f"{sp['interactions']:,} interactions{extra}"
        )
    return "\n".join(lines)
