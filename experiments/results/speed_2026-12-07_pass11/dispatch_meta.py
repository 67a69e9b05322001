"""Host time of the ranking scores and the L2 term, forward and backward, in each form, on
torch's ``meta`` device: every op goes through the dispatcher and autograd and computes
nothing, so this times what the host does per step, without the CPU's own kernels (a proxy
for a GPU step's host side; absolute times include meta's Python shape functions).

    python experiments/results/speed_2026-12-07_pass11/dispatch_meta.py
"""

import statistics
import time

import torch
import torch.nn.functional as F

from sslrec.losses import L2Reg
from sslrec.models.base import _dot, _scores

torch.set_num_threads(1)
ut = torch.randn(1000, 64, device="meta", requires_grad=True)
it = torch.randn(1000, 64, device="meta", requires_grad=True)
idx = torch.zeros(2048, dtype=torch.long, device="meta")


def rows():
    return F.embedding(idx, ut), F.embedding(idx, it), F.embedding(idx, it)


def scores_host():  # the host's form: two gathers of the items, two products and sums
    u = F.embedding(idx, ut)
    p, n = F.embedding(idx, it), F.embedding(idx, it)
    F.softplus(_dot(u, n) - (u * p).sum(-1)).mean().backward()


def scores_accelerator():  # meta is not the host: _scores takes one gather and one bmm
    u = F.embedding(idx, ut)
    _, _, pos, neg = _scores(u, it, idx, idx)
    F.softplus(neg - pos).mean().backward()


def reg_host():  # L2Reg's per-table sum, as on the host
    (sum(0.5 * e.pow(2).sum() for e in rows()) / 2048 * 1e-4).backward()


def reg_accelerator():  # L2Reg on meta: the joined form
    L2Reg()(*rows()).backward()


def median_us(fn, n: int = 2000) -> float:
    for _ in range(50):
        fn()
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(times)


if __name__ == "__main__":
    for name in ("scores", "reg"):
        host = median_us(globals()[f"{name}_host"])
        accel = median_us(globals()[f"{name}_accelerator"])
        ratio = accel / host
        print(f"{name}: host form {host:.0f} us, accelerator form {accel:.0f} us ({ratio:.2f})")
