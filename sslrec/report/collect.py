"""Find run directories, read their files, and group runs into configurations."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sslrec.io import read_jsonl
from sslrec.naming import model_label, variant_prefix

# Keys that do not define a variant: the seed, and bookkeeping. A trailing "." means a prefix.
IGNORED_KEYS = (
    "seed",
    "logger.",
    "hydra.",
    "device",
    "threads",
    "data_root",
    "dataset.path",
    "dataset.n_users",
    "dataset.n_items",
    "trainer.resume",
    "trainer.progress",
    "eval.batch_size",
)
ERROR_FILES = ("error.txt", "*.err")


@dataclass
class Run:
    """One run directory: its flattened config, final results and per-evaluation history."""

    path: Path
    config: dict[str, Any]
    status: str  # "finished", "running" or "failed"
    results: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""

    @property
    def seed(self) -> Any:
        """The run's seed (None when the config has none)."""
        return self.config.get("seed")


@dataclass
class Group:
    """Runs sharing a configuration (everything but seed and bookkeeping)."""

    config: dict[str, Any]
    runs: list[Run]
    label: str = ""

    @property
    def model(self) -> str:
        """Lower-cased model class name, e.g. ``simgcl``."""
        return model_label(self.config.get("model._target_", "model"))

    @property
    def finished(self) -> list[Run]:
        """Runs that wrote results.json."""
        return [r for r in self.runs if r.status == "finished"]


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys; lists become tuples so values are hashable."""
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    key = prefix[:-1]
    return {key: tuple(tree) if isinstance(tree, list) else tree}


def is_ignored(key: str) -> bool:
    """Whether a flattened key is bookkeeping rather than part of the variant."""
    return any(key.startswith(k) if k.endswith(".") else key == k for k in IGNORED_KEYS)


def find_run_dirs(roots: Iterable[str | Path]) -> list[Path]:
    """Every directory under ``roots`` (or a root itself) holding config.yaml, outside .hydra."""
    found: set[Path] = set()
    for root in map(Path, roots):
        for cfg in [root / "config.yaml", *root.rglob("config.yaml")]:
            if cfg.is_file() and ".hydra" not in cfg.parent.parts:
                found.add(cfg.parent.resolve())
    return sorted(found, key=natural_key)


def natural_key(path: Path) -> list[tuple[int, int | str]]:
    """Sort key putting multirun job ``2-…`` before ``10-…``: digit runs compare as numbers."""
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", str(path)) if t]


def exception_line(text: str) -> str:
    """The line naming the exception in a traceback (``ValueError: ...``, the last such line
    of a chained one), not its first ("Traceback (most recent call last):"); the last
    non-empty line of any other text."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        name = line.split(":", 1)[0] if ":" in line else line
        if (
            not line[0].isspace()
            and re.fullmatch(r"[A-Za-z_][\w.]*", name)
            and not line.startswith(("Traceback ", "During handling", "The above exception"))
        ):
            return line
    return lines[-1].strip() if lines else ""


def _error_text(run_dir: Path) -> str | None:
    """The exception line of an error file, '' if the file is empty, None if there is none."""
    for pattern in ERROR_FILES:
        for path in sorted(run_dir.glob(pattern)):
            try:
                return exception_line(path.read_text(errors="replace"))
            except OSError as exc:
                return f"unreadable {path.name}: {exc}"
    return None


def _read_config(run_dir: Path) -> dict[str, Any]:
    """The flattened config.yaml; raises ValueError saying why it cannot be read."""
    try:
        tree = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"unreadable config.yaml: {type(exc).__name__}: {exc}") from None
    if tree is not None and not isinstance(tree, dict):
        raise ValueError(f"unreadable config.yaml: a {type(tree).__name__}, not a mapping")
    return flatten(tree or {})


