"""A training step's encoder at the batch's rows only, against the whole encoder.

    python experiments/bench_rows.py --threads T [--dataset gowalla --batch 2048 8192 ...]

For each batch size: the share of the graph's edges the batch's nodes hold (users, positives,
negatives), and, interleaved in one run (a shared machine drifts), the median time of LightGCN's
loss + backward (3 layers, d = 64, BPR and L2 on the batch) with the encoder at every node
(``node_rows`` returning ``None``) and at the batch's rows (``LightGCN.encode(rows=...)``:
the last layer's product over those rows, its transpose in the backward; here whatever their
share, which ``LightGCN.node_rows`` caps at ``MAX_SHARE``); and, at the first batch size, the
other ``--models`` (SGL-ED: the clean encoder at the batch's rows, view 1 at the anchors;
SimGCL's three views, XSimGCL's one, NCL's final and context layers at the batch's rows, with
the noise of the whole layers). Both paths must give the same loss and gradients bit for bit
(checked; the noise models draw from the same seed on both). ``sslrec.graph.rows.MAX_SHARE``
comes from this table: restricting pays below about 60% of the edges.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from sslrec.augment import EdgeDropout
from sslrec.data import Batch, DatasetSpec, load_dataset
from sslrec.data.dataset import benchmark_data_root
from sslrec.graph import normalized_adjacency
from sslrec.graph.rows import MAX_SHARE
from sslrec.losses import BPRLoss, L2Reg
from sslrec.models import SGL, LightGCN, SimGCL, XSimGCL
from sslrec.models.ncl import NCL


def _all_rows(model, users: torch.Tensor, *items: torch.Tensor) -> torch.Tensor:
    """``LightGCN.node_rows`` without its threshold: the rows whatever their share."""
    ids = [users.reshape(-1)] + [i.reshape(-1) + model.n_users for i in items]
    return torch.unique(torch.cat(ids))


def _step(model, batch: Batch, whole: bool) -> tuple[float, torch.Tensor, list[torch.Tensor]]:
    """Seconds for loss + backward, the total, and the parameters' gradients, with the
    encoders at every node (``whole``) or at the rows read."""
    # an instance attribute shadows the method
    model.node_rows = (lambda *a: None) if whole else (lambda *a: _all_rows(model, *a))
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same noise draws on both paths
    t0 = time.perf_counter()
    terms = model.loss(batch)
    total = sum(t.weight * t.value for t in terms.values())
    total.backward()
    seconds = time.perf_counter() - t0
    del model.node_rows
    return seconds, total.detach(), [p.grad for p in model.parameters()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="gowalla")
    ap.add_argument("--data-root", default=benchmark_data_root())
    ap.add_argument("--batch", type=int, nargs="+", default=[2048, 8192, 16384, 32768])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--models",
        nargs="+",
        default=["lightgcn"],
        choices=["lightgcn", "sgl-ed", "simgcl", "xsimgcl", "ncl"],
        help="LightGCN at every batch size, the others at the first",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(DatasetSpec(name=args.dataset, path=f"{args.data_root}/{args.dataset}"))
    u, i = (torch.from_numpy(a) for a in data.train_pairs())
    adj = normalized_adjacency(u, i, data.n_users, data.n_items)
    n_users, n_items = data.n_users, data.n_items

    def build(name: str):
        torch.manual_seed(0)
        graph = {"n_users": n_users, "n_items": n_items, "adjacency": adj}
        if name == "lightgcn":
            return LightGCN(**graph)
        if name == "simgcl":
            return SimGCL(**graph)
        if name == "xsimgcl":
            return XSimGCL(**graph)
        if name == "ncl":
            model = NCL(warm_up=0, **graph)
        else:
            model = SGL(
                train_users=u,
                train_items=i,
                augmenter=EdgeDropout(0.1),
                loss=BPRLoss(reduction="sum"),
                reg=L2Reg(reduction="sum"),
                **graph,
            )
        model.start_epoch()
        return model

    models = {name: build(name) for name in dict.fromkeys(["lightgcn", *args.models])}
    crow = adj.crow_indices().long()
    print(
        f"{args.dataset}: {n_users} users, {n_items} items, {adj._nnz()} entries; "
        f"{args.threads} thread(s), torch {torch.__version__}, {platform.machine()}; "
        f"MAX_SHARE {MAX_SHARE}"
    )
    print("| model | batch | rows | share of edges | whole (ms) | rows (ms) | rows / whole |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size in args.batch:
        gen = torch.Generator().manual_seed(size)
        pick = torch.randint(0, len(u), (size,), generator=gen)
        batch = Batch(
            users=u[pick], pos=i[pick], neg=torch.randint(0, n_items, (size,), generator=gen)
        )
        nodes = torch.unique(torch.cat([batch.users, n_users + batch.pos, n_users + batch.neg]))
        share = float((crow[nodes + 1] - crow[nodes]).sum()) / adj._nnz()
        for name, model in models.items():
            if name != "lightgcn" and size != args.batch[0]:
                continue
            _, ref, ref_grads = _step(model, batch, whole=True)
            times: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(args.repeats):
                for whole in (True, False):
                    seconds, total, grads = _step(model, batch, whole)
                    times[whole].append(seconds)
                    if not whole:
                        assert torch.equal(total, ref), "the loss differs"
                        assert all(
                            torch.equal(a, b) for a, b in zip(grads, ref_grads, strict=True)
                        ), "a gradient differs"
            whole_ms = statistics.median(times[True]) * 1e3
            rows_ms = statistics.median(times[False]) * 1e3
            print(
                f"| {name} | {size} | {len(nodes)} | {share:.3f} | {whole_ms:.1f} | "
                f"{rows_ms:.1f} | {rows_ms / whole_ms:.2f} |"
            )
            print(
                json.dumps(
                    {
                        "model": name,
                        "batch": size,
                        "rows": len(nodes),
                        "share": share,
                        "whole_ms": whole_ms,
                        "rows_ms": rows_ms,
                    }
                )
            )


if __name__ == "__main__":
    main()
