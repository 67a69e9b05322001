"""``sslrec prepare``: every raw format, the cleaning steps, the splits, the errors and the CLI.

Fixture files are written by the tests. Error tests check the ``FILE:LINE: expected`` contract
of :class:`DataFormatError` (prefix, ``err.path``, ``err.line`` and the text).
"""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sslrec.data import DataFormatError, DatasetSpec, load_dataset
from sslrec.data import prepare as P
from sslrec.prepare_cli import main as cli_main

# (user, item, rating, timestamp), grouped by user (the order lightgcn lists can express), with
# timestamps out of file order so that "latest" and "file order" differ.
ROWS = [
    ("1", "10", 5, 100),
    ("1", "11", 3, 300),
    ("1", "12", 4, 200),
    ("2", "10", 2, 150),
    ("2", "13", 5, 50),
    ("3", "11", 4, 400),
    ("3", "12", 1, 10),
    ("3", "13", 5, 20),
    ("3", "10", 3, 30),
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def write_format(tmp_path: Path, fmt: str, rows=ROWS) -> tuple[Path, dict]:
    """``rows`` in ``fmt``; returns the file and the reader options it needs."""
    if fmt == "recbole":
        head = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        body = "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows)
        return write(tmp_path, "x.inter", head + body), {}
    if fmt == "movielens-dat":
        return write(
            tmp_path, "ratings.dat", "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in rows)
        ), {}
    if fmt == "movielens-csv":
        body = "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows)
        return write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp\n" + body), {}
    if fmt == "csv":
        body = "".join(f"{t};{i};{u};{r}\n" for u, i, r, t in rows)
        opts = {
            "sep": ";",
            "user_col": "uid",
            "item_col": "iid",
            "rating_col": "score",
            "time_col": "when",
        }
        return write(tmp_path, "log.csv", "when;iid;uid;score\n" + body), opts
    if fmt == "triples":
        return write(tmp_path, "t.txt", "".join(f"{u} {i} {r}\n" for u, i, r, _ in rows)), {}
    assert fmt == "lightgcn"
    lists: dict[str, list[str]] = {}
    for u, i, _, _ in rows:
        lists.setdefault(u, []).append(i)
    text = "".join(f"{u} {' '.join(items)}\n" for u, items in lists.items())
    return write(tmp_path, "train.txt", text), {}


def format_error(call, *args, **kwargs) -> DataFormatError:
    with pytest.raises(DataFormatError) as err:
        call(*args, **kwargs)
    return err.value


def assert_located(err: DataFormatError, path: Path, line: int | None, *expected: str) -> None:
    msg = str(err)
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert msg.startswith(prefix), msg
    assert err.path == str(path) and err.line == line
    for text in expected:
        assert text in msg, msg


def raw_pairs(table: P.Table) -> list[tuple[str, str]]:
    return [
        (table.user_names[u], table.item_names[i])
        for u, i in zip(table.users, table.items, strict=True)
    ]


def read_split(folder: Path, name: str) -> dict[int, list[int]]:
    """``{user: [items]}`` of ``folder/name.txt``."""
    out = {}
    for line in (folder / f"{name}.txt").read_text().splitlines():
        user, *items = map(int, line.split())
        out[user] = items
    return out


def id_map(folder: Path, name: str) -> list[str]:
    lines = (folder / name).read_text().splitlines()
    assert lines[0] == "id\traw_id"
    rows = [line.split("\t") for line in lines[1:]]
    assert [int(k) for k, _ in rows] == list(range(len(rows)))
    return [raw for _, raw in rows]


def raw_splits(folder: Path) -> dict[str, set[tuple[str, str]]]:
    """Each split's pairs in raw ids, through ``user_ids.tsv`` / ``item_ids.tsv``."""
    users, items = id_map(folder, "user_ids.tsv"), id_map(folder, "item_ids.tsv")
    out = {}
    for name in ("train", "valid", "test"):
        if (folder / f"{name}.txt").exists():
            out[name] = {
                (users[u], items[i]) for u, its in read_split(folder, name).items() for i in its
            }
    return out


# -- reading every format ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", P.FORMATS)
def test_every_format_reads_the_same_interactions(tmp_path, fmt):
    path, opts = write_format(tmp_path, fmt)
    table = P.read_table(path, fmt, **opts)
    assert raw_pairs(table) == [(u, i) for u, i, _, _ in ROWS]
    has_rating = fmt != "lightgcn"
    has_time = fmt not in ("lightgcn", "triples")
    if has_rating:
        np.testing.assert_array_equal(table.ratings, [r for _, _, r, _ in ROWS])
    else:
        assert table.ratings is None
    if has_time:
        np.testing.assert_array_equal(table.timestamps, [t for _, _, _, t in ROWS])
    else:
        assert table.timestamps is None
    if fmt == "lightgcn":
        expected_lines = [1, 1, 1, 2, 2, 3, 3, 3, 3]  # one line per user
    elif fmt in ("recbole", "movielens-csv", "csv"):
        expected_lines = list(range(2, 2 + len(ROWS)))  # line 1 is the header
    else:
        expected_lines = list(range(1, 1 + len(ROWS)))
    assert table.lines.tolist() == expected_lines


@pytest.mark.parametrize("fmt", P.FORMATS)
def test_every_format_prepares_the_same_dataset(tmp_path, fmt):
    path, opts = write_format(tmp_path, fmt)
    P.prepare(path, fmt, tmp_path / "out", split="random", ratios=(0.5, 0.5), seed=3, **opts)
    reference, src = tmp_path / "ref", tmp_path / "src"
    src.mkdir()
    ref_path, _ = write_format(src, "movielens-dat")
    P.prepare(ref_path, "movielens-dat", reference, split="random", ratios=(0.5, 0.5), seed=3)
    for name in ("train.txt", "test.txt", "user_ids.tsv", "item_ids.tsv"):
        assert (tmp_path / "out" / name).read_text() == (reference / name).read_text(), name


def test_recbole_columns_are_found_by_name_in_any_order(tmp_path):
    text = (
        "item_id:token\tlabel:float\ttimestamp:float\tuser_id:token\trating:float\n"
        "i1\t1\t5\tu1\t4.5\n"
        "i2\t0\t6\tu2\t3\n"
    )
    table = P.read_recbole(write(tmp_path, "ml.inter", text))
    assert raw_pairs(table) == [("u1", "i1"), ("u2", "i2")]
    np.testing.assert_array_equal(table.ratings, [4.5, 3.0])
    np.testing.assert_array_equal(table.timestamps, [5, 6])


def test_recbole_without_rating_and_timestamp(tmp_path):
    table = P.read_recbole(write(tmp_path, "a.inter", "user_id:token\titem_id:token\nu\ti\n"))
    assert raw_pairs(table) == [("u", "i")]
    assert table.ratings is None and table.timestamps is None


def test_csv_tab_separator_is_detected_and_quotes_are_handled(tmp_path):
    text = 'user_id\titem_id\ttitle\n7\t"a"\t"x\ty"\n8\tb\tz\n'
    table = P.read_csv(write(tmp_path, "d.tsv", text))
    assert raw_pairs(table) == [("7", "a"), ("8", "b")]
    quoted = 'user_id,item_id,title\n7,a,"Heat, 1995"\n'
    assert raw_pairs(P.read_csv(write(tmp_path, "q.csv", quoted))) == [("7", "a")]


def test_byte_order_mark_crlf_and_blank_lines(tmp_path):
    p = tmp_path / "r.csv"
    p.write_bytes("userId,movieId,rating,timestamp\r\n\r\n1,2,3,4\r\n".encode("utf-8-sig"))
    table = P.read_movielens_csv(p)
    assert raw_pairs(table) == [("1", "2")] and table.lines.tolist() == [3]


def test_other_encodings(tmp_path):
    p = tmp_path / "r.dat"
    p.write_bytes("Zoë::1::5::9\n".encode("latin-1"))
    assert P.read_movielens_dat(p, encoding="latin-1").user_names == ["Zoë"]


def test_lightgcn_user_without_items_contributes_nothing(tmp_path):
    table = P.read_lightgcn(write(tmp_path, "a.txt", "0 1 2\n5\n1 2\n"))
    assert raw_pairs(table) == [("0", "1"), ("0", "2"), ("1", "2")]


# -- errors: file and line ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "fmt,text,opts,line,expected",
    [
        (
            "recbole",
            "user_id:token\trating:float\nu\t1\n",
            {},
            1,
            ["missing column 'item_id'", "found columns: 'user_id:token', 'rating:float'"],
        ),
        (
            "movielens-csv",
            "userId,movieId,rating\n1,2,3\n",
            {},
            1,
            ["missing column 'timestamp'", "'userId', 'movieId', 'rating'"],
        ),
        (
            "csv",
            "user,item\n1,2\n",
            {"rating_col": "stars"},
            1,
            ["missing column 'user_id'", "found columns: 'user', 'item'"],
        ),
        (
            "csv",
            "u,i,r\n1,2,3\n",
            {"user_col": "u", "item_col": "i", "rating_col": "stars"},
            1,
            ["missing column 'stars' (rating)"],
        ),
        (
            "recbole",
            "user_id:token\titem_id:token\nu1\ti1\n\nu2\n",
            {},
            4,
            ["expected 2 tab-separated columns like the header (line 1), got 1"],
        ),
        (
            "movielens-csv",
            "userId,movieId,rating,timestamp\n1,2,3,4\n1,2,3,4,5\n",
            {},
            3,
            ["expected 4 comma-separated columns", "got 5"],
        ),
        (
            "movielens-dat",
            "1::2::3::4\n1::2::3\n",
            {},
            2,
            ["expected 'UserID::MovieID::Rating::Timestamp'", "got 3 fields"],
        ),
        (
            "movielens-dat",
            "1::2::3::4\n1::2::good::4\n",
            {},
            2,
            ["expected a numeric rating, got 'good'"],
        ),
        (
            "movielens-dat",
            "1::2::3::4\n1::3::3::noon\n",
            {},
            2,
            ["expected a numeric timestamp, got 'noon'"],
        ),
        (
            "movielens-csv",
            "userId,movieId,rating,timestamp\n1,2,nan,4\n",
            {},
            2,
            ["expected a finite numeric rating, got nan"],
        ),
        ("csv", "user_id,item_id\n1,\n", {}, 2, ["expected a non-empty item id"]),
        ("triples", "1 2 1\n1 3\n", {}, 2, ["expected 3 whitespace-separated columns", "got 2"]),
        ("triples", "1 2 1 7\n", {}, 1, ["expected 'user item weight'", "got 4 columns"]),
        ("triples", "1 2 x\n", {}, 1, ["expected a numeric rating, got 'x'"]),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, fmt, text, opts, line, expected):
    p = write(tmp_path, "input.txt", text)
    assert_located(format_error(P.read_table, p, fmt, **opts), p, line, *expected)


@pytest.mark.parametrize("fmt", P.FORMATS)
@pytest.mark.parametrize("text", ["", "\n  \n", "\r\n"])
def test_empty_file(tmp_path, fmt, text):
    p = write(tmp_path, "input.txt", text)
    err = format_error(P.read_table, p, fmt)
    assert_located(err, p, None, "file is empty", "expected at least one interaction")


@pytest.mark.parametrize(
    "fmt,text",
    [
        ("recbole", "user_id:token\titem_id:token\n"),
        ("movielens-csv", "userId,movieId,rating,timestamp\n\n"),
        ("lightgcn", "0\n1\n"),
    ],
)
def test_no_data_rows(tmp_path, fmt, text):
    p = write(tmp_path, "input.txt", text)
    assert_located(format_error(P.read_table, p, fmt), p, None, "no interactions found")


def test_undecodable_bytes_name_the_line(tmp_path):
    p = tmp_path / "ratings.dat"
    p.write_bytes(b"1::2::3::4\n1::3::3::5\n1::\xe9t\xe9::3::5\n")
    err = format_error(P.read_movielens_dat, p)
    assert_located(err, p, 3, "byte 0xe9 at column 4 is not valid utf-8", "--encoding")


def test_dedup_error_names_the_repeat_and_the_first(tmp_path):
    p, _ = write_format(tmp_path, "movielens-dat", ROWS + [("2", "13", 1, 999)])
    err = format_error(P.dedup, P.read_table(p, "movielens-dat"), "error")
    assert_located(err, p, 10, "pair (user '2', item '13') repeats line 5", "expected each pair")
    with pytest.raises(DataFormatError, match=r"ratings.dat:10: pair"):
        P.prepare(p, "movielens-dat", tmp_path / "out", dedup_policy="error")


@pytest.mark.parametrize(
    "fmt,kwargs,message",
    [
        ("lightgcn", {"min_rating": 3}, "--min-rating needs ratings"),
        ("triples", {"split": "temporal"}, "--split temporal needs timestamps"),
        ("lightgcn", {"dedup_policy": "max-rating"}, "--dedup max-rating needs ratings"),
        ("movielens-dat", {"ratios": (0.8, 0.3)}, "sum to 1"),
        ("movielens-dat", {"ratios": (0.5, 0.2, 0.2, 0.1)}, "2 (train test) or 3"),
        ("movielens-dat", {"ratios": (0.0, 1.0)}, "train > 0"),
        ("movielens-dat", {"split": "loo", "ratios": (0.8, 0.2)}, "does not apply"),
        ("movielens-dat", {"valid": True}, "--valid applies to --split loo"),
        ("movielens-dat", {"split": "temporal", "by": "item"}, "--by must be"),
        ("movielens-dat", {"split": "kfold"}, "split must be one of"),
        ("movielens-dat", {"sep": ","}, "--sep applies to --format csv, not movielens-dat"),
        ("triples", {"rating_col": "w"}, "column names apply to --format csv and recbole"),
        ("movielens-dat", {"min_rating": 6}, "no interactions left after --min-rating"),
        ("movielens-dat", {"user_core": 10}, "no interactions left after the k-core"),
        ("movielens-dat", {"ratios": (0.99, 0.01)}, "the test split is empty"),
    ],
)
def test_option_errors(tmp_path, fmt, kwargs, message):
    p, opts = write_format(tmp_path, fmt)
    with pytest.raises(ValueError, match=re.escape(message)):
        P.prepare(p, fmt, tmp_path / "out", **opts, **kwargs)


# -- dedup and the rating threshold ------------------------------------------------------------
DUPS = [  # pair (1, 10) three times, pair (2, 11) twice; timestamps not in file order
    ("1", "10", 2, 300),
    ("2", "11", 4, 20),
    ("1", "10", 5, 100),
    ("1", "12", 3, 5),
    ("2", "11", 4, 10),
    ("1", "10", 5, 200),
]


@pytest.mark.parametrize(
    "policy,kept_lines",
    [
        ("first", [3, 4, 5]),  # (1,10): t=100 is the earliest; (2,11): t=10
        ("last", [1, 2, 4]),  # (1,10): t=300; (2,11): t=20
        ("max-rating", [3, 4, 5]),  # (1,10): 5 at t=100 and t=200, the earlier wins; (2,11) tie
    ],
)
def test_dedup_by_timestamp(tmp_path, policy, kept_lines):
    p, _ = write_format(tmp_path, "movielens-dat", DUPS)
    table, removed = P.dedup(P.read_table(p, "movielens-dat"), policy)
    assert removed == 3
    assert table.lines.tolist() == kept_lines  # kept rows stay in file order


@pytest.mark.parametrize("policy,kept_lines", [("first", [1, 2, 4]), ("last", [4, 5, 6])])
def test_dedup_by_file_order_without_timestamps(tmp_path, policy, kept_lines):
    p, _ = write_format(tmp_path, "triples", DUPS)
    table, removed = P.dedup(P.read_table(p, "triples"), policy)
    assert removed == 3 and table.lines.tolist() == kept_lines


def test_dedup_max_rating_without_timestamps_keeps_the_first_of_ties(tmp_path):
    p, _ = write_format(tmp_path, "triples", DUPS)
    table, _ = P.dedup(P.read_table(p, "triples"), "max-rating")
    assert table.lines.tolist() == [2, 3, 4]
    np.testing.assert_array_equal(table.ratings, [4, 5, 3])


def test_dedup_without_duplicates_changes_nothing(tmp_path):
    p, _ = write_format(tmp_path, "movielens-dat")
    table = P.read_table(p, "movielens-dat")
    for policy in P.DEDUP_POLICIES:
        kept, removed = P.dedup(table, policy)
        assert removed == 0 and kept.lines.tolist() == table.lines.tolist()


def test_min_rating_after_dedup(tmp_path):
    p, _ = write_format(tmp_path, "movielens-dat", DUPS)
    table, _ = P.dedup(P.read_table(p, "movielens-dat"), "last")
    table, removed = P.filter_min_rating(table, 3)
    # last: (1,10) rated 2 at t=300 → below 3, dropped, although it was rated 5 before;
    # (2,11) rated 4 and (1,12) rated 3 stay
    assert removed == 1 and raw_pairs(table) == [("2", "11"), ("1", "12")]


def test_min_rating_keeps_ratings_at_the_threshold(tmp_path):
    p, _ = write_format(tmp_path, "movielens-dat")
    table, removed = P.filter_min_rating(P.read_table(p, "movielens-dat"), 4)
    assert removed == 4  # ratings 3, 2, 1, 3
    assert sorted(table.ratings.tolist()) == [4, 4, 5, 5, 5]


# -- k-core --------------------------------------------------------------------------------------
KCORE = [  # 5 users, 5 items, 10 interactions
    ("u1", "a"), ("u1", "b"), ("u1", "c"),
    ("u2", "a"), ("u2", "b"),
    ("u3", "c"), ("u3", "d"),
    ("u4", "d"),
    ("u5", "a"), ("u5", "e"),
]  # fmt: skip


def test_kcore_by_hand(tmp_path):
    # 2-core (users >= 2 items, items >= 2 users), degrees recomputed each iteration:
    # it 1: user degrees u1 3, u2 2, u3 2, u4 1, u5 2; items a 3, b 2, c 2, d 2, e 1
    #       drop u4 (u4-d) and e (u5-e)     → u1{a,b,c} u2{a,b} u3{c,d} u5{a}: 4 users, 4 items, 8
    # it 2: u5 has 1 item, d has 1 user    → drop u5-a, u3-d
    #       → u1{a,b,c} u2{a,b} u3{c}: 3 users, items a b c, 6 interactions
    # it 3: u3 has 1 item (c still has u1, u3) → drop u3-c → u1{a,b,c} u2{a,b}: 2 users, 3 items, 5
    # it 4: c has 1 user (u1)              → drop u1-c → u1{a,b} u2{a,b}: 2 users, 2 items, 4
    # it 5: nothing to drop; stop (4 iterations counted)
    text = "".join(f"{u} {i} 1\n" for u, i in KCORE)
    table = P.read_table(write(tmp_path, "k.txt", text), "triples")
    keep, history = P.kcore(table.users, table.items, 2, 2)
    assert history == [
        {"users": 4, "items": 4, "interactions": 8},
        {"users": 3, "items": 3, "interactions": 6},
        {"users": 2, "items": 3, "interactions": 5},
        {"users": 2, "items": 2, "interactions": 4},
    ]
    assert sorted(raw_pairs(table.take(keep))) == [
        ("u1", "a"),
        ("u1", "b"),
        ("u2", "a"),
        ("u2", "b"),
    ]
    stats = P.prepare(
        tmp_path / "k.txt", "triples", tmp_path / "o", user_core=2, item_core=2, ratios=(0.5, 0.5)
    )
    assert stats["steps"]["kcore"] == {
        "user_core": 2,
        "item_core": 2,
        "iterations": 4,
        "users_removed": 3,
        "items_removed": 3,
        "interactions_removed": 6,
        "per_iteration": history,
    }
    assert id_map(tmp_path / "o", "user_ids.tsv") == ["u1", "u2"]
    assert id_map(tmp_path / "o", "item_ids.tsv") == ["a", "b"]


def test_kcore_user_and_item_thresholds_separately(tmp_path):
    table = P.read_table(
        write(tmp_path, "k.txt", "".join(f"{u} {i}\n" for u, i in KCORE)), "triples"
    )
    # users >= 3 only: u1 is the only one; its items need just 1 user
    keep, history = P.kcore(table.users, table.items, 3, 1)
    assert raw_pairs(table.take(keep)) == [("u1", "a"), ("u1", "b"), ("u1", "c")]
    assert len(history) == 1
    # items >= 3 users only: a (u1, u2, u5); then no user threshold applies
    keep, history = P.kcore(table.users, table.items, 1, 3)
    assert raw_pairs(table.take(keep)) == [("u1", "a"), ("u2", "a"), ("u5", "a")]
    keep, history = P.kcore(table.users, table.items, 0, 0)
    assert keep.all() and history == []


def test_kcore_result_is_a_fixed_point(tmp_path):
    rng = np.random.default_rng(1)
    users = rng.integers(0, 60, 800)
    items = (rng.pareto(1.0, 800) * 5).astype(np.int64) % 90
    keys = np.unique(users * 100 + items)
    users, items = keys // 100, keys % 100
    keep, _ = P.kcore(users, items, 5, 4)
    assert keep.any()
    assert np.bincount(users[keep])[np.unique(users[keep])].min() >= 5
    assert np.bincount(items[keep])[np.unique(items[keep])].min() >= 4
    again, history = P.kcore(users[keep], items[keep], 5, 4)
    assert again.all() and history == []


# -- ids -----------------------------------------------------------------------------------------
def test_contiguous_ids_numeric_then_string_order():
    ids, raw = P.contiguous_ids(np.array([0, 1, 2, 1]), ["10", "9", "100"])
    assert raw == ["9", "10", "100"] and ids.tolist() == [1, 0, 2, 0]
    ids, raw = P.contiguous_ids(np.array([0, 1, 2]), ["b", "a", "10"])
    assert raw == ["10", "a", "b"] and ids.tolist() == [2, 1, 0]
    ids, raw = P.contiguous_ids(np.array([2, 0]), ["x", "unused", "y"])  # unused codes skipped
    assert raw == ["x", "y"] and ids.tolist() == [1, 0]


# -- splits --------------------------------------------------------------------------------------
def users_with_degrees(degrees) -> np.ndarray:
    """``[sum(degrees)]`` user ids, user ``u`` repeated ``degrees[u]`` times, shuffled."""
    users = np.repeat(np.arange(len(degrees)), degrees)
    return np.random.default_rng(0).permutation(users)


def counts(users: np.ndarray, assign: np.ndarray) -> list[tuple[int, int, int]]:
    """Per user ``(train, valid, test)`` sizes."""
    n = users.max() + 1
    return [tuple(int(c) for c in np.bincount(assign[users == u], minlength=3)) for u in range(n)]


@pytest.mark.parametrize(
    "ratios,expected",
    [
        # n = 1..4 keep all in train; n·0.1 rounds half up: 5 → 1, 14 → 1, 15 → 2
        (
            (0.8, 0.1, 0.1),
            {
                1: (1, 0, 0),
                4: (4, 0, 0),
                5: (3, 1, 1),
                14: (12, 1, 1),
                15: (11, 2, 2),
                20: (16, 2, 2),
            },
        ),
        ((0.7, 0.1, 0.2), {1: (1, 0, 0), 2: (2, 0, 0), 3: (2, 0, 1), 5: (3, 1, 1), 10: (7, 1, 2)}),
        # two ratios: no validation; 0.5 of 1 rounds to 1 but one train item is kept
        ((0.5, 0.5), {1: (1, 0, 0), 2: (1, 0, 1), 3: (1, 0, 2), 4: (2, 0, 2)}),
        # valid gives back first: n=2 → valid 1, test 1 → (1, 0, 1)
        ((0.2, 0.4, 0.4), {2: (1, 0, 1), 3: (1, 1, 1), 5: (1, 2, 2)}),
    ],
)
def test_random_split_per_user_rounding(ratios, expected):
    degrees = list(expected)
    users = users_with_degrees(degrees)
    assign = P.split_random(users, ratios, seed=0)
    assert counts(users, assign) == list(expected.values())


def test_random_split_seeded_determinism(tmp_path):
    users = users_with_degrees([12] * 30)
    a = P.split_random(users, (0.8, 0.1, 0.1), seed=5)
    assert np.array_equal(a, P.split_random(users, (0.8, 0.1, 0.1), seed=5))
    assert not np.array_equal(a, P.split_random(users, (0.8, 0.1, 0.1), seed=6))
    p, _ = write_format(tmp_path, "movielens-dat", big_rows())
    for out in ("a", "b"):
        P.prepare(p, "movielens-dat", tmp_path / out, seed=5)
    P.prepare(p, "movielens-dat", tmp_path / "c", seed=6)
    for name in ("train.txt", "valid.txt", "test.txt"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    assert (tmp_path / "a" / "test.txt").read_text() != (tmp_path / "c" / "test.txt").read_text()


def big_rows(n_users: int = 30, seed: int = 0):
    """Users with 1..20 distinct items each, random ratings, distinct timestamps."""
    rng = np.random.default_rng(seed)
    rows, t = [], rng.permutation(10_000)
    k = 0
    for u in range(n_users):
        for i in rng.choice(50, size=int(rng.integers(1, 21)), replace=False):
            rows.append((str(u + 1), str(i + 100), int(rng.integers(1, 6)), int(t[k])))
            k += 1
    return rows


def test_random_split_files_disjoint_and_complete(tmp_path):
    rows = big_rows()
    p, _ = write_format(tmp_path, "movielens-dat", rows)
    stats = P.prepare(p, "movielens-dat", tmp_path / "o", ratios=(0.7, 0.1, 0.2), seed=1)
    splits = raw_splits(tmp_path / "o")
    assert not (
        splits["train"] & splits["valid"]
        or splits["train"] & splits["test"]
        or splits["valid"] & splits["test"]
    )
    assert splits["train"] | splits["valid"] | splits["test"] == {(u, i) for u, i, _, _ in rows}
    deg = {}
    for u, _, _, _ in rows:
        deg[u] = deg.get(u, 0) + 1
    for u, n in deg.items():
        n_test = int(np.floor(n * 0.2 + 0.5 + 1e-9))
        n_valid = int(np.floor(n * 0.1 + 0.5 + 1e-9))
        if n_test + n_valid > n - 1:  # not hit by these degrees except tiny ones
            n_valid = max(0, n - 1 - n_test)
            n_test = min(n_test, n - 1)
        got = [sum(1 for uu, _ in s if uu == u) for s in splits.values()]
        assert got == [n - n_valid - n_test, n_valid, n_test], (u, n)
    assert {k: v["interactions"] for k, v in stats["splits"].items()} == {
        k: len(v) for k, v in splits.items()
    }


def test_loo_picks_the_latest_and_the_one_before(tmp_path):
    p, _ = write_format(tmp_path, "movielens-dat")
    P.prepare(p, "movielens-dat", tmp_path / "o", split="loo", valid=True)
    s = raw_splits(tmp_path / "o")
    # user 1: t 100 (10), 300 (11), 200 (12); user 2: 150 (10), 50 (13); user 3: 400 (11), ...
    assert s["test"] == {("1", "11"), ("2", "10"), ("3", "11")}
    assert s["valid"] == {("1", "12"), ("3", "10")}  # user 2 has 2 items: no valid item
    assert s["train"] == {("1", "10"), ("2", "13"), ("3", "12"), ("3", "13")}


def test_loo_single_item_users_stay_in_train_and_ties_go_to_the_later_line():
    users = np.array([0, 1, 1, 1])
    stamps = np.array([5.0, 7.0, 7.0, 1.0])
    assert P.split_loo(users, stamps, valid=False, seed=0).tolist() == [0, 0, 2, 0]
    assert P.split_loo(users, stamps, valid=True, seed=0).tolist() == [0, 1, 2, 0]


def test_loo_without_timestamps_is_random_and_seeded():
    users = users_with_degrees([1, 2, 3, 6, 6, 6, 6])
    picks = {P.split_loo(users, None, valid=True, seed=s).tobytes() for s in range(5)}
    assert len(picks) > 1
    a = P.split_loo(users, None, valid=True, seed=2)
    assert np.array_equal(a, P.split_loo(users, None, valid=True, seed=2))
    assert counts(users, a) == [(1, 0, 0), (1, 0, 1), (1, 1, 1)] + [(4, 1, 1)] * 4


def test_temporal_global_respects_time(tmp_path):
    rows = big_rows()
    p, _ = write_format(tmp_path, "movielens-dat", rows)
    P.prepare(
        p, "movielens-dat", tmp_path / "o", split="temporal", by="global", ratios=(0.7, 0.1, 0.2)
    )
    when = {(u, i): t for u, i, _, t in rows}
    s = raw_splits(tmp_path / "o")
    n = len(rows)
    cut1, cut2 = (int(np.floor(n * r + 0.5 + 1e-9)) for r in (0.7, 0.8))
    assert [len(s[k]) for k in ("train", "valid", "test")] == [cut1, cut2 - cut1, n - cut2]
    times = {k: [when[pair] for pair in v] for k, v in s.items()}
    assert max(times["train"]) < min(times["valid"])
    assert max(times["valid"]) < min(times["test"])


def test_temporal_global_ties_follow_file_order():
    stamps = np.array([3.0, 1.0, 1.0, 1.0, 2.0])
    # oldest first: rows 1, 2, 3 (t=1, file order), 4 (t=2), 0 (t=3)
    assert P.split_temporal_global(stamps, (0.4, 0.2, 0.4)).tolist() == [2, 0, 0, 1, 2]


def test_temporal_per_user_newest_to_test(tmp_path):
    rows = big_rows()
    p, _ = write_format(tmp_path, "movielens-dat", rows)
    P.prepare(
        p, "movielens-dat", tmp_path / "o", split="temporal", by="user", ratios=(0.7, 0.1, 0.2)
    )
    when = {(u, i): t for u, i, _, t in rows}
    s = raw_splits(tmp_path / "o")
    for user in {u for u, _, _, _ in rows}:
        t = {k: [when[(u, i)] for u, i in v if u == user] for k, v in s.items()}
        n = sum(len(v) for v in t.values())
        assert len(t["test"]) == P.per_user_counts(np.array([n]), 0.1, 0.2)[1][0]
        if t["valid"]:
            assert max(t["train"]) < min(t["valid"])
        if t["test"]:
            assert max(t["train"] + t["valid"]) < min(t["test"])


def test_two_ratios_write_no_valid_file(tmp_path):
    p, _ = write_format(tmp_path, "movielens-dat", big_rows())
    stats = P.prepare(p, "movielens-dat", tmp_path / "o", ratios=(0.8, 0.2))
    assert not (tmp_path / "o" / "valid.txt").exists()
    assert "valid.txt" not in stats["files"] and stats["splits"]["valid"]["interactions"] == 0
    data = load_dataset(DatasetSpec(name="x", path=str(tmp_path / "o")))
    assert data.valid.nnz == 0 and data.test.nnz == stats["splits"]["test"]["interactions"]


# -- output contract -----------------------------------------------------------------------------
def test_outputs_load_and_map_back_to_raw_ids(tmp_path):
    rows = big_rows()
    p, _ = write_format(tmp_path, "movielens-dat", rows)
    out = tmp_path / "o"
    stats = P.prepare(p, "movielens-dat", out, min_rating=2, user_core=2, item_core=2, seed=4)
    assert sorted(os.listdir(out)) == sorted(P.OUTPUT_FILES)  # no temporary files left
    data = load_dataset(DatasetSpec(name="x", path=str(out)))
    d = stats["dataset"]
    assert (data.n_users, data.n_items) == (d["users"], d["items"])
    assert (data.train.nnz, data.valid.nnz, data.test.nnz) == tuple(
        stats["splits"][k]["interactions"] for k in ("train", "valid", "test")
    )
    # every written pair is a raw pair with rating >= 2, and each user/item keeps >= 2 of them
    rated = {(u, i): r for u, i, r, _ in rows}
    written = set().union(*raw_splits(out).values())
    assert all(rated[pair] >= 2 for pair in written)
    assert len(written) == d["interactions"]
    for side in (0, 1):
        ids = [pair[side] for pair in written]
        assert min(ids.count(x) for x in set(ids)) >= 2
    # adjacency lines: users ascending, items ascending within a line
    lines = (out / "train.txt").read_text().splitlines()
    firsts = [int(line.split()[0]) for line in lines]
    assert firsts == sorted(firsts)
    for line in lines:
        items = list(map(int, line.split()[1:]))
        assert items == sorted(items)


def test_stats_json_records_input_options_and_steps(tmp_path):
    p, _ = write_format(tmp_path, "movielens-dat", ROWS + [("1", "10", 1, 1)])
    out = tmp_path / "o"
    stats = P.prepare(p, "movielens-dat", out, min_rating=2, split="loo", seed=9)
    assert json.loads((out / "stats.json").read_text()) == stats
    assert stats["input"] == {
        "path": str(p.resolve()),
        "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
        "format": "movielens-dat",
        "bytes": p.stat().st_size,
    }
    o = stats["options"]
    assert (o["min_rating"], o["split"], o["seed"], o["dedup"], o["ratios"]) == (
        2,
        "loo",
        9,
        "first",
        None,
    )
    s = stats["steps"]
    assert s["read"]["rows"] == 10 and s["dedup"]["removed"] == 1  # t=1 copy of (1,10) kept
    assert s["min_rating"]["removed"] == 2  # (1,10) now rated 1, (3,12) rated 1
    summary = P.summary(stats)
    for text in (
        "read      10 rows",
        "1 repeated pairs removed",
        "2 rows below 2 removed",
        "test      3 users",
    ):
        assert text in summary, summary


def test_refuses_a_non_empty_folder_unless_forced(tmp_path):
    p, _ = write_format(tmp_path, "movielens-dat", big_rows())
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty; pass --force"):
        P.prepare(p, "movielens-dat", out)
    P.prepare(p, "movielens-dat", out, force=True)
    assert (out / "valid.txt").exists()
    # a forced rerun without validation removes the stale valid.txt, keeps other files
    P.prepare(p, "movielens-dat", out, ratios=(0.8, 0.2), force=True)
    assert not (out / "valid.txt").exists() and (out / "notes.md").read_text() == "mine"
    assert load_dataset(DatasetSpec(name="x", path=str(out))).valid.nnz == 0
    with pytest.raises(FileExistsError, match="not a folder"):
        P.prepare(p, "movielens-dat", out / "notes.md", force=True)


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "train.txt"
    target.write_text("old\n")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(P.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        P.write_atomic(target, "new\n")
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["train.txt"]


def test_errors_write_nothing(tmp_path):
    p = write(tmp_path, "ratings.dat", "1::2::3::4\n1::x\n")
    with pytest.raises(DataFormatError):
        P.prepare(p, "movielens-dat", tmp_path / "o")
    assert not (tmp_path / "o").exists()


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_options_reach_prepare(tmp_path, capsys):
    p, _ = write_format(tmp_path, "csv", big_rows())
    args = [
        str(p),
        "--format",
        "csv",
        "--sep",
        ";",
        "--user-col",
        "uid",
        "--item-col",
        "iid",
        "--rating-col",
        "score",
        "--time-col",
        "when",
        "--min-rating",
        "2",
        "--kcore",
        "2",
        "--dedup",
        "last",
        "--split",
        "temporal",
        "--by",
        "user",
        "--ratios",
        "0.7",
        "0.3",
        "--seed",
        "3",
        "--out",
        str(tmp_path / "o"),
    ]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "k-core    users>=2, items>=2" in out and "wrote train.txt, test.txt" in out
    o = json.loads((tmp_path / "o" / "stats.json").read_text())["options"]
    assert o == {
        "sep": ";",
        "user_col": "uid",
        "item_col": "iid",
        "rating_col": "score",
        "time_col": "when",
        "encoding": "utf-8",
        "min_rating": 2.0,
        "user_core": 2,
        "item_core": 2,
        "dedup": "last",
        "split": "temporal",
        "ratios": [0.7, 0.3],
        "by": "user",
        "valid": False,
        "seed": 3,
    }
    # --user-core/--item-core override --kcore
    assert (
        cli_main(
            [
                str(p),
                "--format",
                "csv",
                "--sep",
                ";",
                "--user-col",
                "uid",
                "--item-col",
                "iid",
                "--kcore",
                "2",
                "--item-core",
                "1",
                "--out",
                str(tmp_path / "k"),
            ]
        )
        == 0
    )
    k = json.loads((tmp_path / "k" / "stats.json").read_text())["options"]
    assert (k["user_core"], k["item_core"]) == (2, 1)


def test_cli_exit_codes(tmp_path, capsys):
    bad = write(tmp_path, "ratings.dat", "1::2::3::4\n1::2\n")
    assert cli_main([str(bad), "--format", "movielens-dat", "--out", str(tmp_path / "o")]) == 1
    assert f"error: {bad}:2: expected 'UserID::MovieID" in capsys.readouterr().err
    good, _ = write_format(tmp_path, "lightgcn")
    args = [str(good), "--format", "lightgcn", "--out", str(tmp_path / "o")]
    assert cli_main([*args, "--min-rating", "3"]) == 2
    assert "--min-rating needs ratings" in capsys.readouterr().err
    assert cli_main([*args, "--encoding", "no-such-codec"]) == 2
    with pytest.raises(SystemExit):  # argparse: unknown format
        cli_main([str(good), "--format", "parquet", "--out", str(tmp_path / "o")])


def test_cli_separator_names():
    from sslrec.prepare_cli import parse_args

    for given, sep in (("tab", "\t"), ("\\t", "\t"), (";", ";"), ("space", " ")):
        assert parse_args(["x", "--format", "csv", "--out", "o", "--sep", given]).sep == sep


def test_python_m_sslrec_prepare_end_to_end(tmp_path):
    p, _ = write_format(tmp_path, "movielens-csv", big_rows())
    out = tmp_path / "data"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sslrec",
            "prepare",
            str(p),
            "--format",
            "movielens-csv",
            "--out",
            str(out),
            "--min-rating",
            "2",
            "--kcore",
            "2",
            "--split",
            "loo",
            "--valid",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dataset   " in proc.stdout and "wrote train.txt, valid.txt, test.txt" in proc.stdout
    data = load_dataset(DatasetSpec(name="x", path=str(out)))
    stats = json.loads((out / "stats.json").read_text())
    assert data.test.nnz == stats["splits"]["test"]["users"] == data.n_users  # one per user
    assert data.train.multiply(data.test).nnz == 0 and data.train.multiply(data.valid).nnz == 0
    assert data.valid.multiply(data.test).nnz == 0
    # a bad file: exit status 1 and FILE:LINE on stderr
    bad = write(tmp_path, "bad.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n1,2,x,4\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sslrec",
            "prepare",
            str(bad),
            "--format",
            "movielens-csv",
            "--out",
            str(tmp_path / "bad_out"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert f"{bad}:3: expected a numeric rating, got 'x'" in proc.stderr
