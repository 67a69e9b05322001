"""PyTorch Geometric interop: ``HeteroData`` ↔ :class:`Interactions`, and a safe file format.

* :func:`from_pyg` reads one ``('user', REL, 'item')`` edge type: its ``train_edge_index`` /
  ``val_edge_index`` / ``test_edge_index`` (what :func:`to_pyg` writes), or the three objects
  ``RandomLinkSplit`` returns, or a bare ``edge_index`` (all train).
* :func:`to_pyg` writes node counts, ``('user', 'interacts', 'item').edge_index`` (train), its
  reverse ``('item', 'rev_interacts', 'user').edge_index``, and the splits as
  ``train_edge_index``, ``val_edge_index``, ``test_edge_index`` (``[2, n]`` int64, rows user and
  item ids, sorted by user then item) on the ``('user', 'interacts', 'item')`` store.
* :func:`save_pyg` / :func:`read_pyg` / :func:`load_pyg`: files that never execute code when
  read (``dataset=pyg dataset.path=FILE.pt``).

**File format** (what :func:`save_pyg` writes): ``torch.save`` of a plain dict, readable with
``torch.load(path, weights_only=True)`` without any PyG class::

    {"format": "sslrec-pyg", "version": 1,
     "nodes": {node_type: {attr: value}},              # e.g. {"user": {"num_nodes": 3}}
     "edges": [{"type": [src, rel, dst], "attrs": {attr: value}}]}

with values tensors (plain ``torch.Tensor``, ``EdgeIndex`` saved as its plain tensor), ``int``,
``float``, ``bool``, ``str`` or ``None``. :func:`read_pyg` also reads a ``torch.save``\\ d
``HeteroData`` (or a tuple of them): it loads with ``weights_only=True``, allowing in that one
call only the PyG classes a pickled ``HeteroData`` names (:data:`PYG_SAFE_GLOBALS`); anything
else in the pickle (a ``__reduce__`` that runs a command) is refused with a
:class:`DataFormatError`. ``RandomLinkSplit``'s outputs pickle an attribute cache that
``weights_only`` cannot rebuild, so they are refused too: store them with
``save_pyg(to_pyg(from_pyg((train_data, val_data, test_data))), path)``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import HeteroData
from torch_geometric.data.feature_store import TensorAttr
from torch_geometric.data.graph_store import EdgeAttr
from torch_geometric.data.storage import BaseStorage, EdgeStorage, NodeStorage

from sslrec.data.interactions import Interactions, build_interactions
from sslrec.data.readers import DataFormatError, RawPairs
from sslrec.io import save_torch

EdgeType = tuple[str, str, str]
EDGE_TYPE: EdgeType = ("user", "interacts", "item")
REV_EDGE_TYPE: EdgeType = ("item", "rev_interacts", "user")
SPLIT_ATTRS = ("train_edge_index", "val_edge_index", "test_edge_index")
FILE_FORMAT, FILE_VERSION = "sslrec-pyg", 1
# exactly the classes a pickled HeteroData names (torch 2.13, PyG 2.8), all plain data holders.
# A HeteroData whose storages cached attribute types (after RandomLinkSplit, for one) also pickles
# a defaultdict, which weights_only loading cannot rebuild: save such data with save_pyg.
PYG_SAFE_GLOBALS = [HeteroData, BaseStorage, NodeStorage, EdgeStorage, TensorAttr, EdgeAttr]


def _describe(prefix: str, edge_type: EdgeType, attr: str) -> str:
    """``HeteroData['user','rates','item'].edge_index``: the ``path`` of errors about it."""
    return f"{prefix}[{','.join(repr(t) for t in edge_type)}].{attr}"


def find_edge_type(data: HeteroData, edge_type: str | Sequence[str] | None = None) -> EdgeType:
    """The ``('user', REL, 'item')`` edge type to read.

    Args:
        edge_type: ``None`` (the only ``user → item`` type), a relation name ``REL``, or a full
            ``(src, rel, dst)`` triple (then ``src`` nodes are the users, ``dst`` the items).

    Raises:
        ValueError: missing or ambiguous, listing the edge types found.
    """
    found = [tuple(et) for et in data.edge_types]
    listing = ", ".join(str(et) for et in found) or "none"
    if isinstance(edge_type, str):
        edge_type = ("user", edge_type, "item")
    if edge_type is not None:
        if tuple(edge_type) not in found:
            raise ValueError(f"no edge type {tuple(edge_type)} in the HeteroData; found {listing}")
        return tuple(edge_type)  # type: ignore[return-value]
    candidates = [et for et in found if et[0] == "user" and et[2] == "item"]
    if len(candidates) != 1:
        what = "no ('user', REL, 'item') edge type" if not candidates else "several"
        raise ValueError(
            f"{what} in the HeteroData; pass edge_type= to pick one. Edge types found: {listing}"
        )
    return candidates[0]  # type: ignore[return-value]


def _pairs(value: object, path: str, columns: np.ndarray | None = None) -> RawPairs:
    """A ``[2, E]`` integer tensor → ``RawPairs`` whose ``lines`` are column positions (0-based).

    Args:
        columns: keep only these columns (the positives of ``edge_label_index``).
    """
    if not isinstance(value, torch.Tensor) or value.dim() != 2 or value.size(0) != 2:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise DataFormatError(path, None, f"expected a [2, E] edge tensor, got {shape}")
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise DataFormatError(path, None, f"expected integer node ids, got dtype {value.dtype}")
    arr = value.detach().cpu().as_subclass(torch.Tensor).to(torch.int64).numpy()
    pos = np.arange(arr.shape[1], dtype=np.int64)
    if columns is not None:
        arr, pos = arr[:, columns], pos[columns]
    for row, what in ((0, "user"), (1, "item")):
        bad = np.flatnonzero(arr[row] < 0)
        if len(bad):
            raise DataFormatError(
                path, int(pos[bad[0]]), f"expected a non-negative {what} id, got {arr[row, bad[0]]}"
            )
    return RawPairs(users=arr[0].copy(), items=arr[1].copy(), lines=pos, path=path)


def _positives(store: EdgeStorage, path_prefix: str, edge_type: EdgeType) -> RawPairs:
    """The positive supervision edges a ``RandomLinkSplit`` output holds.

    ``edge_label_index`` columns whose ``edge_label > 0``: RandomLinkSplit labels its sampled
    negatives 0 and positives 1 (1..C when the graph had its own categorical labels). With
    ``split_labels=True`` it writes ``pos_edge_label_index`` instead, all positive.
    """
    if "pos_edge_label_index" in store:
        return _pairs(
            store.pos_edge_label_index, _describe(path_prefix, edge_type, "pos_edge_label_index")
        )
    path = _describe(path_prefix, edge_type, "edge_label_index")
    if "edge_label_index" not in store or "edge_label" not in store:
        raise DataFormatError(
            path, None, "expected edge_label_index and edge_label (RandomLinkSplit's output)"
        )
    label = torch.as_tensor(store.edge_label).detach().cpu().reshape(-1)
    if label.numel() != store.edge_label_index.size(-1):
        raise DataFormatError(
            path,
            None,
            f"expected one edge_label per column, got {label.numel()} labels for "
            f"{store.edge_label_index.size(-1)} columns",
        )
    return _pairs(store.edge_label_index, path, np.flatnonzero((label > 0).numpy()))


def _num_nodes(data: HeteroData, node_type: str) -> int | None:
    if node_type not in data.node_types:
        return None
    with warnings.catch_warnings():  # PyG warns when it has to guess; we fall back ourselves
        warnings.simplefilter("ignore")
        n = data[node_type].num_nodes
    return None if n is None else int(n)


def _empty(path: str) -> RawPairs:
    none = np.zeros(0, dtype=np.int64)
    return RawPairs(users=none, items=none.copy(), lines=none.copy(), path=path)


def _union(first: RawPairs, extra: RawPairs) -> RawPairs:
    """``first`` plus the pairs of ``extra`` it lacks; the extra positions are offset by
    ``len(first)`` (documented in :func:`from_pyg`)."""
    n_items = int(max(first.items.max(initial=0), extra.items.max(initial=0))) + 1
    new = ~np.isin(extra.users * n_items + extra.items, first.users * n_items + first.items)
    if not new.any():
        return first
    return RawPairs(
        users=np.concatenate([first.users, extra.users[new]]),
        items=np.concatenate([first.items, extra.items[new]]),
        lines=np.concatenate([first.lines, extra.lines[new] + len(first.users)]),
        path=f"{first.path} + {extra.path.rsplit('.', 1)[-1]}",
    )


def from_pyg(
    data: HeteroData | Sequence[HeteroData],
    edge_type: str | Sequence[str] | None = None,
    name: str = "pyg",
) -> Interactions:
    """Build :class:`Interactions` from PyG data, through ``build_interactions`` (all its checks).

    ``data`` is one of:

    * a ``HeteroData`` whose edge store has ``train_edge_index`` (and optionally
      ``val_edge_index``, ``test_edge_index``): those are the splits (what :func:`to_pyg` writes);
    * a ``HeteroData`` with only an ``edge_index``: everything is train, valid and test are empty;
    * the tuple ``(train_data, val_data, test_data)`` that ``RandomLinkSplit(edge_types=...)``
      returns: train is ``train_data``'s ``edge_index`` plus the positives of its
      ``edge_label_index`` (they differ with ``disjoint_train_ratio > 0``), valid and test are the
      positives (``edge_label > 0``; sampled negatives are 0) of ``val_data``'s and
      ``test_data``'s ``edge_label_index``. A single one of those objects is refused: which
      split its labels are cannot be told.

    Node counts come from ``data['user'].num_nodes`` / ``data['item'].num_nodes`` (of
    ``train_data`` for a tuple), else ``max id + 1``. Errors are ``DataFormatError``\\ s whose
    "file" names the tensor (``HeteroData['user','rates','item'].val_edge_index``) and whose
    "line" is the 0-based column (for a train union, positions past ``edge_index``'s end are
    ``edge_label_index`` columns offset by its length).

    Raises:
        ValueError: no, or no unique, ``('user', REL, 'item')`` edge type; a lone RandomLinkSplit
            output.
        DataFormatError: a malformed tensor, a negative id or one beyond the node count, a valid
            or test pair that is also a train pair.
    """
    if isinstance(data, HeteroData):
        et = find_edge_type(data, edge_type)
        store, first = data[et], data
        prefix = "HeteroData"
        if "train_edge_index" in store:
            train = _pairs(store.train_edge_index, _describe(prefix, et, "train_edge_index"))
            valid, test = (
                _pairs(store[attr], _describe(prefix, et, attr))
                if attr in store
                else _empty(_describe(prefix, et, attr))
                for attr in SPLIT_ATTRS[1:]
            )
        elif "edge_label_index" in store or "pos_edge_label_index" in store:
            raise ValueError(
                f"{_describe(prefix, et, 'edge_label_index')}: one RandomLinkSplit output holds "
                "one split's labels; pass all three: from_pyg((train_data, val_data, test_data))"
            )
        else:
            train = _pairs(store.get("edge_index"), _describe(prefix, et, "edge_index"))
            valid = _empty(_describe(prefix, et, "val_edge_index"))
            test = _empty(_describe(prefix, et, "test_edge_index"))
    else:
        if len(data) != 3 or not all(isinstance(d, HeteroData) for d in data):
            raise ValueError(
                "from_pyg takes a HeteroData or RandomLinkSplit's (train_data, val_data, "
                f"test_data); got {type(data).__name__} of {len(data)}"
            )
        first = data[0]
        et = find_edge_type(first, edge_type)
        train_store = first[et]
        train = _pairs(train_store.get("edge_index"), _describe("train_data", et, "edge_index"))
        if "edge_label_index" in train_store or "pos_edge_label_index" in train_store:
            train = _union(train, _positives(train_store, "train_data", et))
        valid = _positives(data[1][et], "val_data", et)
        test = _positives(data[2][et], "test_data", et)
    splits = (train, valid, test)
    n_users, n_items = _num_nodes(first, et[0]), _num_nodes(first, et[2])
    if n_users is None:
        n_users = int(max(p.users.max(initial=-1) for p in splits)) + 1
    if n_items is None:
        n_items = int(max(p.items.max(initial=-1) for p in splits)) + 1
    return build_interactions(
        name, train, test, valid if len(valid.users) else None, n_users=n_users, n_items=n_items
    )


def _edge_index(matrix) -> torch.Tensor:
    """``[2, nnz]`` int64 (user row, item row) of a CSR matrix, sorted by user then item."""
    coo = matrix.tocoo()
    order = np.lexsort((coo.col, coo.row))
    return torch.from_numpy(np.stack([coo.row[order], coo.col[order]]).astype(np.int64))


def to_pyg(dataset: Interactions) -> HeteroData:
    """A ``HeteroData`` of ``dataset`` (the layout is in the module docstring).

    ``edge_index`` is the train graph a PyG model propagates over; ``from_pyg(to_pyg(d))`` gives
    back ``d``'s three splits and sizes.
    """
    h = HeteroData()
    h["user"].num_nodes = dataset.n_users
    h["item"].num_nodes = dataset.n_items
    store = h[EDGE_TYPE]
    train = _edge_index(dataset.train)
    store.edge_index = train
    store.train_edge_index = train.clone()
    store.val_edge_index = _edge_index(dataset.valid)
    store.test_edge_index = _edge_index(dataset.test)
    h[REV_EDGE_TYPE].edge_index = train.flip(0)
    return h


# -- files -------------------------------------------------------------------------------------
_PLAIN = (int, float, bool, str, type(None))


def _plain_attrs(store: BaseStorage, where: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in store.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.detach().cpu().as_subclass(torch.Tensor).clone()
        elif isinstance(value, _PLAIN):
            out[key] = value
        else:
            raise TypeError(
                f"{where}.{key}: save_pyg stores tensors, int, float, bool, str and None only, "
                f"got {type(value).__name__}"
            )
    return out


def save_pyg(data: HeteroData | Sequence[HeteroData], path: str | Path) -> None:
    """Write ``data`` in the plain-dict format of the module docstring (no pickled classes),
    atomically. A ``RandomLinkSplit`` triple ``(train, val, test)`` is first turned into one
    ``HeteroData`` with ``train/val/test_edge_index`` (:func:`to_pyg` of :func:`from_pyg`)."""
    if not isinstance(data, HeteroData):
        data = to_pyg(from_pyg(data))
    payload = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "nodes": {nt: _plain_attrs(data[nt], f"[{nt!r}]") for nt in data.node_types},
        "edges": [
            {"type": list(et), "attrs": _plain_attrs(data[et], str(list(et)))}
            for et in data.edge_types
        ],
    }
    save_torch(payload, path)


def _from_payload(payload: dict, path: Path) -> HeteroData:
    if payload.get("version") != FILE_VERSION:
        raise DataFormatError(
            path,
            None,
            f"expected {FILE_FORMAT} version {FILE_VERSION}, got {payload.get('version')!r}",
        )
    h = HeteroData()
    try:
        for node_type, attrs in payload["nodes"].items():
            for key, value in attrs.items():
                h[node_type][key] = value
        for edge in payload["edges"]:
            for key, value in edge["attrs"].items():
                h[tuple(edge["type"])][key] = value
    except (KeyError, TypeError, AttributeError) as err:
        raise DataFormatError(
            path,
            None,
            f"malformed {FILE_FORMAT} file ({err!r}); expected the layout of "
            "sslrec.data.pyg.save_pyg",
        ) from None
    return h


def read_pyg(path: str | Path) -> HeteroData | tuple[HeteroData, ...]:
    """Read a :func:`save_pyg` file or a ``torch.save``\\ d ``HeteroData`` (or tuple of them)
    without executing pickled code.

    Raises:
        DataFormatError: the pickle names anything beyond tensors, plain containers and
            :data:`PYG_SAFE_GLOBALS` (the file is refused, nothing in it runs), or holds
            something other than the formats above.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        # scoped allowlist: only this load may rebuild these PyG classes
        with torch.serialization.safe_globals(PYG_SAFE_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # refused globals, or not a torch file (torch raises many kinds)
        # torch's message is long and suggests allowlisting; keep only what was refused
        refused = re.search(r"GLOBAL ([\w.]+)", str(err))
        detail = [
            p.strip()
            for p in str(err).split("\n")
            if p.strip() and not p.startswith(("Weights only", "Please file", "Check the doc"))
        ]
        reason = (
            f"it names {refused.group(1)}"
            if refused
            else (detail[-1] if detail else type(err).__name__)
        )
        raise DataFormatError(
            path,
            None,
            "refused: expected a file written by sslrec.data.pyg.save_pyg (or torch.save of a "
            "plain HeteroData) that torch.load(weights_only=True) reads without executing "
            f"code ({reason})",
        ) from None
    if isinstance(obj, dict) and obj.get("format") == FILE_FORMAT:
        return _from_payload(obj, path)
    if isinstance(obj, HeteroData):
        return obj
    if isinstance(obj, (tuple, list)) and obj and all(isinstance(o, HeteroData) for o in obj):
        return tuple(obj)
    raise DataFormatError(
        path, None, f"expected a {FILE_FORMAT} dict or a HeteroData, got {type(obj).__name__}"
    )


def load_pyg(
    path: str | Path,
    name: str = "pyg",
    n_users: int | None = None,
    n_items: int | None = None,
    edge_type: str | Sequence[str] | None = None,
) -> Interactions:
    """:func:`read_pyg` then :func:`from_pyg` (``format: pyg`` of ``load_dataset``).

    ``n_users``/``n_items``, when given, must equal the file's node counts.
    """
    data = from_pyg(read_pyg(path), edge_type=edge_type, name=name)
    for given, actual, what in ((n_users, data.n_users, "users"), (n_items, data.n_items, "items")):
        if given is not None and given != actual:
            raise DataFormatError(
                path, None, f"expected {given} {what} (dataset config), the file has {actual}"
            )
    return data
