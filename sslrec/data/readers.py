"""Readers for the on-disk interaction formats, with errors that name file, line and expectation.

Two formats are supported:

* LightGCN adjacency lists (``train.txt``/``valid.txt``/``test.txt``): one line per user,
  ``user item1 item2 ...``, separated by spaces or tabs, 0-based integer ids.
* Interaction triples (``user item [rating] [timestamp]``), separated by spaces, tabs or one
  comma. Raw ids may be any token; they are remapped to contiguous ids and the mapping kept.

Common rules (both formats):

* Files are UTF-8 text (a leading byte-order mark is dropped). Undecodable bytes, NUL bytes and
  compressed/NumPy files are reported as such, with the line and byte offset.
* Lines end with ``\\n``, ``\\r\\n`` or ``\\r`` (line numbers count these, as editors do). Lines
  holding only spaces and tabs are blank and skipped. Other characters (form feeds, non-breaking
  spaces, ...) are not separators: they are part of a token.
* Every problem raises :class:`DataFormatError` naming ``FILE:LINE`` (``FILE`` alone for
  whole-file problems such as an empty file); a missing file raises ``FileNotFoundError``.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Integer ids must be below this (2**31 - 1), so that sizes fit 32-bit sparse indices and
#: ``user * n_items + item`` pair keys fit int64. A table of that many rows is far beyond memory.
ID_LIMIT = 2**31 - 1


class DataFormatError(ValueError):
    """Bad input in a data file; the message names the file, the line and what was expected."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


@dataclass
class RawPairs:
    """User-item pairs read from one file, in file order.

    Attributes:
        users: ``[n]`` int64 user ids.
        items: ``[n]`` int64 item ids.
        lines: ``[n]`` int64 1-based line number each pair came from (for error messages).
        path: the file the pairs were read from.
    """

    users: np.ndarray
    items: np.ndarray
    lines: np.ndarray
    path: str
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None


# -- reading and decoding --------------------------------------------------------------------
_BOM = b"\xef\xbb\xbf"
# Signatures of files that are commonly renamed to train.txt by mistake.
_MAGIC = (
    (b"\x1f\x8b", "a gzip-compressed file", "decompress it first"),
    (b"PK\x03\x04", "a zip archive (or .npz)", "extract it first"),
    (b"\x93NUMPY", "a NumPy .npy array", "write it out as text"),
    (b"\xfd7zXZ\x00", "an xz-compressed file", "decompress it first"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file", "decompress it first"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-zip archive", "extract it first"),
)


def _show(token: str) -> str:
    """``repr`` of a token for a message, shortened when it is long."""
    if len(token) <= 40:
        return repr(token)
    return f"{token[:40]!r}... ({len(token):,} characters)"


def _line_of(data: bytes, pos: int) -> int:
    """1-based line holding byte ``pos`` (``\\n``, ``\\r\\n`` and ``\\r`` end lines)."""
    head = data[:pos]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1


def _read_bytes(path: Path) -> tuple[bytes, int]:
    """The file's bytes without a leading byte-order mark, and how many bytes were dropped."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data = path.read_bytes()
    # spreadsheet exports start with a byte-order mark, which would otherwise become part of
    # the first raw id in triples or an invalid first id in adjacency lists
    if data.startswith(_BOM):
        return data[len(_BOM) :], len(_BOM)
    return data, 0


def _decode(path: Path, data: bytes, base: int) -> str:
    """UTF-8 text of ``data``; binary or undecodable content is a ``DataFormatError``.

    ``base`` is the number of bytes dropped before ``data`` (a byte-order mark), so that the
    reported byte offsets are offsets in the file.
    """
    for magic, what, fix in _MAGIC:
        if data.startswith(magic):
            raise DataFormatError(
                path, 1, f"this looks like {what}; expected a plain-text (UTF-8) file: {fix}"
            )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataFormatError(
            path,
            _line_of(data, nul),
            f"NUL byte at byte offset {nul + base}: this looks like a binary file (compressed, "
            "a NumPy array, UTF-16 text, ...); expected a plain-text (UTF-8) file",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = _line_of(data, err.start)
        start = max(data.rfind(b"\n", 0, err.start), data.rfind(b"\r", 0, err.start)) + 1
        raise DataFormatError(
            path,
            line,
            f"byte 0x{data[err.start]:02x} at byte offset {err.start + base} (column "
            f"{err.start - start + 1} of the line) is not valid UTF-8; expected a UTF-8 text "
            "file (convert it, e.g. `iconv -f latin1 -t utf-8`)",
        ) from None


def _split_lines(text: str) -> list[str]:
    """Lines of ``text``, ended by ``\\n``, ``\\r\\n`` or ``\\r`` (universal newlines)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def _empty(path: Path) -> DataFormatError:
    return DataFormatError(path, None, "file is empty; expected at least one interaction")


