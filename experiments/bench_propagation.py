"""Benchmark one LightGCN propagation (3 layers, forward + backward) on a real graph.

Compares torch's native CSR autograd, sslrec's symmetric autograd (backward = Â·G, each product
``addmm_`` into an uninitialised output: :func:`sslrec.graph.spmm.spmm`), the same on plain
``csr @ x`` (which zero-fills and copies its output first) and on torch's ``spmm_reduce`` kernel,
PyG's ``EdgeIndex`` sparse matmul and the COO layout; and in bfloat16 (``spmm_reduce``: MKL's CSR
product has no bfloat16 kernel on the CPU), the forward alone and forward + backward with each
product on bf16 copies. Prints the median of ``--repeats`` runs.

    python experiments/bench_propagation.py --dataset gowalla --dim 64 --layers 3
    python experiments/bench_propagation.py --threads 1 --repeats 9
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from sslrec.data import DatasetSpec, load_dataset
from sslrec.data.dataset import benchmark_data_root
from sslrec.graph import normalized_adjacency, symmetric_spmm
from sslrec.graph.spmm import spmm


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="gowalla")
    ap.add_argument("--data-root", default=benchmark_data_root())
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(DatasetSpec(name=args.dataset, path=f"{args.data_root}/{args.dataset}"))
    u, i = (torch.from_numpy(a) for a in data.train_pairs())
    adj = normalized_adjacency(u, i, data.n_users, data.n_items)
    coo = adj.to_sparse_coo().coalesce()
    n = adj.shape[0]
    x0 = torch.randn(n, args.dim, requires_grad=True)

    def run(mm):
        def step():
            x, total = x0, 0
            for _ in range(args.layers):
                x = mm(x)
                total = total + x
            total.sum().backward()
            x0.grad = None

        return step

    class ReduceKernel(torch.autograd.Function):  # symmetric_spmm on spmm_reduce
        @staticmethod
        def forward(ctx, x):
            return torch.sparse.mm(adj, x, "sum")

        @staticmethod
        def backward(ctx, g):
            return torch.sparse.mm(adj, g, "sum")

    class Matmul(torch.autograd.Function):  # symmetric_spmm on plain csr @ x
        @staticmethod
        def forward(ctx, x):
            return adj @ x

        @staticmethod
        def backward(ctx, g):
            return adj @ g

    variants = {
        "torch_csr_native": run(lambda x: adj @ x),
        "torch_coo_native": run(lambda x: torch.sparse.mm(coo, x)),
        "sslrec_symmetric_csr": run(lambda x: symmetric_spmm(adj, x)),
        "symmetric_csr_matmul": run(Matmul.apply),
        "symmetric_spmm_reduce_kernel": run(ReduceKernel.apply),
    }
    try:
        from torch_geometric import EdgeIndex

        ei = EdgeIndex(coo.indices(), sparse_size=(n, n), sort_order="row").validate()
        vals = coo.values()
        variants["pyg_edgeindex"] = run(lambda x: ei.matmul(x, input_value=vals))
    except Exception as exc:  # PyG's fast path needs optional extensions on some builds
        print(f"pyg_edgeindex unavailable: {exc!r}")
    # bfloat16 products (the "propagation in bf16 if it measures faster"): MKL's CSR
    # product refuses bfloat16 on the CPU, so spmm_reduce is the only bf16 CSR kernel
    adj_bf16 = torch.sparse_csr_tensor(
        adj.crow_indices(), adj.col_indices(), adj.values().bfloat16(), adj.shape
    )

    class ReduceBf16(torch.autograd.Function):  # each product on bf16 copies, fp32 layer sums
        @staticmethod
        def forward(ctx, x):
            return torch.sparse.mm(adj_bf16, x.bfloat16(), "sum").float()

        @staticmethod
        def backward(ctx, g):
            return torch.sparse.mm(adj_bf16, g.bfloat16(), "sum").float()

    variants["symmetric_spmm_reduce_bf16"] = run(ReduceBf16.apply)
    x0_bf16 = x0.detach().bfloat16()
    with torch.no_grad():
        fwd = _time(lambda: [spmm(adj, x0) for _ in range(args.layers)], args.repeats)
        fwd_bf16 = _time(
            lambda: [torch.sparse.mm(adj_bf16, x0_bf16, "sum") for _ in range(args.layers)],
            args.repeats,
        )
        ref = spmm(adj, x0)
        err = (torch.sparse.mm(adj_bf16, x0_bf16, "sum").float() - ref).abs().max()
    out = {
        "forward_only_csr_s": fwd,
        "forward_only_csr_bf16_spmm_reduce_s": fwd_bf16,
        "bf16_max_error_relative": float(err / ref.abs().max()),
    }
    for name, fn in variants.items():
        out[name + "_fwd_bwd_s"] = _time(fn, args.repeats)
    out.update(
        dataset=args.dataset,
        dim=args.dim,
        layers=args.layers,
        nnz=int(adj.values().numel()),
        threads=torch.get_num_threads(),
        machine=platform.processor() or platform.machine(),
        torch=torch.__version__,
    )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
