"""Readers: both on-disk formats parse correctly, and every bad input names file, line, expectation.

Each error test checks the three parts of a ``DataFormatError`` message separately: it starts
with ``path:line: `` (or ``path: `` for whole-file problems), ``err.line`` holds the same line
number, and the text says what was expected and what was found.
"""

from pathlib import Path

import numpy as np
import pytest

from sslrec.data import DataFormatError, IdMap, read_adjacency_list, read_triples


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def format_error(call, *args, **kwargs) -> DataFormatError:
    with pytest.raises(DataFormatError) as err:
        call(*args, **kwargs)
    return err.value


def assert_located(err: DataFormatError, path: Path, line: int | None, *expected: str) -> None:
    """``err`` names ``path`` and ``line`` in its prefix and attributes, and says ``expected``."""
    msg = str(err)
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert msg.startswith(prefix), msg
    assert err.path == str(path)
    assert err.line == line
    for text in expected:
        assert text in msg, msg


# -- adjacency lists: parsing ----------------------------------------------------------------
def test_adjacency_pairs_in_file_order_with_line_numbers(tmp_path):
    p = write(tmp_path, "train.txt", "0 3 1 2\n1 0\n\n3 7 7\n")
    pairs = read_adjacency_list(p)
    assert pairs.users.tolist() == [0, 0, 0, 1, 3, 3]
    assert pairs.items.tolist() == [3, 1, 2, 0, 7, 7]  # duplicates are kept here
    assert pairs.lines.tolist() == [1, 1, 1, 2, 4, 4]
    assert pairs.path == str(p)
    assert pairs.ratings is None and pairs.timestamps is None
    for arr in (pairs.users, pairs.items, pairs.lines):
        assert arr.dtype == np.int64


def test_adjacency_accepts_any_whitespace_and_crlf(tmp_path):
    p = write(tmp_path, "train.txt", "  0\t4  5 \r\n\r\n2   \t 1\r\n   \n1 6")
    pairs = read_adjacency_list(p)
    assert pairs.users.tolist() == [0, 0, 2, 1]
    assert pairs.items.tolist() == [4, 5, 1, 6]
    assert pairs.lines.tolist() == [1, 1, 3, 5]


def test_adjacency_user_without_items_contributes_nothing(tmp_path):
    p = write(tmp_path, "train.txt", "0\n1 2\n5\n")
    pairs = read_adjacency_list(p)
    assert list(zip(pairs.users.tolist(), pairs.items.tolist(), strict=True)) == [(1, 2)]
    assert pairs.lines.tolist() == [2]


def test_adjacency_large_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    rows = {u: sorted(rng.choice(500, size=rng.integers(1, 30), replace=False)) for u in range(200)}
    text = "".join(" ".join(map(str, [u, *items])) + "\n" for u, items in rows.items())
    pairs = read_adjacency_list(write(tmp_path, "train.txt", text))
    expected = [(u, int(i)) for u, items in rows.items() for i in items]
    assert list(zip(pairs.users.tolist(), pairs.items.tolist(), strict=True)) == expected
    assert pairs.lines.tolist() == [u + 1 for u, _ in expected]


def test_adjacency_accepts_utf8_byte_order_mark(tmp_path):
    p = tmp_path / "train.txt"
    p.write_bytes(b"\xef\xbb\xbf0 1 2\n1 3\n")
    pairs = read_adjacency_list(p)
    assert pairs.users.tolist() == [0, 0, 1] and pairs.items.tolist() == [1, 2, 3]


# -- adjacency lists: errors -----------------------------------------------------------------
@pytest.mark.parametrize(
    "text,line,expected",
    [
        ("0 1 2\n1 x 3\n", 2, ["expected a non-negative integer item id", "got 'x'"]),
        ("0 1\nu7 2\n", 2, ["expected a non-negative integer user id", "got 'u7'"]),
        ("0 1\n1 2.5\n", 2, ["expected a non-negative integer item id", "got '2.5'"]),
        ("0 1\n\n\n1 2 3e2\n", 4, ["integer item id", "got '3e2'"]),
        ("0 1,2\n", 1, ["integer item id", "got '1,2'"]),
        ("0 1\n1 \u00b2\n", 2, ["integer item id", "got '\u00b2'"]),  # str.isdigit() is True
        ("0 1\n1 2\n-2 3\n", 3, ["expected a non-negative integer user id", "got -2"]),
        ("0 1\n1 2 -3\n", 2, ["expected a non-negative integer item id", "got -3"]),
    ],
)
def test_adjacency_bad_ids(tmp_path, text, line, expected):
    p = write(tmp_path, "train.txt", text)
    assert_located(format_error(read_adjacency_list, p), p, line, *expected)


