"""Which of two code paths a tensor's device takes: the host's or an accelerator's.

On the CPU a host sync costs nothing, so several places take a faster road that reads data back:
``torch.unique`` (a data-dependent size) to drop repeated ids, a ``bool()`` of a tensor to pick
a branch, numpy on a tensor's memory, buffers reused across steps. On an accelerator each of
those would stall the device queue, so there they take a path without host reads. Every such
branch asks :func:`host_paths`, so that :func:`accelerator_paths` can run the accelerator's
branches on the CPU: the tests then check, without a GPU, that they compute the same losses
and gradients as the host's and dispatch no operation that syncs
(``tests/test_accelerator_paths.py``; ``experiments/gpu_check.sh`` checks the same on a GPU).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_LOCAL = threading.local()


def host_paths(device: torch.device | str) -> bool:
    """Whether work on ``device`` takes the host's paths: on the CPU, unless inside
    :func:`accelerator_paths` in this thread."""
    return torch.device(device).type == "cpu" and not getattr(_LOCAL, "emulate", False)


@contextmanager
def accelerator_paths() -> Iterator[None]:
    """Run the accelerator's paths on the CPU in this thread (for tests: the numbers are
    those a GPU's branches compute, on the CPU's kernels)."""
    before = getattr(_LOCAL, "emulate", False)
    _LOCAL.emulate = True
    try:
        yield
    finally:
        _LOCAL.emulate = before
