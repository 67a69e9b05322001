"""Pure statistics over seeds: summaries, paired tests against a baseline, curve bands."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

TESTS = ("ttest", "wilcoxon")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) of finite values; nan where undefined.

    One value gives ``(value, nan)``; no values give ``(nan, nan)``.
    """
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    mean = float(x.mean()) if x.size else math.nan
    std = float(x.std(ddof=1)) if x.size > 1 else math.nan
    return mean, std


def paired_pvalue(
    values: Mapping[Any, float], baseline: Mapping[Any, float], test: str = "ttest"
) -> float:
    """Two-sided p-value of a paired test between runs matched by seed.

    Only seeds present (with finite values) in both mappings are paired; fewer than two pairs
    give nan. ``test`` is ``"ttest"`` (scipy.stats.ttest_rel) or ``"wilcoxon"``
    (scipy.stats.wilcoxon). Identical pairs (all differences zero) give p = 1.
    """
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; expected one of {TESTS}")
    seeds = [s for s in values if s in baseline]
    pairs = [(values[s], baseline[s]) for s in seeds]
    pairs = [(a, b) for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
    if len(pairs) < 2:
        return math.nan
    a, b = (np.asarray(col, dtype=float) for col in zip(*pairs, strict=True))
    if np.all(a == b):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero-variance differences -> nan
        result = sps.ttest_rel(a, b) if test == "ttest" else sps.wilcoxon(a, b)
    return float(result.pvalue)


def best_index(means: Sequence[float]) -> int | None:
    """Index of the largest finite mean, the first on ties (metrics are higher-is-better)."""
    finite = [i for i, m in enumerate(means) if math.isfinite(m)]
    return max(finite, key=lambda i: means[i]) if finite else None


def curve_band(
    curves: Sequence[Mapping[int, float]],
) -> tuple[list[int], list[float], list[float], list[float], list[float]]:
    """Across seeds, per epoch: epochs, mean, std (nan for one seed), min and max.

    Each curve maps epoch -> value; an epoch is summarised over the curves that reached it.
    """
    epochs = sorted({e for c in curves for e in c})
    mean, std, lo, hi = [], [], [], []
    for epoch in epochs:
        vals = [c[epoch] for c in curves if epoch in c]
        m, s = mean_std(vals)
        mean.append(m)
        std.append(s)
        lo.append(min(vals))
        hi.append(max(vals))
    return epochs, mean, std, lo, hi