@pytest.mark.parametrize("text", ["", "\n", "  \n\t\n   ", "\r\n\r\n"])
def test_adjacency_empty_or_whitespace_only_file(tmp_path, text):
    p = write(tmp_path, "test.txt", text)
    err = format_error(read_adjacency_list, p)
    assert_located(err, p, None, "file is empty", "expected at least one interaction")


def test_adjacency_only_users_without_items(tmp_path):
    p = write(tmp_path, "train.txt", "0\n1\n\n2\n")
    err = format_error(read_adjacency_list, p)
    assert_located(err, p, None, "no interactions found", "expected lines 'user item1 item2 ...'")


def test_adjacency_missing_file(tmp_path):
    p = tmp_path / "nope" / "train.txt"
    with pytest.raises(FileNotFoundError, match="nope/train.txt"):
        read_adjacency_list(p)


def test_adjacency_directory_is_not_a_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_adjacency_list(tmp_path)


# -- triples: parsing ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "u1 i9\nu2 i7\nu1 i7\n",
        "u1\ti9\nu2\ti7\nu1\ti7\n",
        "u1,i9\nu2,i7\nu1,i7\n",
        "u1, i9\nu2 ,\ti7\n  u1  i7  \n",  # mixed separators and padding
        "u1,i9\r\nu2,i7\r\nu1,i7\r\n",
    ],
    ids=["space", "tab", "comma", "mixed", "crlf"],
)
def test_triples_separators(tmp_path, text):
    ids = IdMap()
    pairs = read_triples(write(tmp_path, "data.txt", text), ids)
    assert pairs.users.tolist() == [0, 1, 0]
    assert pairs.items.tolist() == [0, 1, 1]
    assert pairs.lines.tolist() == [1, 2, 3]
    assert ids.raw_users() == ["u1", "u2"] and ids.raw_items() == ["i9", "i7"]
    assert pairs.ratings is None and pairs.timestamps is None


def test_triples_ratings_and_timestamps(tmp_path):
    ids = IdMap()
    p = write(tmp_path, "r.csv", "a,x,4.5,1000\nb,y,3,1e3\nc,x,-1,1700000000.25\n")
    pairs = read_triples(p, ids)
    np.testing.assert_allclose(pairs.ratings, [4.5, 3.0, -1.0])
    np.testing.assert_allclose(pairs.timestamps, [1000.0, 1000.0, 1700000000.25])
    assert pairs.ratings.dtype == np.float32 and pairs.timestamps.dtype == np.float64
    assert pairs.users.tolist() == [0, 1, 2] and pairs.items.tolist() == [0, 1, 0]


def test_triples_rating_only(tmp_path):
    pairs = read_triples(write(tmp_path, "r.tsv", "1\t2\t5\n2\t2\t1\n"), IdMap())
    np.testing.assert_allclose(pairs.ratings, [5.0, 1.0])
    assert pairs.timestamps is None


def test_triples_numeric_raw_ids_are_remapped_in_order_of_appearance(tmp_path):
    ids = IdMap()
    pairs = read_triples(write(tmp_path, "t.txt", "100 7\n5 7\n100 -3\n0 100\n"), ids)
    assert pairs.users.tolist() == [0, 1, 0, 2]
    assert pairs.items.tolist() == [0, 0, 1, 2]
    assert ids.users == {"100": 0, "5": 1, "0": 2}
    assert ids.items == {"7": 0, "-3": 1, "100": 2}  # user and item ids live in separate spaces


def test_triples_header_skip(tmp_path):
    text = "\n# exported 2024\nuser,item,rating\nu1,i1,5\n\nu2,i1,4\n"
    pairs = read_triples(write(tmp_path, "h.csv", text), IdMap(), header=True)
    assert pairs.users.tolist() == [0, 1] and pairs.items.tolist() == [0, 0]
    assert pairs.lines.tolist() == [4, 6]
    np.testing.assert_allclose(pairs.ratings, [5, 4])


def test_triples_without_header_flag_reads_first_line_as_data(tmp_path):
    ids = IdMap()
    pairs = read_triples(write(tmp_path, "h.csv", "user,item\nu1,i1\n"), ids)
    assert len(pairs.users) == 2 and ids.raw_users() == ["user", "u1"]


def test_triples_comments_and_blank_lines_are_skipped(tmp_path):
    pairs = read_triples(write(tmp_path, "c.txt", "# a comment\n\n  \nu1 i1\n#u2 i2\n"), IdMap())
    assert pairs.users.tolist() == [0] and pairs.lines.tolist() == [4]


