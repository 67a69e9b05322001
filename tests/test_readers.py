"""Readers: both on-disk formats parse correctly, and every bad input names file, line, expectation.

Each error test checks the three parts of a ``DataFormatError`` message separately: it starts
with ``path:line: `` (or ``path: `` for whole-file problems), ``err.line`` holds the same line
number, and the text says what was expected and what was found.
"""

from pathlib import Path

import numpy as np
import pytest

from sslrec.data import DataFormatError, IdMap, read_adjacency_list, read_triples
from sslrec.data.readers import _SEPARATOR, ID_LIMIT


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


@pytest.mark.parametrize(
    "text,line",
    [
        ("user,item,rating\nu1,i1,5\n", 1),
        ("user,item\nu1,i1\n", 1),
        ("userId\tmovieId\n1\t2\n", 1),
        ("user_id,item_id,timestamp\n7,8,100\n", 1),
        ("\n# exported\nUserID, ItemID\n7, 8\n", 3),  # the first data line, after comments
        ("reviewerID,asin,overall\nA1,B2,5\n", 1),
    ],
)
def test_triples_header_without_header_flag_is_an_error(tmp_path, text, line):
    p = write(tmp_path, "h.csv", text)
    err = format_error(read_triples, p, IdMap())
    assert_located(err, p, line, "looks like a header line", "set dataset.header=true")


def test_triples_non_numeric_rating_on_first_line_suggests_header(tmp_path):
    p = write(tmp_path, "h.csv", "who,what,stars\n1,2,5\n")
    err = format_error(read_triples, p, IdMap())
    assert_located(err, p, 1, "expected a numeric rating, got 'stars'", "dataset.header=true")
    # later lines get no header hint
    p = write(tmp_path, "h2.csv", "1,2,5\n1,3,x\n")
    err = format_error(read_triples, p, IdMap())
    assert_located(err, p, 2, "expected a numeric rating, got 'x'")
    assert "header" not in str(err)


@pytest.mark.parametrize(
    "text",
    [
        "u123,i9\nu1,i7\n",
        "alice,book\nbob,film\n",
        "user1,item1\nuser2,item1\n",
        "user,i9\nbob,i9\n",  # only one column looks like a name
        "42 item\n43 item\n",
    ],
)
def test_triples_raw_ids_that_look_like_words_are_data(tmp_path, text):
    ids = IdMap()
    pairs = read_triples(write(tmp_path, "d.csv", text), ids)
    assert pairs.lines.tolist() == [1, 2]
    assert ids.raw_users()[0] == _SEPARATOR.split(text.splitlines()[0])[0]


def test_triples_header_flag_skips_a_named_header(tmp_path):
    pairs = read_triples(write(tmp_path, "h.csv", "userId\tmovieId\n1\t2\n"), IdMap(), header=True)
    assert pairs.lines.tolist() == [2]


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


# -- bytes that are not UTF-8 text -----------------------------------------------------------
LATIN1 = b"0 1\n1 2\n2 3\n3 4\n4 5\n5 6\n" + "7 caf\u00e9\n".encode("latin-1")


@pytest.mark.parametrize("reader", ["adjacency", "triples"])
def test_latin1_byte_names_line_and_offset(tmp_path, reader):
    p = tmp_path / "train.txt"
    p.write_bytes(LATIN1)
    call = read_adjacency_list if reader == "adjacency" else read_triples
    args = () if reader == "adjacency" else (IdMap(),)
    err = format_error(call, p, *args)
    offset = LATIN1.index(b"\xe9")
    assert_located(
        err,
        p,
        7,
        "byte 0xe9",
        f"at byte offset {offset}",
        "(column 6 of the line)",
        "is not valid UTF-8",
        "expected a UTF-8 text file",
    )


def test_undecodable_byte_offset_counts_the_byte_order_mark(tmp_path):
    p = tmp_path / "train.csv"
    p.write_bytes(b"\xef\xbb\xbfa,b\r\nc,\xffd\r\n")
    err = format_error(read_triples, p, IdMap())
    assert_located(err, p, 2, "byte 0xff at byte offset 10", "column 3")


