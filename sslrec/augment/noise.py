"""SimGCL's uniform noise (Yu et al., SIGIR 2022), and a Gaussian variant."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from sslrec.augment.base import EmbeddingAugmenter
from sslrec.devices import host_paths

#: smallest row norm divided by, as ``F.normalize``'s default ``eps``
NORM_EPS = 1e-12


#: per thread, the last CPU draw's array (and ``sign``'s tensor), reused by the next draw of the
#: same shape in that thread (models trained in threads of one process draw into their own): a
#: fresh ``[N, d]`` array costs a page fault per 4 KiB on first touch, as much as drawing into it
_LOCAL = threading.local()
#: numbers per generator: a draw is cut into fixed chunks, each with its own PCG64 stream
#: (``SeedSequence.spawn``), filled by up to ``torch.get_num_threads()`` threads (numpy releases
#: the GIL while filling); the chunks, not the threads, fix the numbers, so any thread count
#: draws the same
CPU_DRAW_CHUNK = 1 << 20
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0


def uniform_fill(out: np.ndarray, bit_generator: np.random.PCG64, unit: bool = True) -> None:
    """Fill ``out`` (1-d float32) with ``U[0, 1)`` numbers equal, bit for bit, to
    ``np.random.Generator(bit_generator).random(out=out, dtype=np.float32)``; with ``unit=False``
    the same numbers times ``2²⁴`` (the integers ``u32 >> 8``, exact in float32: one pass fewer
    for callers that normalise them).

    numpy makes each number from the next 32 bits, ``(u32 >> 8) · 2⁻²⁴``, one call per number;
    PCG64 serves them as the halves of its 64-bit outputs, the low half first. Taking the raw
    outputs in one call and converting them in two vectorised passes is faster: 9.1 against
    13.0 ms for gowalla's ``[70839, 64]`` on one thread (``experiments/bench_noise.py``).
    """
    if sys.byteorder != "little":  # the u32 halves below are read in little-endian order
        np.random.Generator(bit_generator).random(out=out, dtype=np.float32)
        if not unit:
            np.multiply(out, np.float32(2.0**24), out=out)
        return
    bits = bit_generator.random_raw((out.size + 1) // 2).view(np.uint32)[: out.size]
    np.right_shift(bits, 8, out=bits)
    out[...] = bits  # below 2^24: exact in float32
    if unit:
        np.multiply(out, np.float32(2.0**-24), out=out)


def _fill_jobs(
    buf: np.ndarray, seed: int, distribution: str, unit: bool = True
) -> list[Callable[[], None]]:
    """The chunks of one draw into ``buf`` (float32, C order) from ``seed``
    (:data:`CPU_DRAW_CHUNK`), as independent jobs; ``unit`` as :func:`uniform_fill` (uniform
    draws only)."""
    flat = buf.reshape(-1)
    n_chunks = max(1, -(-flat.size // CPU_DRAW_CHUNK))
    seeds = np.random.SeedSequence(seed).spawn(n_chunks)

    def fill(j: int) -> None:
        part = flat[j * CPU_DRAW_CHUNK : (j + 1) * CPU_DRAW_CHUNK]
        if distribution == "uniform":
            uniform_fill(part, np.random.PCG64(seeds[j]), unit)
        else:
            np.random.Generator(np.random.PCG64(seeds[j])).standard_normal(
                out=part, dtype=np.float32
            )

    return [partial(fill, j) for j in range(n_chunks)]


def _run(jobs: list[Callable[[], None]]) -> None:
    """Run ``jobs`` on up to ``torch.get_num_threads()`` threads (numpy releases the GIL)."""
    global _POOL, _POOL_SIZE
    threads = min(torch.get_num_threads(), len(jobs))
    if threads <= 1:
        for job in jobs:
            job()
        return
    if _POOL is None or _POOL_SIZE < threads:
        _POOL, _POOL_SIZE = ThreadPoolExecutor(threads, thread_name_prefix="sslrec-noise"), threads
    list(_POOL.map(lambda job: job(), jobs))


def _cpu_fill(buf: np.ndarray, seed: int, distribution: str, unit: bool = True) -> None:
    """Fill ``buf`` (float32, C order) from ``seed``, chunk by chunk (:func:`_fill_jobs`)."""
    _run(_fill_jobs(buf, seed, distribution, unit))


def _reused(kind: str, key: object, make: Callable[[], Any]) -> Any:
    """This thread's last buffer of ``kind`` (:data:`_LOCAL`) if it was made for ``key``, else a
    new one from ``make()``, which replaces it."""
    cache: dict = _LOCAL.__dict__.setdefault(kind, {})
    buf = cache.get(key)
    if buf is None:
        cache.clear()
        buf = cache[key] = make()
    return buf


#: draw ahead (:func:`drawn_ahead`) where announced; ``False`` draws one by one (the same numbers)
DRAW_AHEAD = True
#: the most bytes of draws held ahead at once: more announced draws are made in groups
AHEAD_BYTES = 128 << 20


class _Ahead:
    """One thread's announced draws (:func:`drawn_ahead`): made a group at a time, handed out
    in order by :func:`draw_like`."""

    def __init__(self, draws: int, shape: tuple[int, ...], distribution: str, unit: bool) -> None:
        self.draws, self.left = draws, draws  # announced; not yet seeded
        self.key = (shape, distribution, unit)
        self.queue: list[np.ndarray] = []
        self.state = torch.get_rng_state()  # torch's CPU generator after the last seeds

    def next(self, key: tuple[tuple[int, ...], str, bool]) -> np.ndarray:
        """The next announced draw, for a :func:`draw_like` call of ``(shape, distribution,
        unit)``.

        Inside a group a draw from torch's generator since its seeds is refused: one by one it
        would have come before the next draw's seed and moved it. Between groups it is not:
        the next group's seeds are drawn after it, as one by one."""
        if key != self.key:
            raise RuntimeError(f"drawn_ahead announced draws of {self.key}, not {key}")
        if self.queue and not torch.equal(self.state, torch.get_rng_state()):
            raise RuntimeError(
                "torch's generator was drawn from between draws announced to drawn_ahead; "
                "their numbers would differ from draws made one by one"
            )
        if not self.queue:
            if self.left == 0:
                raise RuntimeError(f"more than the {self.draws} draws announced to drawn_ahead")
            shape, distribution, unit = key
            group = min(self.left, max(1, AHEAD_BYTES // (4 * int(np.prod(shape)))))
            seeds = [int(torch.randint(0, 2**62, (1,))) for _ in range(group)]
            self.state = torch.get_rng_state()
            bufs: list[np.ndarray] = _reused("ahead_draws", shape, list)
            bufs += [np.empty(shape, dtype=np.float32) for _ in range(group - len(bufs))]
            _run(
                [
                    job
                    for buf, seed in zip(bufs, seeds, strict=False)
                    for job in _fill_jobs(buf, seed, distribution, unit)
                ]
            )
            self.queue, self.left = bufs[:group], self.left - group
        return self.queue.pop(0)


@contextmanager
def drawn_ahead(
    draws: int,
    shape: tuple[int, ...],
    distribution: str,
    device: torch.device | str = "cpu",
    unit: bool = False,
) -> Iterator[None]:
    """Announce the next ``draws`` calls of :func:`draw_like` in this thread, each of
    ``shape``, ``distribution`` and ``unit``: on the CPU with more than one torch thread they
    are then made a group at a time (up to :data:`AHEAD_BYTES`), every chunk of a group on
    every thread at once. The seeds come from torch's generator in the same order, so the
    numbers equal those drawn one by one, bit for bit (tested); elsewhere nothing changes.

    Why: a draw made right after a parallel torch op shares the second core with the OpenMP
    thread that still spins there, waiting for the next op; SimGCL's six draws per step took
    9.3 ms each in its step against 5.9 ms alone (2 threads, gowalla). Drawn as one group,
    SimGCL's step is 0.89 of one by one, XSimGCL's 0.93 (``experiments/bench_epoch.py
    --paired --variants simgcl simgcl-one-by-one xsimgcl xsimgcl-one-by-one``).

    Refused (``RuntimeError``) rather than silently changing the numbers: a draw of another
    shape, distribution or ``unit``, more or fewer draws than announced, a draw from torch's
    generator between two draws of one group, and nesting.
    """
    if getattr(_LOCAL, "ahead", None) is not None:
        raise RuntimeError("drawn_ahead does not nest")
    if not DRAW_AHEAD or draws < 2 or not host_paths(device) or torch.get_num_threads() < 2:
        yield
        return
    ahead = _LOCAL.ahead = _Ahead(draws, tuple(shape), distribution, unit)
    try:
        yield
    finally:
        _LOCAL.ahead = None
    if ahead.left or ahead.queue:
        made = ahead.draws - ahead.left - len(ahead.queue)
        raise RuntimeError(f"{ahead.draws} draws were announced to drawn_ahead, {made} made")


def draw_like(
    x: torch.Tensor, distribution: str, unit: bool = True, shape: tuple[int, ...] | None = None
) -> torch.Tensor:
    """``U(0, 1)`` or ``N(0, 1)`` draws shaped like ``x`` ``[N, d]`` (or ``shape``), on its
    device and dtype.
    With ``unit=False`` uniform draws may come as ``2²⁴ · U`` (on the CPU: :func:`uniform_fill`),
    for callers whose result does not depend on the scale.

    On the CPU numpy's PCG64 draws them (:func:`_cpu_fill`), seeded by one
    ``randint(0, 2**62)`` of torch's global generator (which the trainer seeds and checkpoints,
    so runs and resumes repeat): torch's CPU generator takes ~7 ns a number, on one thread,
    PCG64 a few times less, on every thread (``experiments/bench_epoch.py``). The CPU result is
    a view of a buffer that the next draw of the same shape overwrites (inside
    :func:`drawn_ahead`, the first draw of the next group): use it before then. On
    an accelerator torch's own generator is fast.
    """
    shape = tuple(x.shape) if shape is None else tuple(shape)
    if not host_paths(x.device):
        draw = torch.rand if distribution == "uniform" else torch.randn
        return draw(shape, dtype=x.dtype, device=x.device)
    ahead: _Ahead | None = getattr(_LOCAL, "ahead", None)
    if ahead is not None:
        return torch.from_numpy(ahead.next((shape, distribution, unit))).to(x.dtype)
    seed = int(torch.randint(0, 2**62, (1,)))
    buf = _reused("draws", shape, lambda: np.empty(shape, dtype=np.float32))
    _cpu_fill(buf, seed, distribution, unit)
    return torch.from_numpy(buf).to(x.dtype)


class _Scaled:
    """One thread's noises drawn and scaled ahead on an accelerator
    (:meth:`UniformNoise._scaled_ahead`), handed out in order."""

    def __init__(self, noises: list[torch.Tensor], shape: tuple[int, ...]) -> None:
        self.noises, self.shape = noises, shape

    def next(self, shape: tuple[int, ...]) -> torch.Tensor:
        if shape != self.shape:
            raise RuntimeError(f"drawn_ahead announced draws of {self.shape}, not {shape}")
        if not self.noises:
            raise RuntimeError("more draws than announced to drawn_ahead")
        return self.noises.pop(0)


@dataclass(frozen=True)
class UniformNoise(EmbeddingAugmenter):
    """``e ← e + ε · sign(e) ⊙ normalize(Δ)``, ``Δ ~ U(0, 1)^d`` per row.

    The row-wise L2 normalisation makes ``‖noise‖ = ε`` per row, and ``sign(e) ⊙ Δ`` keeps the
    noise in the hyperoctant of ``e`` (official SimGCL/XSimGCL code).

    Attributes:
        eps: ``ε ≥ 0``, the noise magnitude.
        distribution: ``uniform`` (the paper) or ``gaussian`` (``Δ ~ N(0, I)``, no sign, still
            of norm ``ε``: a common ablation).
    """

    eps: float = 0.1
    distribution: str = "uniform"
    additive = True  # x + noise, noise's gradient zero: the encoder stays linear in E^(0)
    noise_at_rows = True  # each row's noise is its own draws, scaled by their own norm

    def __post_init__(self) -> None:
        if self.distribution not in ("uniform", "gaussian"):
            raise ValueError(
                f"noise distribution must be uniform or gaussian, got {self.distribution!r}"
            )
        if self.eps < 0:
            raise ValueError(f"noise eps must be >= 0, got {self.eps}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[N, d]`` → ``[N, d]``.

        The noise is built without autograd, in place: its gradient is zero (``sign`` is flat),
        so ``x + noise`` passes the gradient through unchanged, with no backward passes over
        ``[N, d]`` for the noise's own operations. The row scale ``ε / ‖Δ‖`` is applied once
        (``F.normalize`` then ``· ε`` would take two passes); values equal the plain expression's
        up to float rounding.
        """
        return x + self.additive_noise(x)

    @torch.no_grad()
    def _scaled_draw(
        self, x: torch.Tensor, at: tuple[torch.Tensor, int] | None = None
    ) -> torch.Tensor:
        """``ε · normalize(Δ)`` ``[N, d]`` for ``x`` ``[N, d]`` (``≥ 0`` when uniform); on the
        CPU a view of a reused buffer (:func:`draw_like`). With ``at = (rows, n)`` (``x`` is
        ``[M, d]``): the whole ``[n, d]`` draw, then its rows ``rows`` only, scaled (a copy).

        The normalisation makes the draw's scale irrelevant, so uniform CPU draws come as
        ``2²⁴ · U`` (one pass fewer): every step from there scales by a power of two exactly
        (squares, their sum, the square root, the reciprocal), so the noise equals, bit for bit,
        the one drawn as ``U`` (tested). The clamp only acts on a row of zeros, whose noise is
        zero either way.
        """
        queued = getattr(_LOCAL, "scaled", None)
        if queued is not None:  # drawn and scaled ahead (an accelerator: _scaled_ahead)
            whole = queued.next(tuple(x.shape) if at is None else (at[1], x.shape[1]))
            return whole if at is None else whole.index_select(0, at[0])
        if at is None:
            noise = draw_like(x, self.distribution, unit=False)
        else:
            rows, n = at
            whole = draw_like(x, self.distribution, unit=False, shape=(n, x.shape[1]))
            noise = whole.index_select(0, rows)
        return self._scale(noise)

    def _scale(self, noise: torch.Tensor) -> torch.Tensor:
        """``ε · normalize(noise)`` along the last dimension, in place."""
        norm = torch.linalg.vector_norm(noise, dim=-1, keepdim=True)
        return noise.mul_(norm.clamp_min_(NORM_EPS).reciprocal_().mul_(self.eps))

    def drawn_ahead(
        self,
        calls: int,
        shape: tuple[int, ...],
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
    ) -> AbstractContextManager[None]:
        """A context for the next ``calls`` calls of :meth:`add_noise` (or
        :meth:`additive_noise`) on ``[N, d] = shape`` layers or rows of them, each of which
        draws once, the whole layer (also with ``at``): on the CPU :func:`drawn_ahead` for
        them (the same numbers as one by one); on an accelerator all ``calls`` noises come
        from one ``[calls, N, d]`` draw scaled in five kernels, instead of a draw and five
        kernels per call (:meth:`_scaled_ahead`). The encoders open it where an augmenter has it
        (``LightGCN._drawn_ahead``)."""
        if host_paths(device):
            return drawn_ahead(calls, shape, self.distribution, device)
        return self._scaled_ahead(calls, tuple(shape), device, dtype)

    @contextmanager
    def _scaled_ahead(
        self, calls: int, shape: tuple[int, ...], device: torch.device | str, dtype: torch.dtype
    ) -> Iterator[None]:
        """The accelerator's :meth:`drawn_ahead`: an accelerator's step is bound by its kernel
        launches, not their work. The numbers are those of one ``torch.rand`` (or ``randn``)
        of ``[calls, N, d]``: on the CPU's generator the draws one by one, on a GPU's another
        stream of the same seed (each device has its own). Refused (``RuntimeError``): a draw
        of another shape, more or fewer draws than announced, nesting."""
        if getattr(_LOCAL, "scaled", None) is not None:
            raise RuntimeError("drawn_ahead does not nest")
        if calls < 2:
            yield
            return
        draw = torch.rand if self.distribution == "uniform" else torch.randn
        with torch.no_grad():
            noises = self._scale(draw((calls, *shape), dtype=dtype, device=device))
        queue = _LOCAL.scaled = _Scaled(list(noises.unbind(0)), shape)
        try:
            yield
        finally:
            _LOCAL.scaled = None
        if queue.noises:
            made = calls - len(queue.noises)
            raise RuntimeError(f"{calls} draws were announced to drawn_ahead, {made} made")

    @torch.no_grad()
    def additive_noise(self, x: torch.Tensor) -> torch.Tensor:
        """``ε · sign(x) ⊙ normalize(Δ)`` ``[N, d]`` for ``x`` ``[N, d]``; on the CPU a view of
        a reused buffer (:func:`draw_like`): add it before the next draw."""
        noise = self._scaled_draw(x)
        return noise.mul_(torch.sign(x)) if self.distribution == "uniform" else noise

    @torch.no_grad()
    def add_noise(
        self,
        x: torch.Tensor,
        out: torch.Tensor | None = None,
        at: tuple[torch.Tensor, int] | None = None,
    ) -> torch.Tensor:
        """``x + additive_noise(x)`` written into ``out`` (``None``: ``x``, in place), with the
        same draws and the same numbers in fewer passes over ``[N, d]``: ``sign(x) · n`` is
        exact, so ``addcmul``'s multiply-add rounds as the separate addition does.

        ``at = (rows, n)``: ``x`` ``[M, d]`` is rows ``rows`` of a layer of ``n`` rows; the
        whole layer's noise is drawn (the generator moves as for the whole layer) and those
        rows of it added: the same numbers as the whole layer's rows, bit for bit.
        """
        noise = self._scaled_draw(x, at)
        if self.distribution != "uniform":
            return x.add_(noise) if out is None else torch.add(x, noise, out=out)
        # a fresh sign for a few rows: the reused buffer is kept for whole layers
        sign = torch.sign(x, out=_sign_buffer(x) if at is None else None)
        return x.addcmul_(sign, noise) if out is None else torch.addcmul(x, sign, noise, out=out)


def _sign_buffer(x: torch.Tensor) -> torch.Tensor | None:
    """A reused CPU buffer shaped like ``x`` for ``sign(x)`` (per thread, as the draws'), or
    ``None`` (a fresh tensor) elsewhere: a fresh ``[N, d]`` costs a page fault per 4 KiB on
    first touch, 2.4 against 1.4 ms for gowalla's ``sign`` on one thread."""
    if not host_paths(x.device):
        return None
    return _reused("signs", (tuple(x.shape), x.dtype), lambda: torch.empty(x.shape, dtype=x.dtype))
