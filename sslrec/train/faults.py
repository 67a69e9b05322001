"""Deterministic fault injection for the tests: ``SSLREC_FAULT=PHASE@EPOCH`` ends the process
with ``os._exit`` (no cleanup, no flush, no ``finally``: as ``kill -9`` would) when training
reaches PHASE of EPOCH. Phases, in the order an evaluated epoch passes them:

* ``train``: after the epoch's first optimiser step;
* ``eval``: during the evaluation, its metrics computed and nothing of them written;
* ``record``: the epoch's ``metrics.jsonl`` record written, its checkpoint not;
* ``checkpoint``: inside the checkpoint write, the temporary file complete, not renamed;
* ``saved``: after the checkpoint.

Unset (always, outside the tests) a phase costs one environment lookup per epoch.
"""

from __future__ import annotations

import os

ENV = "SSLREC_FAULT"
PHASES = ("train", "eval", "record", "checkpoint", "saved")
EXIT_CODE = 86


def fault_point(phase: str, epoch: int) -> None:
    """Exit at once if ``$SSLREC_FAULT`` is ``phase@epoch``."""
    if os.environ.get(ENV) == f"{phase}@{epoch}":
        os._exit(EXIT_CODE)