# -- adjacency lists -------------------------------------------------------------------------
_ADJACENCY_BYTES = b"0123456789 \t\r\n"
_BLANKS = re.compile(r"[ \t]+")
_DIGITS = re.compile(r"[0-9]+")
_NEGATIVE = re.compile(r"-[0-9]+")


def _parse_id(token: str, path: Path, lineno: int, what: str) -> int:
    """A non-negative integer id below :data:`ID_LIMIT` written in ASCII digits only.

    ``+5``, ``5.0``, ``1e3``, ``1_000`` and non-ASCII digits (which ``int`` would accept) are
    rejected: an id is written as a plain decimal integer.
    """
    expected = f"expected a non-negative integer {what} id"
    if _DIGITS.fullmatch(token):
        # more than 19 digits cannot be below ID_LIMIT unless zero-padded: avoid int() on
        # arbitrarily long strings (Python limits int() to 4300 digits)
        digits = token.lstrip("0") or "0"
        if len(digits) <= 19 and int(digits) < ID_LIMIT:
            return int(digits)
        raise DataFormatError(
            path, lineno, f"{expected} below {ID_LIMIT:,} (2**31 - 1), got {_show(token)}"
        )
    if _NEGATIVE.fullmatch(token):
        shown = token if len(token) <= 40 else _show(token)
        raise DataFormatError(path, lineno, f"{expected}, got {shown}")
    raise DataFormatError(path, lineno, f"{expected}, got {_show(token)}")


def _parse_adjacency_lines(path: Path, lines: list[str]) -> RawPairs:
    """Reference parser: line by line, each token checked (used when the fast path can't)."""
    users: list[int] = []
    items: list[int] = []
    line_numbers: list[int] = []
    any_token = False
    for lineno, line in enumerate(lines, start=1):
        line = line.strip(" \t")
        if not line:
            continue
        any_token = True
        tokens = _BLANKS.split(line)
        user = _parse_id(tokens[0], path, lineno, "user")
        row = [_parse_id(t, path, lineno, "item") for t in tokens[1:]]
        users.extend([user] * len(row))
        items.extend(row)
        line_numbers.extend([lineno] * len(row))
    if not any_token:
        raise _empty(path)
    return RawPairs(
        users=np.asarray(users, dtype=np.int64),
        items=np.asarray(items, dtype=np.int64),
        lines=np.asarray(line_numbers, dtype=np.int64),
        path=str(path),
    )


