"""Whether CUDA graphs would speed up training on a GPU: each model's step taken eagerly, and
replayed from one captured graph, on the same batches, side by side.

A GPU step's pace is set by the host when its kernels are short (yelp2018 on an H100:
``experiments/bench_host_overhead.py`` counts 89-300 kernels per step). A CUDA graph replays a
captured step's kernels with one launch. The step has what capture needs (no host sync inside:
``tests/test_accelerator_paths.py``; static shapes for full batches), so this measures what it
would buy before the trainer takes it (the issue: "CUDA graphs only where a benchmark shows
they help"). For each model:

- **eager**: the trainer's step (``model.loss``, ``total``, backward, fused Adam with
  ``capturable=True``, the loss terms summed on the device) for ``--steps`` full batches, drawn
  on the device by :class:`~sslrec.data.device_sampling.DeviceSampler` before the timing (the
  sampling, the same both ways, is left out);
- **graph**: a twin of the model built from the same seed; three warm-up steps on a side
  stream, one step captured (``torch.cuda.graph``), then per batch: copy it into the captured
  step's input tensors, replay;
- **agreement** (models without per-step randomness: LightGCN, SGL): the parameters after the
  same batches both ways (max relative difference); the noisy models draw their noise from
  another offset of the generator when replayed, so only their losses are shown;
- ``s/step`` is the wall time of the loop divided by its steps (the device synchronised before
  and after), and ``s/epoch`` that times yelp2018's batches.

A capture that fails is reported with its error, not hidden: that is the finding.

    python experiments/bench_cuda_graph.py --device cuda                # yelp2018, 4 models
    python experiments/bench_cuda_graph.py --device cpu --steps 3       # the eager half only
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import time
import traceback

import torch

from sslrec.data.dataset import benchmark_data_root
from sslrec.devices import synchronize

MODELS = {
    "lightgcn": ["model=lightgcn"],
    "xsimgcl": ["model=xsimgcl"],
    "simgcl": ["model=simgcl"],
    "sgl-ed": ["model=sgl", "augmenter=ed"],
}
DETERMINISTIC = {"lightgcn", "sgl-ed"}  # no random draw inside a step
WARMUP = 3


class Run:
    """One model, its optimiser and a device sampler, as the trainer builds them."""

    def __init__(self, name: str, data, device: torch.device, batch_size: int, seed: int = 0):
        from hydra import compose, initialize_config_dir

        from sslrec.__main__ import config_dir
        from sslrec.data.device_sampling import DeviceSampler
        from sslrec.factory import build_model

        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("config", overrides=MODELS[name])
        torch.manual_seed(seed)
        self.model = build_model(cfg.model, data, device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.trainer.lr, fused=True, capturable=True
        )
        self.sampler = DeviceSampler(
            data.train, batch_size, cfg.trainer.sampling, seed, device=device
        )
        self.model.train()
        torch.manual_seed(seed)
        self.model.start_epoch()  # SGL's views of this epoch
        self.sums: torch.Tensor | None = None

    def batches(self, n: int) -> list:
        """The first ``n`` full batches of an epoch, drawn on the device."""
        full = (b for b in self.sampler.epoch() if b.users.shape[0] == self.sampler.batch_size)
        return list(itertools.islice(full, n))

    def body(self, batch) -> None:
        """Loss, backward, Adam, and the terms summed on the device (the trainer's step)."""
        from sslrec.losses import total

        terms = self.model.loss(batch)
        loss = total(terms)
        loss.backward()
        self.optimizer.step()
        values = [t.value.detach().double() for t in terms.values()] + [loss.detach().double()]
        values = torch.stack(values)
        self.sums = values if self.sums is None else self.sums.add_(values)

    def eager(self, batches: list, device: torch.device) -> float:
        synchronize(device)
        t0 = time.perf_counter()
        for batch in batches:
            self.optimizer.zero_grad(set_to_none=True)
            self.body(batch)
        synchronize(device)
        return (time.perf_counter() - t0) / len(batches)

    def graphed(self, warm: list, batches: list, device: torch.device) -> float:
        """Warm up on a side stream, capture one step, replay it for ``batches``."""
        from sslrec.data.sampling import Batch

        static = Batch(warm[0].users.clone(), warm[0].pos.clone(), warm[0].neg.clone())

        def load(batch) -> None:
            static.users.copy_(batch.users)
            static.pos.copy_(batch.pos)
            static.neg.copy_(batch.neg)

        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for batch in warm:
                load(batch)
                self.optimizer.zero_grad(set_to_none=True)
                self.body(static)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self.body(static)
        synchronize(device)
        t0 = time.perf_counter()
        for batch in batches:
            load(batch)
            graph.replay()
        synchronize(device)
        return (time.perf_counter() - t0) / len(batches)


def _max_rel_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    worst = 0.0
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        scale = float(p.detach().abs().max()) or 1.0
        worst = max(worst, float((p.detach() - q.detach()).abs().max()) / scale)
    return worst


def measure(name: str, data, device: torch.device, args: argparse.Namespace) -> dict:
    row: dict = {"model": name}
    run = Run(name, data, device, args.batch_size)
    batches = run.batches(WARMUP + args.steps)
    # the same model, optimiser and views, built again from the same seed, for the graph
    twin = Run(name, data, device, args.batch_size) if device.type == "cuda" else None
    run.eager(batches[:WARMUP], device)  # warm-up (allocator, kernels' first calls)
    row["eager_s_per_step"] = run.eager(batches[WARMUP:], device)
    row["eager_losses"] = (run.sums / (WARMUP + args.steps)).tolist()
    if twin is None:
        return row
    try:
        row["graph_s_per_step"] = twin.graphed(batches[:WARMUP], batches[WARMUP:], device)
        # the captured step's own run during capture is not executed: each replay is one step
        row["graph_losses"] = (twin.sums / (WARMUP + args.steps)).tolist()
        if name in DETERMINISTIC:
            row["params_max_rel_diff"] = _max_rel_diff(run.model, twin.model)
    except Exception as err:  # the finding is the error: report it, go on to the next model
        row["graph_error"] = f"{type(err).__name__}: {err}"
        row["graph_traceback"] = traceback.format_exc(limit=6)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="yelp2018")
    ap.add_argument("--data-root", default=benchmark_data_root())
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--out", default=None, help="write the rows as JSON lines here")
    args = ap.parse_args()

    from sslrec.data import DatasetSpec, load_dataset

    device = torch.device(args.device)
    data = load_dataset(DatasetSpec(name=args.dataset, path=f"{args.data_root}/{args.dataset}"))
    per_epoch = math.ceil(data.train.nnz / args.batch_size)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(
        f"{args.dataset} ({per_epoch} batches/epoch), {name}, torch {torch.__version__}; "
        f"{args.steps} steps after {WARMUP} warm-up steps"
    )
    print(
        "| model | eager s/step | graph s/step | graph / eager | eager s/epoch | graph s/epoch "
        "| params rel diff |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for model in args.models:
        row = measure(model, data, device, args)
        rows.append(row)
        eager, graphed = row["eager_s_per_step"], row.get("graph_s_per_step")
        if graphed is None:
            cells = ["–", "–", f"{eager * per_epoch:.2f}", "–", "–"]
            if "graph_error" in row:
                cells[0] = f"failed: {row['graph_error'][:120]}"
        else:
            diff = row.get("params_max_rel_diff")
            cells = [
                f"{graphed:.5f}",
                f"{graphed / eager:.2f}",
                f"{eager * per_epoch:.2f}",
                f"{graphed * per_epoch:.2f}",
                "–" if diff is None else f"{diff:.1e}",
            ]
        print(f"| {model} | {eager:.5f} | " + " | ".join(cells) + " |", flush=True)
    for row in rows:
        if "graph_traceback" in row:
            print(f"\n{row['model']}: {row['graph_traceback']}")
    if args.out:
        with open(args.out, "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)


if __name__ == "__main__":
    main()
