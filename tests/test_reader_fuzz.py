"""Property-based fuzzing of the readers and of the load path (hypothesis).

* Arbitrary bytes: the readers either succeed with a consistent result or raise
  ``DataFormatError`` naming the file and, unless it is a whole-file problem, a line that exists.
  For adjacency lists an independent line-by-line oracle predicts the exact outcome.
* Near-valid files (valid files with one line mutated): success, or an error on that line.
* ``load_dataset`` on fuzzed splits: an ``Interactions`` whose splits are consistent, or a
  ``DataFormatError``/``ValueError`` with a located, explained message.

Runs are derandomized (the same examples on every run, no example database) and bounded, so
that the module is deterministic in CI and takes a few seconds.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sslrec.data import (
    DataFormatError,
    DatasetSpec,
    IdMap,
    load_dataset,
    read_adjacency_list,
    read_triples,
)
from sslrec.data.readers import _MAGIC, ID_LIMIT

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BOM = b"\xef\xbb\xbf"
WHOLE_FILE = ("file is empty", "no interactions found")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def put(folder: Path, data: bytes, name: str = "train.txt") -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def n_lines(data: bytes) -> int:
    """Lines in the file as the readers (and editors) count them."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n") + 1


def assert_located(err: DataFormatError, path: Path, data: bytes) -> None:
    """``err`` names ``path`` and an existing line, or is a whole-file error."""
    msg = str(err)
    assert err.path == str(path), msg
    if err.line is None:
        assert msg.startswith(f"{path}: "), msg
        assert any(text in msg for text in WHOLE_FILE), msg
    else:
        assert msg.startswith(f"{path}:{err.line}: "), msg
        assert 1 <= err.line <= n_lines(data), msg
    assert "expected" in msg, msg


def assert_consistent(pairs, path: Path, data: bytes) -> None:
    n = len(pairs.users)
    assert n > 0 and len(pairs.items) == n and len(pairs.lines) == n
    for arr in (pairs.users, pairs.items, pairs.lines):
        assert arr.dtype == np.int64
    assert (pairs.users >= 0).all() and (pairs.items >= 0).all()
    assert (pairs.users < ID_LIMIT).all() and (pairs.items < ID_LIMIT).all()
    assert (pairs.lines >= 1).all() and (pairs.lines <= n_lines(data)).all()
    assert (np.diff(pairs.lines) >= 0).all()  # file order
    for extra in (pairs.ratings, pairs.timestamps):
        assert extra is None or (len(extra) == n and np.isfinite(extra).all())
    assert pairs.path == str(path)