@pytest.mark.parametrize("reader", ["adjacency", "triples"])
def test_nul_bytes_look_binary(tmp_path, reader):
    p = tmp_path / "train.txt"
    p.write_bytes(b"0 1\n1 2\n2 \x00\x003\n")
    call = read_adjacency_list if reader == "adjacency" else read_triples
    args = () if reader == "adjacency" else (IdMap(),)
    err = format_error(call, p, *args)
    assert_located(err, p, 3, "NUL byte at byte offset 10", "looks like a binary file")


def test_utf16_text_looks_binary(tmp_path):
    p = tmp_path / "train.txt"
    p.write_bytes("0 1\n1 2\n".encode("utf-16"))
    assert_located(format_error(read_adjacency_list, p), p, 1, "looks like a binary file")


def test_gzip_renamed_to_train_txt(tmp_path):
    import gzip

    p = tmp_path / "train.txt"
    p.write_bytes(gzip.compress(b"0 1 2\n1 0\n" * 100))
    err = format_error(read_adjacency_list, p)
    assert_located(err, p, 1, "looks like a gzip-compressed file", "expected a plain-text")
    assert_located(format_error(read_triples, p, IdMap()), p, 1, "gzip")


def test_npy_renamed_to_train_txt(tmp_path):
    import io

    buf = io.BytesIO()
    np.save(buf, np.arange(10))
    p = tmp_path / "train.txt"
    p.write_bytes(buf.getvalue())
    assert_located(format_error(read_adjacency_list, p), p, 1, "NumPy .npy array")


# -- ids too large ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,line,what",
    [
        ("0 1\n1 99999999999999999999\n", 2, "item"),  # beyond int64
        ("0 1\n9223372036854775808 1\n", 2, "user"),  # int64 max + 1
        ("0 1\n\n9223372036854775807 1\n", 3, "user"),  # int64 max
        (f"0 1\n1 {ID_LIMIT}\n", 2, "item"),
        ("0 1\n1 2 " + "9" * 5000 + "\n", 2, "item"),  # beyond int()'s 4300-digit limit
    ],
    ids=["beyond-int64", "int64-max-plus-1", "int64-max", "id-limit", "5000-digits"],
)
def test_adjacency_ids_too_large(tmp_path, text, line, what):
    p = write(tmp_path, "train.txt", text)
    err = format_error(read_adjacency_list, p)
    assert_located(
        err, p, line, f"expected a non-negative integer {what} id below 2,147,483,647", "got '"
    )
    assert len(str(err)) < 300  # a 5000-digit token is shortened


def test_adjacency_largest_id_and_zero_padding_accepted(tmp_path):
    pairs = read_adjacency_list(
        write(tmp_path, "t.txt", f"0 {ID_LIMIT - 1}\n007 0000000000000000000001\n")
    )
    assert pairs.items.tolist() == [ID_LIMIT - 1, 1] and pairs.users.tolist() == [0, 7]


# -- other malformed input -------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,line,token",
    [
        ("0 1\n+5 2\n", 2, "+5"),
        ("0 1\n1 5.0\n", 2, "5.0"),
        ("0 1\n1 1e3\n", 2, "1e3"),
        ("0 1\n1 1_000\n", 2, "1_000"),  # int() accepts it
        ("0 1\n1 \u0663\n", 2, "\u0663"),  # ARABIC-INDIC DIGIT THREE: int() accepts it
        ("0 1\n1 \uff15\n", 2, "\uff15"),  # FULLWIDTH DIGIT FIVE
        ("0 1\n1 2\u00a03\n", 2, "2\u00a03"),  # a no-break space is not a separator
        ("0 1\n1 2\x0c3\n", 2, "2\x0c3"),  # nor is a form feed
        ("0 1\n1 2\u20283\n", 2, "2\u20283"),  # nor a Unicode line separator
        ("0 1\n1,2,3\n", 2, "1,2,3"),
        ("0 1\n1 --2\n", 2, "--2"),
        ("0 1\n1 -\n", 2, "-"),
    ],
)
def test_adjacency_tokens_that_are_not_plain_ids(tmp_path, text, line, token):
    p = write(tmp_path, "train.txt", text)
    err = format_error(read_adjacency_list, p)
    assert_located(err, p, line, "expected a non-negative integer", f"got {token!r}")


