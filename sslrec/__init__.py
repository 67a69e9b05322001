"""sslrec: graph self-supervised recommendation, exact to the papers and fast.

``sslrec.fit(*overrides, out_dir=...)`` trains a configured run in this process and
``sslrec.recommend_to_csv(run_dir, out)`` writes its top-k recommendations; the command line
(``python -m sslrec``, ``sslrec recommend|evaluate|report|prepare``) does the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.2.0"


def fit(*overrides: str, out_dir: str | Path) -> Path:
    """Train ``python -m sslrec OVERRIDES`` into ``out_dir``; see :func:`sslrec.api.fit`."""
    from sslrec.api import fit as _fit

    return _fit(*overrides, out_dir=out_dir)


def recommend_to_csv(run_dir: str | Path, out: str | Path = "recs.csv", **kwargs: Any) -> Path:
    """Top-k recommendations of a finished run as CSV; see
    :func:`sslrec.recommend.recommend_to_csv`."""
    from sslrec.recommend import recommend_to_csv as _recommend

    return _recommend(run_dir, out, **kwargs)


__all__ = ["__version__", "fit", "recommend_to_csv"]