# -- an independent oracle for adjacency lists -----------------------------------------------
def adjacency_oracle(data: bytes):
    """``("error", line)`` (``None`` for whole-file errors) or ``("ok", users, items, lines)``."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    if any(data.startswith(magic) for magic, *_ in _MAGIC):
        return ("error", 1)
    if b"\x00" in data:
        return ("error", n_lines(data[: data.index(b"\x00")]))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        return ("error", n_lines(data[: err.start]))
    users, items, lines = [], [], []
    for lineno, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        line = line.strip(" \t")
        if not line:
            continue
        ids = []
        for token in re.split(r"[ \t]+", line):
            digits = token.lstrip("0") or "0"
            ok = token.isascii() and token.isdigit() and len(digits) <= 10
            if not ok or int(digits) >= ID_LIMIT:
                return ("error", lineno)
            ids.append(int(digits))
        users += [ids[0]] * (len(ids) - 1)
        items += ids[1:]
        lines += [lineno] * (len(ids) - 1)
    if not items:
        return ("error", None)
    return ("ok", users, items, lines)


def check_adjacency(path: Path, data: bytes) -> None:
    expected = adjacency_oracle(data)
    try:
        pairs = read_adjacency_list(path)
    except DataFormatError as err:
        assert_located(err, path, data)
        assert expected == ("error", err.line), (str(err), expected)
        return
    assert_consistent(pairs, path, data)
    got = ("ok", pairs.users.tolist(), pairs.items.tolist(), pairs.lines.tolist())
    assert got == expected


def check_triples(path: Path, data: bytes, header: bool) -> None:
    ids = IdMap()
    try:
        pairs = read_triples(path, ids, header=header)
    except DataFormatError as err:
        assert_located(err, path, data)
        return
    assert_consistent(pairs, path, data)
    assert pairs.users.max() < len(ids.users) and pairs.items.max() < len(ids.items)
    # success means: every data line (not blank, not a comment, not the header) gave one pair
    # made of its first two columns, no column is empty, and all have 2 to 4 columns alike
    body = data[len(BOM) :] if data.startswith(BOM) else data
    text_lines = re.split(r"\r\n|\r|\n", body.decode("utf-8"))
    data_lines = [
        k
        for k, line in enumerate(text_lines, start=1)
        if line.strip(" \t") and not line.strip(" \t").startswith("#")
    ]
    assert pairs.lines.tolist() == data_lines[1:] if header else data_lines
    raw_users, raw_items = ids.raw_users(), ids.raw_items()
    widths = set()
    for u, i, k in zip(pairs.users, pairs.items, pairs.lines, strict=True):
        tokens = re.split(r"[ \t]*,[ \t]*|[ \t]+", text_lines[k - 1].strip(" \t"))
        assert tokens[:2] == [raw_users[u], raw_items[i]]
        assert "" not in tokens
        widths.add(len(tokens))
    assert len(widths) == 1 and 2 <= widths.pop() <= 4


# -- arbitrary bytes -------------------------------------------------------------------------
PIECES = [
    b"0", b"1", b"7", b"42", b"007", b"2147483646", b"2147483647", b"99999999999999999999",
    b" ", b"  ", b"\t", b"\n", b"\n", b"\r\n", b"\r", b",", b", ", b"-", b"+", b".", b"e", b"#",
    b"u", b"i9", b"user", b"item", b"rating", b"userId", b"nan", b"inf", b"1e3", b"4.5",
    b"\x00", b"\xe9", b"\xc3\xa9", b"\x0c", b"\x0b", b"\xe2\x80\xa8", b"\xc2\xa0", b"\xd9\xa3",
    b"\xef\xbb\xbf", b"\x1f\x8b", b"\x93NUMPY", b"\xff",
]  # fmt: skip
ARBITRARY = st.one_of(
    st.binary(max_size=120),
    st.lists(st.sampled_from(PIECES), max_size=50).map(b"".join),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@FUZZ
@given(data=ARBITRARY)
def test_adjacency_arbitrary_bytes(folder, data):
    check_adjacency(put(folder, data), data)


@FUZZ
@given(data=ARBITRARY, header=st.booleans())
def test_triples_arbitrary_bytes(folder, data, header):
    check_triples(put(folder, data, "train.csv"), data, header)


# -- near-valid files ------------------------------------------------------------------------
TOKENS = [
    "x", "-3", "+5", "5.0", "1e3", "1_000", "\u0663", "\uff15", "99999999999999999999",
    "2147483647", "0", "12", ",", "#", "nan", "\u00a0", "-",
]  # fmt: skip
MUTATIONS = ["token", "byte", "char", "delete", "empty", "huge", "minus"]


@st.composite
def adjacency_file(draw):
    """(lines, line ending): >= 2 lines, each a user with >= 1 item, some blank lines."""
    n = draw(st.integers(2, 12))
    rows = []
    for _ in range(n):
        ids = draw(st.lists(st.integers(0, 60), min_size=2, max_size=6))
        sep = draw(st.sampled_from([" ", "\t", "  ", " \t"]))
        rows.append(draw(st.sampled_from(["", " ", "\t"])) + sep.join(map(str, ids)))
        if draw(st.integers(0, 4)) == 0:
            rows.append(draw(st.sampled_from(["", "  ", "\t"])))
    return rows, draw(st.sampled_from(["\n", "\r\n", "\r"])), draw(st.booleans())


@st.composite
def triples_file(draw):
    """(lines, line ending, byte-order mark, header): a header line when ``header``."""
    n = draw(st.integers(2, 12))
    n_cols = draw(st.integers(2, 4))
    sep = draw(st.sampled_from([",", "\t", " ", ", ", " , "]))
    rows = []
    for _ in range(n):
        cols = [
            draw(st.sampled_from(["u", "", "user"])) + str(draw(st.integers(0, 30))),
            draw(st.sampled_from(["i", "", "item_"])) + str(draw(st.integers(0, 30))),
            str(draw(st.sampled_from([1, 2.5, -1, 5, 0.25]))),
            str(draw(st.integers(0, 2_000_000_000))),
        ][:n_cols]
        rows.append(sep.join(cols))
        if draw(st.integers(0, 5)) == 0:
            rows.append(draw(st.sampled_from(["", "# comment", "  "])))
    header = draw(st.booleans())
    if header:
        rows.insert(0, sep.join(["user", "item", "rating", "timestamp"][:n_cols]))
    return rows, draw(st.sampled_from(["\n", "\r\n", "\r"])), draw(st.booleans()), header


def mutate(draw, line: str, separator: str) -> str:
    kind = draw(st.sampled_from(MUTATIONS))
    tokens = re.split(separator, line.strip(" \t"))
    pos = draw(st.integers(0, len(tokens) - 1))
    if kind == "token":
        tokens.insert(draw(st.integers(0, len(tokens))), draw(st.sampled_from(TOKENS)))
    elif kind == "delete":
        del tokens[pos]
    elif kind == "empty":  # an empty column: u,,i or a leading/trailing comma
        tokens[pos] = ""
        return ",".join(tokens)
    elif kind == "huge":
        tokens[pos] = draw(st.sampled_from(["99999999999999999999", "1" * 400, "1e999"]))
    elif kind == "minus":
        tokens[pos] = "-" + tokens[pos]
    else:  # a random byte or character somewhere in the line (never a line break)
        if kind == "byte":
            ch = draw(st.integers(0, 255).filter(lambda b: b not in (10, 13)))
            ch = bytes([ch]).decode("latin-1")  # marked, re-encoded below as that raw byte
            ch = f"\udc00{ch}"
        else:
            ch = draw(st.characters(exclude_characters="\r\n"))
        at = draw(st.integers(0, len(line)))
        return line[:at] + ch + line[at:]
    joiner = "," if "," in separator and "," in line else " "
    return joiner.join(tokens)


def encode(lines: list[str], ending: str, bom: bool) -> bytes:
    r"""UTF-8, except that ``\udc00`` + one character stands for that raw byte."""
    out = [BOM] if bom else []
    for part in re.split(r"(\udc00.)", ending.join(lines) + ending, flags=re.S):
        if part.startswith("\udc00"):
            out.append(part[1].encode("latin-1"))
        else:
            out.append(part.encode("utf-8", "surrogatepass"))
    return b"".join(out)


@FUZZ
@given(st.data())
def test_adjacency_one_mutated_line(folder, data):
    rows, ending, bom = data.draw(adjacency_file())
    candidates = [k for k, row in enumerate(rows) if row.strip(" \t")]
    k = data.draw(st.sampled_from(candidates))
    rows[k] = mutate(data.draw, rows[k], r"[ \t]+")
    raw = encode(rows, ending, bom)
    path = put(folder, raw)
    check_adjacency(path, raw)  # exact outcome
    try:
        read_adjacency_list(path)
    except DataFormatError as err:
        assert err.line == k + 1, str(err)


@FUZZ
@given(st.data())
def test_triples_one_mutated_line(folder, data):
    rows, ending, bom, header = data.draw(triples_file())
    candidates = [k for k, row in enumerate(rows) if row.strip(" \t") and row[0] != "#"]
    candidates = candidates[1:] if header else candidates  # the header is not mutated
    k = data.draw(st.sampled_from(candidates))
    rows[k] = mutate(data.draw, rows[k], r"[ \t]*,[ \t]*|[ \t]+")
    raw = encode(rows, ending, bom)
    path = put(folder, raw, "train.csv")
    check_triples(path, raw, header=header)
    try:
        read_triples(path, IdMap(), header=header)
    except DataFormatError as err:
        msg = str(err)
        # a changed first line changes the expected column count: the next line is reported,
        # and the message names the mutated line as the one it was compared with
        first = k == candidates[0] and f"like the first line (line {k + 1})" in msg
        assert err.line == k + 1 or first, msg


# -- the whole load path ---------------------------------------------------------------------
@st.composite
def split_text(draw, fmt: str, big: bool):
    """One split file: mostly small ids, sometimes duplicates, user-only lines or a large id."""
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        user = draw(st.integers(0, 12))
        items = draw(st.lists(st.integers(0, 15), min_size=0 if fmt == "adjacency" else 1,
                              max_size=5))  # fmt: skip
        if big and draw(st.integers(0, 6)) == 0:
            items.append(draw(st.sampled_from([9_000, 20_000, 2_000_000, ID_LIMIT - 1])))
        if fmt == "adjacency":
            rows.append(" ".join(map(str, [user, *items])))
        else:
            rows += [f"u{user},i{i},{draw(st.sampled_from([1, 3, 5]))}" for i in items]
    return "\n".join(rows) + "\n"


@settings(FUZZ, max_examples=100)
@given(st.data())
def test_load_dataset_on_fuzzed_splits(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("load")
    fmt = data.draw(st.sampled_from(["adjacency", "triples"]))
    allow_sparse = data.draw(st.booleans())
    big = not allow_sparse  # never allocate a 2**31-row table on purpose
    files = {
        "train.txt": data.draw(split_text(fmt, big)),
        "test.txt": data.draw(split_text(fmt, big)),
    }
    if data.draw(st.booleans()):
        files["valid.txt"] = data.draw(split_text(fmt, big))
    for name, text in files.items():
        (folder / name).write_text(text)
    sizes = st.sampled_from([None, None, 5, 16, 40, 0, -1])
    spec = DatasetSpec(
        name="fuzz",
        path=str(folder),
        format=fmt,
        n_users=data.draw(sizes),
        n_items=data.draw(sizes),
        allow_sparse_ids=allow_sparse,
    )
    try:
        ds = load_dataset(spec)
    except DataFormatError as err:
        assert err.path in {str(folder / name) for name in files}, str(err)
        raw = (folder / Path(err.path).name).read_bytes()
        assert_located(err, Path(err.path), raw)
        return
    except ValueError as err:  # sizes that are not sizes
        assert "must be between 0 and" in str(err), str(err)
        return
    shape = (ds.n_users, ds.n_items)
    assert 0 < ds.n_users < ID_LIMIT and 0 < ds.n_items < ID_LIMIT
    for mat in (ds.train, ds.valid, ds.test):
        assert mat.shape == shape and mat.has_sorted_indices and (mat.data == 1.0).all()
    assert ds.train.multiply(ds.test).nnz == 0 and ds.train.multiply(ds.valid).nnz == 0
    assert ds.valid.multiply(ds.test).nnz == 0
    if spec.n_users is not None:
        assert ds.n_users == spec.n_users
    if fmt == "triples":
        assert (ds.n_users, ds.n_items) == (
            spec.n_users or len(ds.id_map.users),
            spec.n_items or len(ds.id_map.items),
        )