def _read_results(path: Path) -> dict[str, Any]:
    """results.json as a dict; raises ValueError saying why it cannot be read."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"unreadable results.json: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"unreadable results.json: a {type(data).__name__}, not an object")
    return data


def load_run(run_dir: Path, split: str = "test") -> Run:
    """Read one run directory; never raises for a broken one.

    A missing results.json means running, or failed if an error file exists; a results.json
    with ``"status": "failed"`` (a non-finite loss) is failed with its reason; unreadable
    files make the run failed, with the reason. ``results`` holds results.json's ``split``
    section; ``history`` the metrics.jsonl rows.
    """
    try:
        config = _read_config(run_dir)
    except ValueError as exc:
        return Run(run_dir, {}, "failed", error=str(exc))
    # the per-evaluation curve: rows of ``split`` if the run evaluated on it during training
    # (protocol paper: test), else the split it selected on (validation protocol: valid)
    try:
        rows = [r for r in read_jsonl(run_dir / "metrics.jsonl") if _is_epoch(r.get("epoch"))]
    except OSError:
        rows = []
    history = [r for r in rows if r.get("split") == split] or rows
    error = _error_text(run_dir)
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        status = "running" if error is None else "failed"
        return Run(run_dir, config, status, history=history, error=error or "")
    try:
        data = _read_results(results_path)
    except ValueError as exc:
        return Run(run_dir, config, "failed", history=history, error=str(exc))
    if data.get("status", "finished") != "finished":
        reason = str(data.get("reason") or error or f"status {data.get('status')!r}")
        return Run(run_dir, config, "failed", history=history, error=reason)
    results = data.get(split)
    results = results if isinstance(results, dict) else {}
    values = {k: float(v) for k, v in results.items() if isinstance(v, int | float)}
    return Run(run_dir, config, "finished", values, history)


def _is_epoch(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """Group runs by configuration (config minus ignored keys), in order of first appearance."""
    groups: dict[str, Group] = {}
    for run in runs:
        variant = {k: v for k, v in run.config.items() if not is_ignored(k)}
        key = json.dumps(sorted(variant.items(), key=lambda kv: kv[0]), default=str)
        groups.setdefault(key, Group(variant, []))
        groups[key].runs.append(run)
    label_groups(list(groups.values()))
    return list(groups.values())


def differing_keys(groups: Sequence[Group]) -> list[str]:
    """Config keys whose value is not the same in every group, in first-seen order."""
    keys = list(dict.fromkeys(k for g in groups for k in g.config))
    return [k for k in keys if len({repr(g.config.get(k)) for g in groups}) > 1]


def param_names(groups: Sequence[Group]) -> dict[str, str]:
    """Map each differing key shown in labels to a short name.

    A key is shown when it tells apart groups with the same ``model [augmenter]`` prefix
    (values implied by the model are left out), and ``dataset.name`` whenever it differs.
    Class ``_target_`` keys already named by the prefix are skipped; keys sharing a short
    name and identical values (``augmenter.eps``, ``model.noise.eps``) are shown once,
    otherwise the longer dotted name disambiguates.
    """
    names: dict[str, str] = {}
    seen: dict[str, tuple[str, ...]] = {}
    for key in differing_keys(groups):
        if key != "dataset.name" and not _varies_within_prefix(groups, key):
            continue
        column = tuple(repr(g.config.get(key)) for g in groups)
        key_parts = key.split(".")[:-1] if key.endswith("_target_") else key.split(".")
        short = "dataset" if key == "dataset.name" else key_parts[-1]
        if short in seen:
            if seen[short] == column:
                continue
            short = ".".join(key_parts[1:] if key_parts[0] == "model" else key_parts)
        seen[short] = column
        names[key] = short
    return names


def _varies_within_prefix(groups: Sequence[Group], key: str) -> bool:
    """Whether two groups with the same label prefix hold different values for ``key``."""
    values: dict[str, set[str]] = {}
    for group in groups:
        values.setdefault(_prefix(group), set()).add(repr(group.config.get(key)))
    return any(len(v) > 1 for v in values.values())


def format_value(value: Any) -> str:
    """Compact value text for labels: class names for targets, ``g`` format for floats."""
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:g}"
    if isinstance(value, str) and "." in value and value.split(".")[0] == "sslrec":
        return value.rsplit(".", 1)[-1]
    return str(value)


def _prefix(group: Group) -> str:
    """``model [augmenter] [loss]`` part of a label, in :mod:`sslrec.naming`'s words."""
    return " ".join(variant_prefix(group.config))


def label_groups(groups: Sequence[Group], skip: Iterable[str] = ()) -> list[str]:
    """Set and return each group's label: model, augmenter and differing hyperparameters.

    A hyperparameter the group's config lacks (``ssl_weight`` of lightgcn) is not shown.

    Keys in ``skip`` are left out (the returned labels then serve as series names in sweeps
    and the groups' own labels are left untouched).
    """
    skip = set(skip)
    names = {k: v for k, v in param_names(groups).items() if k not in skip}
    labels = []
    for group in groups:
        parts = [_prefix(group)]
        shown = [(k, n) for k, n in names.items() if k in group.config]
        parts += [f"{n}={format_value(group.config[k])}" for k, n in shown]
        labels.append(" ".join(parts))
    if not skip:
        for group, label in zip(groups, _unique(labels), strict=True):
            group.label = label
    return labels


def _unique(labels: list[str]) -> list[str]:
    """Suffix repeated labels with #2, #3... so every group stays distinguishable."""
    counts: dict[str, int] = {}
    out = []
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
        out.append(label if counts[label] == 1 else f"{label} #{counts[label]}")
    return out
