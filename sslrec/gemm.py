"""Dense fp32 products on the CPU through MKL or oneDNN, picked by the CPU they run on.

torch sends a CPU fp32 ``mm`` to MKL, and MKL picks its kernels by the CPU's vendor. On the
project's AMD EPYC (Zen 4, AVX-512) the all-node InfoNCE's logits product ``[r, d+1] × [d+1, N]``
ran at ~65 GFLOP/s under MKL and ~150 under oneDNN, torch's other CPU GEMM library, which picks
its kernels by instruction set (``experiments/bench_infonce_paths.py --gemm mkl onednn``). On
Intel CPUs MKL ran these products near the fp32 peak, so it stays there. Used by the eager
all-node logsumexp (:mod:`sslrec.losses.tiled`) and the inner-product scorer
(:mod:`sslrec.evaluation.scoring`).

``auto`` takes oneDNN on AMD and Hygon x86 CPUs and MKL elsewhere; the environment variable
``SSLREC_CPU_GEMM`` (``auto``, ``mkl``, ``onednn``) or :func:`cpu_gemm` overrides it. The
choice depends on the machine only, so a seed still gives the same numbers on the same machine;
the two libraries' results differ in the last bits.
"""

from __future__ import annotations

import functools
import os
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

BACKENDS = ("auto", "mkl", "onednn")
# oneDNN's call costs ~20 us more than MKL's (its primitive's set-up), and it lost to MKL at
# 64 x 65 x 1000 on the AMD EPYC: products below this many multiply-adds stay on MKL.
ONEDNN_MIN_MACS = 1 << 24
_LOCAL = threading.local()


def _cpuinfo_field(key: str, cpuinfo: str) -> str:
    """The first ``key : value`` of a ``/proc/cpuinfo``-style file; ``""`` if absent."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_vendor(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The x86 vendor string (``GenuineIntel``, ``AuthenticAMD``, ...); ``""`` if unknown."""
    return _cpuinfo_field("vendor_id", cpuinfo)


@functools.cache
def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


@functools.cache
def _auto_backend() -> str:
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return "onednn" if x86 and cpu_vendor() in ("AuthenticAMD", "HygonGenuine") else "mkl"


def _check(backend: str, source: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"{source} must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def cpu_gemm_backend() -> str:
    """``"mkl"`` or ``"onednn"``: the library for CPU fp32 products (:func:`onednn_products`)."""
    backend = getattr(_LOCAL, "backend", None)
    if backend is None:
        backend = _check(os.environ.get("SSLREC_CPU_GEMM", "auto"), "SSLREC_CPU_GEMM")
    if backend == "auto":
        backend = _auto_backend()
    if backend == "onednn" and not _onednn_available():
        return "mkl"
    return backend


@contextmanager
def cpu_gemm(backend: str) -> Iterator[None]:
    """Use ``backend`` (``auto``, ``mkl``, ``onednn``) for CPU fp32 products in this thread."""
    before = getattr(_LOCAL, "backend", None)
    _LOCAL.backend = _check(backend, "backend")
    try:
        yield
    finally:
        _LOCAL.backend = before


def onednn_products(x: torch.Tensor, macs: int) -> bool:
    """Whether products of ``macs`` multiply-adds on tensors like ``x`` go to oneDNN: on the
    CPU, at least :data:`ONEDNN_MIN_MACS` large, in fp32 where it is chosen here, in bf16
    wherever oneDNN has bf16 (torch's own bf16 products are oneDNN's)."""
    if x.device.type != "cpu" or macs < ONEDNN_MIN_MACS:
        return False
    if x.dtype == torch.bfloat16:
        return _onednn_bf16_available()
    return x.dtype == torch.float32 and cpu_gemm_backend() == "onednn"


@functools.cache
def _onednn_bf16_available() -> bool:
    return _onednn_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def onednn_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x @ w.T`` through oneDNN: ``[M, K] × [N, K] → [M, N]`` (``w`` may be a strided view);
    for products :func:`onednn_products` sends there."""
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), w, None, "none", [], "")


def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name and vendor, for benchmark headers (``""`` if unknown)."""
    fields = (_cpuinfo_field("model name", cpuinfo), cpu_vendor(cpuinfo))
    return ", ".join(x for x in fields if x)
