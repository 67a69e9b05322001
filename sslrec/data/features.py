"""Optional side features of users and items: ``user_features.txt`` and ``item_features.txt``.

A dataset folder may hold either file or both (names set by ``dataset.user_features_file`` and
``dataset.item_features_file``; ``null`` turns one off). Models that use side features (FM, the
joint ranking + CTR model) list ``"features"`` in their ``graph_inputs``; every other model
ignores them.

Format, one line per user (item)::

    item feature1 feature2 ...

* The first token is the id **as in the interaction files**: a plain non-negative integer below
  the dataset's size for ``dataset.format=adjacency``; the raw id token for
  ``dataset.format=triples`` (mapped through the dataset's :class:`~sslrec.data.IdMap`). An id
  that is not one of the dataset's users (items) is an error: remove the lines of users (items)
  without interactions.
* The other tokens are feature names, arbitrary strings without blanks, **binary multi-hot**
  (present = 1). A colon is an ordinary character: ``genre:rock`` and ``year:1999`` are two
  categorical features. Numeric features are bucketed into tokens (``age:20-29``), the one-hot
  encoding FM papers use; there is no ``name:value`` syntax, so no token is ever misread as a
  number. User and item features are separate vocabularies (a token may occur in both).
* Tokens are separated by spaces or tabs; blank lines and lines starting with ``#`` are skipped;
  a line with an id alone gives that id no features, as does having no line at all.
* The files follow the interaction readers' common rules (UTF-8, any line ending, binary or
  undecodable content reported with its line) and every problem raises
  :class:`~sslrec.data.DataFormatError` naming ``FILE:LINE``: a bad or unknown id, an id on two
  lines, a feature repeated on one line, an empty file.

Result: a :class:`SideFeatures` on ``Interactions.features`` holding, per side, a binary
``[rows, F]`` CSR matrix and its vocabulary (column ``j`` is token ``vocabulary[j]``, in order of
first appearance).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from sslrec.data.readers import (
    DataFormatError,
    _decode,
    _parse_id,
    _read_bytes,
    _show,
    _split_lines,
)

log = logging.getLogger(__name__)

_BLANKS = re.compile(r"[ \t]+")


@dataclass
class FeatureMatrix:
    """One side's features.

    Attributes:
        matrix: ``[rows, F]`` binary float32 CSR (sorted column indices).
        vocabulary: ``F`` feature tokens; column ``j`` is ``vocabulary[j]``.
        path: the file they were read from.
    """

    matrix: sp.csr_matrix
    vocabulary: list[str]
    path: str

    @property
    def n_features(self) -> int:
        return len(self.vocabulary)


@dataclass
class SideFeatures:
    """Side features of a dataset (``Interactions.features``); either side may be ``None``."""

    user: FeatureMatrix | None = None
    item: FeatureMatrix | None = None


def read_features(
    path: str | Path, what: str, n_rows: int, raw_ids: dict[str, int] | None = None
) -> FeatureMatrix:
    """Read one features file (format in the module docstring).

    Args:
        path: the file.
        what: ``user`` or ``item`` (for messages).
        n_rows: the dataset's number of users (items); integer ids must be below it.
        raw_ids: the dataset's raw-id → id mapping (``IdMap.users``/``IdMap.items``) for
            ``format: triples``; ``None`` reads integer ids.

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: naming file and line, as listed in the module docstring.
    """
    path = Path(path)
    data, base = _read_bytes(path)
    lines = _split_lines(_decode(path, data, base))
    vocab: dict[str, int] = {}
    seen: dict[int, int] = {}  # row -> line it was given on
    rows: list[int] = []
    cols: list[int] = []
    any_content = False
    for lineno, line in enumerate(lines, start=1):
        line = line.strip(" \t")
        if not line:
            continue
        any_content = True
        if line.startswith("#"):
            continue
        tokens = _BLANKS.split(line)
        row = _row(tokens[0], path, lineno, what, n_rows, raw_ids)
        if row in seen:
            raise DataFormatError(
                path,
                lineno,
                f"{what} {_show(tokens[0])} already has its features on line {seen[row]}; "
                f"expected one line per {what}",
            )
        seen[row] = lineno
        on_line: set[str] = set()
        for token in tokens[1:]:
            if token in on_line:
                raise DataFormatError(
                    path,
                    lineno,
                    f"feature {_show(token)} is listed twice for {what} {_show(tokens[0])}; "
                    "expected each feature at most once per line (features are binary)",
                )
            on_line.add(token)
            rows.append(row)
            cols.append(vocab.setdefault(token, len(vocab)))
    if not any_content:
        raise DataFormatError(
            path, None, f"file is empty; expected lines '{what} feature1 feature2 ...'"
        )
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (np.asarray(rows), np.asarray(cols))),
        shape=(n_rows, len(vocab)),
        dtype=np.float32,
    )
    matrix.sort_indices()
    return FeatureMatrix(matrix=matrix, vocabulary=list(vocab), path=str(path))


def _row(
    token: str,
    path: Path,
    lineno: int,
    what: str,
    n_rows: int,
    raw_ids: dict[str, int] | None,
) -> int:
    """The row of the id ``token``, or a ``DataFormatError`` saying what was expected."""
    if raw_ids is not None:
        if token not in raw_ids:
            raise DataFormatError(
                path,
                lineno,
                f"{what} id {_show(token)} does not occur in the interaction files; expected "
                f"the raw id of one of the dataset's {len(raw_ids):,} {what}s (remove the lines "
                f"of {what}s without interactions)",
            )
        return raw_ids[token]
    row = _parse_id(token, path, lineno, what)
    if row >= n_rows:
        raise DataFormatError(
            path,
            lineno,
            f"{what} id {row} out of range; expected an id below {n_rows} (the dataset has "
            f"{n_rows} {what}s; ids as in the interaction files)",
        )
    return row


def load_side_features(
    folder: Path,
    user_file: str | None,
    item_file: str | None,
    n_users: int,
    n_items: int,
    id_map: object | None = None,
) -> SideFeatures | None:
    """The side features present in ``folder`` (``None`` when neither file is there).

    ``id_map`` is the dataset's :class:`~sslrec.data.IdMap` for ``format: triples`` (raw ids),
    ``None`` for integer ids.
    """
    out = SideFeatures()
    for what, name, n_rows in (("user", user_file, n_users), ("item", item_file, n_items)):
        if not name or not (folder / name).is_file():
            continue
        raw = None if id_map is None else getattr(id_map, what + "s")
        feats = read_features(folder / name, what, n_rows, raw)
        log.info(
            "%s features: %d tokens, %d of %d %ss with at least one (from %s)",
            what,
            feats.n_features,
            int((feats.matrix.getnnz(axis=1) > 0).sum()),
            n_rows,
            what,
            feats.path,
        )
        setattr(out, what, feats)
    return None if out.user is None and out.item is None else out