def test_triples_shared_idmap_across_train_and_test(tmp_path):
    ids = IdMap()
    train = read_triples(write(tmp_path, "train.csv", "alice,book\nbob,film\nalice,film\n"), ids)
    test = read_triples(write(tmp_path, "test.csv", "bob,book\ncarol,song\nalice,song\n"), ids)
    assert train.users.tolist() == [0, 1, 0] and train.items.tolist() == [0, 1, 1]
    # known raw ids get the ids they had in train; new ones continue the numbering
    assert test.users.tolist() == [1, 2, 0] and test.items.tolist() == [0, 2, 2]
    assert ids.raw_users() == ["alice", "bob", "carol"]
    assert ids.raw_items() == ["book", "film", "song"]
    # the mapping inverts: raw ids in contiguous-id order give back the file contents
    users, items = ids.raw_users(), ids.raw_items()
    raw = [(users[u], items[i]) for u, i in zip(test.users, test.items, strict=True)]
    assert raw == [("bob", "book"), ("carol", "song"), ("alice", "song")]


def test_triples_separate_idmaps_are_independent(tmp_path):
    a, b = IdMap(), IdMap()
    read_triples(write(tmp_path, "a.txt", "x y\n"), a)
    pairs = read_triples(write(tmp_path, "b.txt", "z y\nx y\n"), b)
    assert pairs.users.tolist() == [0, 1]
    assert a.raw_users() == ["x"] and b.raw_users() == ["z", "x"]


def test_triples_byte_order_mark_is_not_part_of_the_first_id(tmp_path):
    p = tmp_path / "excel.csv"
    p.write_bytes("u1,i1\nu1,i2\n".encode("utf-8-sig"))
    ids = IdMap()
    pairs = read_triples(p, ids)
    assert ids.raw_users() == ["u1"]
    assert pairs.users.tolist() == [0, 0]


# -- triples: errors -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,line,expected",
    [
        ("1,2\n3\n", 2, ["expected 'user item [rating] [timestamp]'", "got 1 columns"]),
        ("1,2\n\n3,4,5,6,7\n", 3, ["expected 'user item [rating] [timestamp]'", "got 5 columns"]),
        ("only\n", 1, ["expected 'user item [rating] [timestamp]'", "got 1 columns"]),
        ("1,2,3\n3,4\n", 2, ["expected 3 columns like the first line", "got 2"]),
        ("1 2\n3 4\n5 6 7 8\n", 3, ["expected 2 columns like the first line", "got 4"]),
    ],
)
def test_triples_wrong_column_count(tmp_path, text, line, expected):
    p = write(tmp_path, "t.csv", text)
    assert_located(format_error(read_triples, p, IdMap()), p, line, *expected)


@pytest.mark.parametrize(
    "text,line,expected",
    [
        ("1,2,good\n", 1, "expected a numeric rating, got 'good'"),
        ("1,2,5\n1,3,4,5\n", 2, "expected 3 columns"),
        ("1,2,5,10\n3,4,x,11\n", 2, "expected a numeric rating, got 'x'"),
        ("1,2,5,10\n3,4,2,noon\n", 2, "expected a numeric timestamp, got 'noon'"),
        ("\n\n1\t2\t4,5\n2\t2\t3\t12:00\n", 4, "expected a numeric timestamp, got '12:00'"),
    ],
)
def test_triples_non_numeric_rating_or_timestamp(tmp_path, text, line, expected):
    p = write(tmp_path, "r.tsv", text)
    assert_located(format_error(read_triples, p, IdMap()), p, line, expected)


def test_triples_error_line_counts_header_and_comments(tmp_path):
    p = write(tmp_path, "h.csv", "# c\nuser,item,rating\nu,i,1\nu,j,bad\n")
    err = format_error(read_triples, p, IdMap(), header=True)
    assert_located(err, p, 4, "expected a numeric rating, got 'bad'")


@pytest.mark.parametrize("text", ["", "\n\n", " \t \n  "])
def test_triples_empty_or_whitespace_only_file(tmp_path, text):
    p = write(tmp_path, "t.csv", text)
    err = format_error(read_triples, p, IdMap())
    assert_located(err, p, None, "file is empty", "expected at least one interaction")


@pytest.mark.parametrize(
    "text,header", [("# only a comment\n", False), ("user,item\n", True), ("u,i\n#x\n", True)]
)
def test_triples_no_data_lines(tmp_path, text, header):
    p = write(tmp_path, "t.csv", text)
    err = format_error(read_triples, p, IdMap(), header=header)
    assert_located(err, p, None, "no interactions found", "expected 'user item' lines")


def test_triples_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        read_triples(tmp_path / "absent.csv", IdMap())


def test_data_format_error_is_a_value_error(tmp_path):
    p = write(tmp_path, "t.txt", "0 x\n")
    with pytest.raises(ValueError):
        read_adjacency_list(p)
