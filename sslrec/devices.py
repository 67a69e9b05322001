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
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode

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


def synchronize(device: torch.device | str) -> None:
    """Wait for the work queued on ``device`` (CUDA; nothing to wait for on the CPU), so that a
    benchmark's clock reads what ran, not what was issued."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: aten ops that make views: they launch no kernel on a GPU
VIEW_OPS = frozenset(
    {
        "alias", "as_strided", "detach", "expand", "narrow", "permute", "reshape", "select",
        "slice", "split", "squeeze", "t", "transpose", "unbind", "unsqueeze", "view",
        "_reshape_alias", "_unsafe_view", "split_with_sizes",
    }
)  # fmt: skip


class KernelCounter(TorchDispatchMode):
    """Counts, by name, the aten ops dispatched inside it but views (:data:`VIEW_OPS`): the
    kernels a GPU would launch for the same work, whose issue by the host bounds a short step
    (``experiments/bench_host_overhead.py``, ``tests/test_accelerator_paths.py``). Run the work
    under :func:`accelerator_paths` to count an accelerator's branches on the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in VIEW_OPS:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        """Kernels counted so far."""
        return sum(self.ops.values())