def _integers(text: str) -> np.ndarray | None:
    """The whitespace-separated decimal integers of ``text`` as int64 (``None``: can't parse).

    ``np.fromstring`` in text mode is ~10x faster than converting ``text.split()``; values
    beyond int64 saturate (caught by the caller's ``ID_LIMIT`` check). Should a NumPy release
    deprecate or drop it, the slower conversion is used.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return np.fromstring(text, dtype=np.int64, sep=" ")
    except (AttributeError, TypeError, ValueError, DeprecationWarning):
        pass
    try:
        return np.array(text.split(), dtype=np.int64)
    except (OverflowError, ValueError):
        return None


def _parse_adjacency_fast(path: Path, text: str) -> RawPairs | None:
    """Vectorised parse of text made only of ASCII digits, spaces, tabs and ``\\n``.

    Returns ``None`` when the text needs the reference parser (an id too large, or anything
    unexpected), which then raises the error with its line.
    """
    lines = text.split("\n")
    counts = np.fromiter(map(len, map(str.split, lines)), dtype=np.int64, count=len(lines))
    total = int(counts.sum())
    if total == 0:
        raise _empty(path)
    values = _integers(text)
    if values is None or len(values) != total or int(values.max()) >= ID_LIMIT:
        return None
    nonblank = np.flatnonzero(counts)
    per_line = counts[nonblank]
    first = np.cumsum(per_line) - per_line  # index of each line's user id in ``values``
    n_items = per_line - 1
    is_item = np.ones(total, dtype=bool)
    is_item[first] = False
    return RawPairs(
        users=np.repeat(values[first], n_items),
        items=values[is_item],
        lines=np.repeat(nonblank.astype(np.int64) + 1, n_items),
        path=str(path),
    )


def read_adjacency_list(path: str | Path) -> RawPairs:
    """Read a LightGCN adjacency-list file (``user item1 item2 ...`` per line).

    Ids are plain non-negative decimal integers (ASCII digits only, no sign, no exponent)
    below :data:`ID_LIMIT`, separated by spaces or tabs. Blank lines are skipped; a line
    holding only a user id contributes no pair.

    Returns:
        ``RawPairs`` whose arrays have one entry per (user, item) token pair, in file order.

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: binary or non-UTF-8 content, an empty file, no pair at all, or a
            token that is not such an id (the first one in file order).
    """
    path = Path(path)
    data, base = _read_bytes(path)
    pairs = None
    if not data.translate(None, _ADJACENCY_BYTES):  # digits and blanks only: the fast path
        text = data.decode("ascii")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        pairs = _parse_adjacency_fast(path, text)
    if pairs is None:
        pairs = _parse_adjacency_lines(path, _split_lines(_decode(path, data, base)))
    if not len(pairs.items):
        raise DataFormatError(
            path, None, "no interactions found; expected lines 'user item1 item2 ...'"
        )
    return pairs


# -- triples ---------------------------------------------------------------------------------
# one comma (with optional blanks around it), or a run of blanks
_SEPARATOR = re.compile(r"[ \t]*,[ \t]*|[ \t]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# (column, name, largest magnitude): ratings are stored as float32, timestamps as float64
_NUMERIC_COLUMNS = (
    (2, "rating", float(np.finfo(np.float32).max)),
    (3, "timestamp", float(np.finfo(np.float64).max)),
)
# Column names of common exports (lowercase, without '_', '-', '.', ' '); see read_triples.
_COLUMN_NAMES = frozenset(
    """
    user users userid uid username customer customerid reviewer reviewerid member memberid
    visitor visitorid client clientid person personid account accountid session sessionid
    item items itemid iid movie movieid product productid asin business businessid track
    trackid song songid artist artistid book bookid isbn poi poiid location locationid venue
    venueid video videoid article articleid news newsid recipe recipeid game gameid page pageid
    id source target src dst rating ratings score stars timestamp time date datetime ts count
    weight label click clicks plays playcount value
    """.split()
)


def _is_column_name(token: str) -> bool:
    return re.sub(r"[\s_\-.]", "", token).lower() in _COLUMN_NAMES


@dataclass
class IdMap:
    """Raw-id → contiguous-id mapping for users and items (kept for export)."""

    users: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)

    def raw_users(self) -> list[str]:
        """Raw user ids in contiguous-id order."""
        return list(self.users)

    def raw_items(self) -> list[str]:
        """Raw item ids in contiguous-id order."""
        return list(self.items)


def read_triples(path: str | Path, id_map: IdMap, header: bool = False) -> RawPairs:
    """Read ``user item [rating] [timestamp]`` lines (separated by blanks or one comma).

    Raw ids are arbitrary tokens; each new one gets the next contiguous id in ``id_map``, which
    is updated in place so that several files (train, valid, test) share one mapping. Lines
    starting with ``#`` are comments. Columns are separated by one comma (blanks around it are
    ignored) or by a run of spaces/tabs; an empty column (``u,,i``, a trailing comma) is an
    error. Ratings and timestamps are finite decimal numbers (``4``, ``-1.5``, ``1e3``).

    Header lines: with ``header=True`` the first non-blank, non-comment line is skipped. With
    ``header=False`` that line is reported as a header (error suggesting ``dataset.header=true``)
    when its user and item columns are both common column names (``user``, ``userId``,
    ``user_id``, ``item``, ``movieId``, ``asin``, ``rating``, ... compared case-insensitively,
    ignoring ``_``, ``-`` and ``.``; raw ids like ``u123`` or ``alice`` are never names), and a
    non-numeric rating or timestamp on that line mentions ``dataset.header=true`` too.

    Args:
        path: the file.
        id_map: mapping shared across the files of one dataset.
        header: skip the first non-blank, non-comment line.

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: binary or non-UTF-8 content, an empty file, an unexpected header line,
            an empty column, fewer than 2 or more than 4 columns (or another count than the
            first line), or a rating/timestamp that is not a finite number.
    """
    path = Path(path)
    data, base = _read_bytes(path)
    lines = _split_lines(_decode(path, data, base))
    users: list[int] = []
    items: list[int] = []
    line_numbers: list[int] = []
    ratings: list[float] = []
    stamps: list[float] = []
    n_cols: int | None = None
    n_cols_line = 0
    first_data_line = True
    any_content = False
    for lineno, line in enumerate(lines, start=1):
        line = line.strip(" \t")
        if not line:
            continue
        any_content = True
        if line.startswith("#"):
            continue
        first, first_data_line = first_data_line, False
        if first and header:
            continue
        tokens = _SEPARATOR.split(line)
        if "" in tokens:
            raise DataFormatError(
                path,
                lineno,
                f"column {tokens.index('') + 1} is empty; expected 'user item [rating] "
                "[timestamp]' separated by one comma or by spaces/tabs",
            )
        if first and len(tokens) > 1 and all(map(_is_column_name, tokens[:2])):
            names = ", ".join(_show(t) for t in tokens)
            raise DataFormatError(
                path,
                lineno,
                f"this looks like a header line ({names}); expected 'user item [rating] "
                "[timestamp]' data: set dataset.header=true to skip it",
            )
        if not 2 <= len(tokens) <= 4:
            raise DataFormatError(
                path,
                lineno,
                f"expected 'user item [rating] [timestamp]', got {len(tokens)} columns",
            )
        if n_cols is None:
            n_cols, n_cols_line = len(tokens), lineno
        elif len(tokens) != n_cols:
            raise DataFormatError(
                path,
                lineno,
                f"expected {n_cols} columns like the first line (line {n_cols_line}), "
                f"got {len(tokens)}",
            )
        for pos, name, limit in _NUMERIC_COLUMNS:
            if len(tokens) > pos:
                token = tokens[pos]
                value = float(token) if _NUMBER.fullmatch(token) else math.nan
                if not abs(value) <= limit:  # also catches nan
                    hint = "; if this line is a header, set dataset.header=true" if first else ""
                    raise DataFormatError(
                        path, lineno, f"expected a numeric {name}, got {_show(token)}{hint}"
                    )
                (ratings if pos == 2 else stamps).append(value)
        users.append(id_map.users.setdefault(tokens[0], len(id_map.users)))
        items.append(id_map.items.setdefault(tokens[1], len(id_map.items)))
        line_numbers.append(lineno)
    if not any_content:
        raise _empty(path)
    if not users:
        raise DataFormatError(path, None, "no interactions found; expected 'user item' lines")
    return RawPairs(
        users=np.asarray(users, dtype=np.int64),
        items=np.asarray(items, dtype=np.int64),
        lines=np.asarray(line_numbers, dtype=np.int64),
        path=str(path),
        ratings=np.asarray(ratings, dtype=np.float32) if ratings else None,
        timestamps=np.asarray(stamps, dtype=np.float64) if stamps else None,
    )
