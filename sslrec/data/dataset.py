"""Locate and load a dataset folder (``train.txt``, ``test.txt``, optional ``valid.txt``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sslrec.data.features import load_side_features
from sslrec.data.interactions import Interactions, build_interactions
from sslrec.data.readers import IdMap, read_adjacency_list, read_triples

log = logging.getLogger(__name__)

BUNDLED = Path(__file__).parent / "bundled"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class DatasetSpec:
    """Where a dataset lives and how to read it (the ``dataset`` config group).

    Attributes:
        name: a label for logs and outputs.
        path: folder holding the split files; ``None`` means the copy bundled in the package.
            A relative path is looked up from the working directory, then from the repository.
        format: ``adjacency`` (``user item1 item2 ...``) or ``triples`` (``user item [rating]
            [timestamp]``, whitespace/tab/comma separated, raw ids remapped), or ``pyg``: a
            ``HeteroData`` file (``sslrec.data.pyg.save_pyg``, or ``torch.save``), read without
            executing pickled code; ``path`` is the file itself when ``train_file`` is ``""``
            (``conf/dataset/pyg.yaml``), else ``train_file`` names it inside the folder.
        n_users, n_items: known sizes; ids at or above them are errors. ``None`` infers
            ``max id + 1`` over all files.
        header: triples only, skip a header line.
        valid_fraction: under the validation protocol, the share of each user's train items
            moved to a validation split when the dataset brings none (``split_validation``).
        split_seed: seeds that split; fixed across ``seed`` s so that seeds share one split.
        allow_sparse_ids: with inferred sizes, accept an id space far sparser than the ids
            present (``max id + 1 > max(2 x distinct ids, distinct ids + 10,000)``, which is
            otherwise an error naming the largest id's line; see
            ``sslrec.data.interactions.check_id_space``): every id up to the largest gets a row.
        user_features_file, item_features_file: optional side-feature files in the folder
            (``user feature1 feature2 ...``, ids as in the interaction files; format in
            ``sslrec.data.features``), read into ``Interactions.features`` when present (not for
            ``format: pyg``); ``null`` ignores the file.
    """

    name: str
    path: str | None = None
    format: str = "adjacency"
    n_users: int | None = None
    n_items: int | None = None
    header: bool = False
    valid_fraction: float = 0.1
    split_seed: int = 0
    allow_sparse_ids: bool = False
    train_file: str = "train.txt"
    valid_file: str = "valid.txt"
    test_file: str = "test.txt"
    user_features_file: str | None = "user_features.txt"
    item_features_file: str | None = "item_features.txt"


#: the benchmark datasets' folder (gowalla, yelp2018) unless ``SSLREC_DATA_ROOT`` names another:
#: ``conf/config.yaml``'s ``data_root`` has the same default
DEFAULT_DATA_ROOT = "../shared/data"


def benchmark_data_root() -> str:
    """``$SSLREC_DATA_ROOT``, else :data:`DEFAULT_DATA_ROOT`: where the experiments' scripts
    look for gowalla and yelp2018 (as a run's ``data_root``)."""
    return os.environ.get("SSLREC_DATA_ROOT", DEFAULT_DATA_ROOT)


def resolve_folder(spec: DatasetSpec) -> Path:
    """The dataset folder, or a ``FileNotFoundError`` that names every place looked at."""
    if spec.path is None:
        folder = BUNDLED / spec.name
        if not folder.is_dir():
            raise FileNotFoundError(
                f"no bundled dataset named {spec.name!r} in {BUNDLED}; set dataset.path=DIR"
            )
        return folder
    path = Path(spec.path).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, REPO_ROOT / path]
    for candidate in candidates:
        if (candidate / spec.train_file).is_file():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"dataset {spec.name!r}: no {spec.train_file} in {tried}. Set dataset.path=DIR, or "
        "data_root=DIR / the SSLREC_DATA_ROOT environment variable for the benchmark datasets."
    )


def load_dataset(spec: DatasetSpec) -> Interactions:
    """Read, check and assemble the splits of ``spec``; prints the dataset statistics."""
    folder = resolve_folder(spec)
    valid_path = folder / spec.valid_file
    if spec.format == "adjacency":
        id_map = None
        train = read_adjacency_list(folder / spec.train_file)
        test = read_adjacency_list(folder / spec.test_file)
        valid = read_adjacency_list(valid_path) if valid_path.is_file() else None
    elif spec.format == "triples":
        id_map = IdMap()
        train = read_triples(folder / spec.train_file, id_map, spec.header)
        valid = read_triples(valid_path, id_map, spec.header) if valid_path.is_file() else None
        test = read_triples(folder / spec.test_file, id_map, spec.header)
    elif spec.format == "pyg":  # splits and sizes come from the file (sslrec.data.pyg)
        from sslrec.data.pyg import load_pyg

        data = load_pyg(folder / spec.train_file, spec.name, spec.n_users, spec.n_items)
        log.info("%s (from %s)", data.describe(), folder)
        return data
    else:
        raise ValueError(
            f"dataset.format must be 'adjacency', 'triples' or 'pyg', got {spec.format!r}"
        )
    data = build_interactions(
        spec.name,
        train,
        test,
        valid,
        n_users=spec.n_users,
        n_items=spec.n_items,
        id_map=id_map,
        allow_sparse_ids=spec.allow_sparse_ids,
    )
    data.features = load_side_features(
        folder, spec.user_features_file, spec.item_features_file, data.n_users, data.n_items, id_map
    )
    log.info("%s (from %s)", data.describe(), folder)
    return data
