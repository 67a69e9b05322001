"""A batch's ranking scores on an accelerator: positives and negatives from one gather, or two.

``sslrec.models.base._scores`` gathers a batch's positive and negative items in one
``F.embedding`` of their ids side by side, unless that would pass the 3,072 ids up to which
CUDA differentiates a gather in one kernel while each part stays within it
(``SMALL_GATHER_IDS``; past it ``embedding_dense_backward`` sorts the ids, with cub's radix
sort, scans and segment kernels). At yelp2018's batch of 2,048 with one negative that rule
picks two gathers. This times both forms, forward and backward with a BPR loss on top, on the
accelerator's paths, and on CUDA counts the kernels each launches (``torch.profiler``):

    python experiments/bench_gather.py --device cuda      # in experiments/gpu_check.sh
    python experiments/bench_gather.py                    # the CPU, under accelerator_paths

An iteration's time is the median over ``--rounds`` of ``--iters`` iterations issued back to
back and waited for once, as a training step issues them: on a GPU, whichever of the host's
issuing and the device's work is slower.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from sslrec.devices import KernelCounter, accelerator_paths, synchronize
from sslrec.models.base import _scores


def _iteration(users, pos, neg, user_table, item_table, join: bool) -> None:
    u = F.embedding(users, user_table)
    _, _, pos_scores, neg_scores = _scores(u, item_table, pos, neg, join)
    F.softplus(neg_scores - pos_scores).mean().backward()


def _kernels(run, device: torch.device) -> int:
    """Kernels one iteration launches on CUDA; elsewhere the aten operations it dispatches."""
    if device.type != "cuda":
        with KernelCounter() as seen:
            run()
        return seen.total
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run()
        synchronize(device)
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--negatives", type=int, default=1, help="k; 1 draws neg as [B]")
    ap.add_argument("--users", type=int, default=31668)  # yelp2018
    ap.add_argument("--items", type=int, default=38048)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    user_table = torch.randn(args.users, args.dim, device=device, requires_grad=True)
    item_table = torch.randn(args.items, args.dim, device=device, requires_grad=True)
    users = torch.randint(0, args.users, (args.batch,), device=device)
    pos = torch.randint(0, args.items, (args.batch,), device=device)
    shape = (args.batch,) if args.negatives == 1 else (args.batch, args.negatives)
    neg = torch.randint(0, args.items, shape, device=device)
    forms = {"one gather": True, "two gathers": False}
    times: dict[str, list[float]] = {name: [] for name in forms}
    kernels = {}
    with accelerator_paths():
        for name, join in forms.items():
            for _ in range(3):  # warm-up
                _iteration(users, pos, neg, user_table, item_table, join)
            kernels[name] = _kernels(
                lambda j=join: _iteration(users, pos, neg, user_table, item_table, j), device
            )
        for r in range(args.rounds):
            for name in list(forms)[r % 2 :] + list(forms)[: r % 2]:  # alternate who goes first
                synchronize(device)
                t0 = time.perf_counter()
                for _ in range(args.iters):
                    _iteration(users, pos, neg, user_table, item_table, forms[name])
                synchronize(device)
                times[name].append((time.perf_counter() - t0) / args.iters)
    ids = args.batch * (1 + args.negatives)
    what = "CUDA kernels" if device.type == "cuda" else "aten ops"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"batch {args.batch}, {args.negatives} negative(s): {ids} item ids; "
        f"items {args.items}, d {args.dim}; "
        f"median of {args.rounds} rounds of {args.iters} iterations (forward + backward)"
    )
    print(f"| form | {what} / iteration | µs / iteration | × one gather |")
    print("|---|---:|---:|---:|")
    base = statistics.median(times["one gather"])
    for name in forms:
        med = statistics.median(times[name])
        print(f"| {name} | {kernels[name]} | {1e6 * med:.1f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