def test_adjacency_cr_only_line_endings_and_separator_only_lines(tmp_path):
    pairs = read_adjacency_list(write(tmp_path, "t.txt", "0 1\r \t \r1 2 3\r\n\n2 4"))
    assert pairs.users.tolist() == [0, 1, 1, 2] and pairs.items.tolist() == [1, 2, 3, 4]
    assert pairs.lines.tolist() == [1, 3, 3, 5]
    err = format_error(read_adjacency_list, write(tmp_path, "u.txt", "0 1\r1 x\r\n"))
    assert err.line == 2


def test_adjacency_very_long_line(tmp_path):
    items = list(range(200_000))
    p = write(tmp_path, "t.txt", "3 " + " ".join(map(str, items)) + "\n4 1\n")
    pairs = read_adjacency_list(p)
    assert pairs.items[:-1].tolist() == items and pairs.lines.tolist() == [1] * 200_000 + [2]
    p = write(tmp_path, "bad.txt", "0 1\n1 " + "7" * 100_000 + "x\n")
    err = format_error(read_adjacency_list, p)
    assert_located(err, p, 2, "(100,001 characters)")
    assert len(str(err)) < 300


@pytest.mark.parametrize(
    "text,line,expected",
    [
        ("u,,i\n", 1, "column 2 is empty"),
        ("a,b\nu,i,\n", 2, "column 3 is empty"),  # trailing separator
        ("a,b\n,u,i\n", 2, "column 1 is empty"),
        ("a,b\n , \n", 2, "column 1 is empty"),  # only separators
        ("a,b\n,,,\n", 2, "column 1 is empty"),
        ("a b\nu ,, i\n", 2, "column 2 is empty"),
    ],
)
def test_triples_empty_columns(tmp_path, text, line, expected):
    p = write(tmp_path, "t.csv", text)
    err = format_error(read_triples, p, IdMap())
    assert_located(err, p, line, expected, "separated by one comma or by spaces/tabs")


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity", "1e999", "\u0663", "1_0", "0x10", "5%"])
def test_triples_rating_must_be_a_finite_decimal_number(tmp_path, bad):
    p = write(tmp_path, "t.csv", f"a,b,4\nc,d,{bad}\n")
    err = format_error(read_triples, p, IdMap())
    assert_located(err, p, 2, "expected a numeric rating, got")


def test_triples_rating_beyond_float32_is_an_error_timestamp_is_not(tmp_path):
    p = write(tmp_path, "t.csv", "a,b,4,1e300\nc,d,1e39,1\n")
    assert_located(format_error(read_triples, p, IdMap()), p, 2, "numeric rating, got '1e39'")
    pairs = read_triples(write(tmp_path, "ok.csv", "a,b,+4.,1e300\nc,d,.5,-1E2\n"), IdMap())
    np.testing.assert_allclose(pairs.timestamps, [1e300, -100.0])
    np.testing.assert_allclose(pairs.ratings, [4.0, 0.5])


def test_triples_windows_line_endings_tabs_and_cr_only(tmp_path):
    ids = IdMap()
    pairs = read_triples(write(tmp_path, "t.tsv", "u1\ti1\t5\r\nu2\t\ti2 \t 4\ru3\ti1\t3\r\n"), ids)
    assert pairs.lines.tolist() == [1, 2, 3]
    assert ids.raw_items() == ["i1", "i2"]
    np.testing.assert_allclose(pairs.ratings, [5, 4, 3])


def test_triples_non_ascii_raw_ids_are_kept(tmp_path):
    ids = IdMap()
    read_triples(write(tmp_path, "t.csv", "jos\u00e9,caf\u00e9\n\u674e,\u0663\n"), ids)
    assert ids.raw_users() == ["jos\u00e9", "\u674e"] and ids.raw_items() == ["caf\u00e9", "\u0663"]
