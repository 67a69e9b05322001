"""Readers for the on-disk interaction formats, with errors that name file, line and expectation.

Two formats are supported:

* LightGCN adjacency lists (``train.txt``/``valid.txt``/``test.txt``): one line per user,
  ``user item1 item2 ...``, whitespace separated, 0-based integer ids.
* Interaction triples (``user item [rating] [timestamp]``), separated by whitespace, tabs or
  commas. Raw ids may be any token; they are remapped to contiguous ids and the mapping kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


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


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    # utf-8-sig drops a leading byte-order mark (spreadsheet exports), which would otherwise
    # become part of the first raw id in triples or an invalid first id in adjacency lists.
    text = path.read_text(encoding="utf-8-sig", errors="strict")
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DataFormatError(path, None, "file is empty; expected at least one interaction")
    return lines


def _parse_id(token: str, path: Path, lineno: int, what: str) -> int:
    try:
        value = int(token)
    except ValueError:
        raise DataFormatError(
            path, lineno, f"expected a non-negative integer {what} id, got {token!r}"
        ) from None
    if value < 0:
        raise DataFormatError(
            path, lineno, f"expected a non-negative integer {what} id, got {value}"
        )
    return value


def read_adjacency_list(path: str | Path) -> RawPairs:
    """Read a LightGCN adjacency-list file (``user item1 item2 ...`` per line).

    Blank lines are skipped; a line holding only a user id contributes no pair.

    Returns:
        ``RawPairs`` whose arrays have one entry per (user, item) token pair, in file order.

    Raises:
        DataFormatError: empty file, or a token that is not a non-negative integer.
    """
    path = Path(path)
    users: list[int] = []
    items: list[int] = []
    lines: list[int] = []
    for lineno, line in enumerate(_read_lines(path), start=1):
        tokens = line.split()
        if not tokens:
            continue
        # slow path only to build the error message; isascii: "²".isdigit() but int("²") fails
        if not all(t.isascii() and t.isdigit() for t in tokens):
            for pos, token in enumerate(tokens):
                _parse_id(token, path, lineno, "user" if pos == 0 else "item")
        user = int(tokens[0])
        row = [int(t) for t in tokens[1:]]
        users.extend([user] * len(row))
        items.extend(row)
        lines.extend([lineno] * len(row))
    if not items:
        raise DataFormatError(
            path, None, "no interactions found; expected lines 'user item1 item2 ...'"
        )
    return RawPairs(
        users=np.asarray(users, dtype=np.int64),
        items=np.asarray(items, dtype=np.int64),
        lines=np.asarray(lines, dtype=np.int64),
        path=str(path),
    )


_SEPARATOR = re.compile(r"[,\t ]+")


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
    """Read ``user item [rating] [timestamp]`` lines (whitespace, tab or comma separated).

    Raw ids are arbitrary tokens; each new one gets the next contiguous id in ``id_map``, which
    is updated in place so that several files (train, valid, test) share one mapping.

    Args:
        path: the file.
        id_map: mapping shared across the files of one dataset.
        header: skip the first non-blank line.

    Raises:
        DataFormatError: empty file, fewer than 2 or more than 4 columns, or a rating/timestamp
            that is not a number.
    """
    path = Path(path)
    users: list[int] = []
    items: list[int] = []
    lines: list[int] = []
    ratings: list[float] = []
    stamps: list[float] = []
    n_cols: int | None = None
    skipped_header = not header
    for lineno, line in enumerate(_read_lines(path), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not skipped_header:
            skipped_header = True
            continue
        tokens = _SEPARATOR.split(line)
        if not 2 <= len(tokens) <= 4:
            raise DataFormatError(
                path,
                lineno,
                f"expected 'user item [rating] [timestamp]', got {len(tokens)} columns",
            )
        if n_cols is None:
            n_cols = len(tokens)
        elif len(tokens) != n_cols:
            raise DataFormatError(
                path, lineno, f"expected {n_cols} columns like the first line, got {len(tokens)}"
            )
        for pos, name in ((2, "rating"), (3, "timestamp")):
            if len(tokens) > pos:
                try:
                    (ratings if pos == 2 else stamps).append(float(tokens[pos]))
                except ValueError:
                    raise DataFormatError(
                        path, lineno, f"expected a numeric {name}, got {tokens[pos]!r}"
                    ) from None
        users.append(id_map.users.setdefault(tokens[0], len(id_map.users)))
        items.append(id_map.items.setdefault(tokens[1], len(id_map.items)))
        lines.append(lineno)
    if not users:
        raise DataFormatError(path, None, "no interactions found; expected 'user item' lines")
    return RawPairs(
        users=np.asarray(users, dtype=np.int64),
        items=np.asarray(items, dtype=np.int64),
        lines=np.asarray(lines, dtype=np.int64),
        path=str(path),
        ratings=np.asarray(ratings, dtype=np.float32) if ratings else None,
        timestamps=np.asarray(stamps, dtype=np.float64) if stamps else None,
    )
