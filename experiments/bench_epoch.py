"""Training cost per step and per epoch of each model, side by side in one run.

Each variant runs in its own process (so that its peak RSS is its own) on the same data, threads
and device. A variant times ``--batches`` optimisation steps after a warm-up step (median step
time) exactly as the trainer takes them (batch to the device, ``model.loss``, ``total``,
backward, Adam step), plus the per-epoch view redraw (``start_epoch``), and extrapolates to one
epoch: ``start_epoch + n_batches × median step``. ``--full-epoch`` also runs one whole epoch
through ``Trainer.train_epoch`` (sampling and transfers included) to check the extrapolation;
on a GPU that is the figure to quote. ``propagation`` is the floor every graph model pays:
``K`` layers of LightGCN propagation, forward and backward, with nothing else.

    python experiments/bench_epoch.py --dataset gowalla --threads 1
    python experiments/bench_epoch.py --dataset yelp2018 --device cuda --full-epoch
    python experiments/bench_epoch.py --threads 1 --rounds 3  # interleaved rounds, medians
    python experiments/bench_epoch.py --variants sgl-ed --profile 5  # where a step's time goes
    python experiments/bench_epoch.py --threads 1 --paired --batches 30  # ratios robust to drift

``--paired`` instead holds every variant in one process and takes one step of each in turn, so
that each ratio is a median of ratios measured seconds apart (:func:`paired`). A ``NAME-whole``
variant runs NAME's encoders at every node instead of the batch's rows (``node_rows`` off): its
column ``× its -whole`` compares the two paths in the same cycles, and its ``× LightGCN`` is
against ``lightgcn-whole`` where that runs too. A ``NAME-one-by-one`` variant draws NAME's noise
layer by layer instead of announced ahead (``sslrec.augment.noise.DRAW_AHEAD`` off during its
steps; the same numbers): column ``× its -one-by-one``.

    python experiments/bench_epoch.py --paired --threads 1 --variants lightgcn lightgcn-whole \
        sgl-ed sgl-ed-whole simgcl simgcl-whole xsimgcl xsimgcl-whole

The table reports each variant's median step, its ratio to the LightGCN step and to the
propagation, the epoch estimate, and peak memory (RSS; on CUDA also the allocator's peak).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from sslrec.data.dataset import benchmark_data_root
from sslrec.devices import synchronize
from sslrec.gemm import cpu_gemm_backend, cpu_name

# name -> (model, overrides)
VARIANTS = {
    "propagation": ("lightgcn", []),
    "lightgcn": ("lightgcn", []),
    "sgl-ed": ("sgl", ["augmenter=ed"]),
    "sgl-ed-block": ("sgl", ["augmenter=ed", "model.head.fused=false"]),
    "sgl-nd": ("sgl", ["augmenter=nd"]),
    "sgl-rw": ("sgl", ["augmenter=rw"]),
    "simgcl": ("simgcl", []),
    "simgcl-fused": ("simgcl", ["model.fused=true"]),
    "xsimgcl": ("xsimgcl", []),
    # precision=bf16: the contrastive logits' GEMMs on bfloat16 copies (AMX on this CPU)
    "sgl-ed-bf16": ("sgl", ["augmenter=ed", "precision=bf16"]),
    "simgcl-bf16": ("simgcl", ["precision=bf16"]),
    "xsimgcl-bf16": ("xsimgcl", ["precision=bf16"]),
    # zoo models with all-node InfoNCE terms (the tiled logsumexp)
    "lightgcl": ("lightgcl", []),
    "ncl": ("ncl", []),
}
# NAME-whole: NAME with every encoder run at every node (``node_rows`` returning None), as before
# the encoders learnt to run their last layer at the batch's rows only (sslrec.graph.rows)
for _name in ("lightgcn", "sgl-ed", "simgcl", "xsimgcl"):
    VARIANTS[f"{_name}-whole"] = VARIANTS[_name]
# LightGCN whose L2 term reads the embedding tables (a zero-filled [U or I, d] gradient per use)
# instead of the ego rows the encoder returns (layer_sum's ego_rows), as before f753a86
VARIANTS["lightgcn-l2-tables"] = VARIANTS["lightgcn"]
# NAME-one-by-one: NAME with its noise drawn layer by layer (``DRAW_AHEAD`` off during its
# steps), as before the encoders announced their draws (sslrec.augment.noise.drawn_ahead)
for _name in ("simgcl", "xsimgcl"):
    VARIANTS[f"{_name}-one-by-one"] = VARIANTS[_name]
# NAME-mkl / NAME-onednn: NAME with its CPU fp32 GEMMs on that library, whichever this CPU gets
# by default (sslrec.gemm)
for _name in ("sgl-ed", "lightgcl", "ncl"):
    VARIANTS[f"{_name}-mkl"] = VARIANTS[f"{_name}-onednn"] = VARIANTS[_name]
DEFAULT = ["propagation", "lightgcn", "sgl-ed", "sgl-ed-block", "simgcl", "xsimgcl"]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _build(args: argparse.Namespace, name: str, data, device: torch.device):
    """``(step, redraw_s, sampler, model, cfg)`` of one variant: ``step(batch)`` takes one
    optimisation step as the trainer does; ``redraw_s`` is its ``start_epoch`` time."""
    from hydra import compose, initialize_config_dir

    from sslrec.__main__ import config_dir
    from sslrec.data import BPRSampler
    from sslrec.factory import build_model
    from sslrec.graph import symmetric_spmm
    from sslrec.losses import total
    from sslrec.train.trainer import TrainerConfig, make_optimizer

    model_name, overrides = VARIANTS[name]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={model_name}", *overrides, *args.set])
    torch.manual_seed(0)
    model = build_model(cfg.model, data, device)
    if name.endswith("-whole"):
        model.node_rows = lambda *ids: None  # an instance attribute shadows the method
    if name == "lightgcn-l2-tables":

        def tables_loss(batch):
            rows = model.node_rows(batch.users, batch.pos, batch.neg)
            return model.ranking_terms(*model.encode(rows=rows)[0], batch)

        model.loss = tables_loss
    opt = make_optimizer(model, TrainerConfig(lr=cfg.trainer.lr))
    sampler = BPRSampler(data.train, cfg.trainer.batch_size, cfg.trainer.sampling, seed=0)
    if name == "propagation":  # the floor: K layers forward + backward, nothing else

        def floor_step(_batch) -> None:
            x0 = torch.cat([model.user_embedding.weight, model.item_embedding.weight])
            x, acc = x0, x0
            for _ in range(model.num_layers):
                x = symmetric_spmm(model.adjacency, x)
                acc = acc + x
            acc.sum().backward()

        return floor_step, 0.0, sampler, model, cfg

    def step(batch) -> None:
        loss = total(model.loss(batch.to(device)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if name.endswith(("-mkl", "-onednn")):
        from sslrec.gemm import cpu_gemm

        default_step = step

        def step(batch) -> None:  # the same step, its GEMMs on the named library
            with cpu_gemm(name.rsplit("-", 1)[1]):
                default_step(batch)

    if name.endswith("-one-by-one"):
        from sslrec.augment import noise

        ahead_step = step

        def step(batch) -> None:  # the same step, the draws one by one
            noise.DRAW_AHEAD = False
            try:
                ahead_step(batch)
            finally:
                noise.DRAW_AHEAD = True

    t0 = time.perf_counter()
    model.start_epoch()
    synchronize(device)
    return step, time.perf_counter() - t0, sampler, model, cfg


def _load(args: argparse.Namespace):
    from sslrec.data import DatasetSpec, load_dataset, split_validation

    data = load_dataset(DatasetSpec(name=args.dataset, path=f"{args.data_root}/{args.dataset}"))
    return split_validation(data, 0.1, seed=0)


def child(args: argparse.Namespace) -> dict:
    """Time one variant in this process."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = args.child
    data = _load(args)
    step, redraw, sampler, model, cfg = _build(args, name, data, device)
    out = {"variant": name, "batches_per_epoch": len(sampler)}
    steps = []
    batches = iter(sampler.epoch())
    for k, batch in enumerate(batches):
        synchronize(device)
        t0 = time.perf_counter()
        step(batch)
        synchronize(device)
        if k > 0:  # the first step is a warm-up
            steps.append(time.perf_counter() - t0)
        if len(steps) == args.batches:
            break
    if args.profile:  # where the time of a step goes, printed before the JSON line
        from torch.profiler import profile

        with profile() as prof:
            for _, batch in zip(range(args.profile), batches, strict=False):
                step(batch)
            synchronize(device)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    median = statistics.median(steps)
    out.update(
        median_step_s=median,
        start_epoch_s=redraw,
        epoch_estimate_s=redraw + len(sampler) * median,
    )
    if args.full_epoch and name != "propagation":
        from sslrec.evaluation import Evaluator
        from sslrec.train import Trainer, TrainerConfig

        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(
                model,
                data,
                Evaluator(data),
                TrainerConfig(batch_size=cfg.trainer.batch_size, lr=cfg.trainer.lr),
                tmp,
            )
            synchronize(device)
            t0 = time.perf_counter()
            trainer.train_epoch(1)
            synchronize(device)
            out["full_epoch_s"] = time.perf_counter() - t0
    out["peak_rss_mb"] = _peak_rss_mb()
    if device.type == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def paired(args: argparse.Namespace) -> None:
    """Every variant in this one process, one step of each in turn, the order rotated each cycle.

    A variant's ratio to LightGCN (or the propagation) is the median over cycles of its step
    divided by the reference's step *of the same cycle*: a drift of the machine that lasts
    longer than a cycle (a second or two) cancels in each ratio, where separate processes,
    minutes apart, see it whole. Peak RSS is the process's, all variants together.
    """
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = _load(args)
    runs = {}
    for name in args.variants:
        step, _, sampler, _, _ = _build(args, name, data, device)
        batches = iter(sampler.epoch())
        step(next(batches))  # warm-up
        runs[name] = (step, batches)
    times: dict[str, list[float]] = {name: [] for name in args.variants}
    names = list(args.variants)
    for cycle in range(args.batches):
        shift = cycle % len(names)
        for name in names[shift:] + names[:shift]:
            step, batches = runs[name]
            batch = next(batches)
            synchronize(device)
            t0 = time.perf_counter()
            step(batch)
            synchronize(device)
            times[name].append(time.perf_counter() - t0)
    threads = args.threads or torch.get_num_threads()
    print(
        f"{args.dataset}, device {args.device}, {threads} threads, torch {torch.__version__}, "
        f"{platform.machine()} ({cpu_name()}, CPU GEMM {cpu_gemm_backend()}); {args.batches} "
        "cycles of one step per variant in one process "
        f"(peak RSS of all together: {_peak_rss_mb():.0f} MB)"
    )
    print(
        "| variant | median s/step | × LightGCN (median of cycles, quartiles) | × propagation "
        "| × its -whole | × its -one-by-one |"
    )
    print("|---|---:|---:|---:|---:|---:|")

    def ratio(name: str, ref: str) -> str:
        if ref not in times or ref == name:
            return "–"
        r = sorted(a / b for a, b in zip(times[name], times[ref], strict=True))
        q1, med, q3 = statistics.quantiles(r, n=4) if len(r) > 1 else (r[0], r[0], r[0])
        return f"{med:.2f} ({q1:.2f}–{q3:.2f})"

    for name in names:
        # a -whole variant against LightGCN's -whole step, where there is one
        base = "lightgcn-whole" if name.endswith("-whole") and "lightgcn-whole" in times else None
        print(
            f"| {name} | {statistics.median(times[name]):.3f} | "
            f"{ratio(name, base or 'lightgcn')} | {ratio(name, 'propagation')} | "
            f"{ratio(name, name + '-whole')} | {ratio(name, name + '-one-by-one')} |"
        )
    print(json.dumps({"paired_steps_s": times}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="gowalla")
    ap.add_argument("--data-root", default=benchmark_data_root())
    ap.add_argument("--variants", nargs="+", default=DEFAULT, choices=list(VARIANTS))
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every variant this many times, interleaved (a shared machine drifts); a "
        "variant's step is the median of its rounds' medians",
    )
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full-epoch", action="store_true")
    ap.add_argument("--set", nargs="*", default=[], help="extra Hydra overrides for every model")
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        help="profile this many more steps of each variant (torch.profiler) and print the ops",
    )
    ap.add_argument(
        "--paired",
        action="store_true",
        help="all variants in one process, one step of each in turn (rotated); ratios are "
        "medians of per-cycle ratios, robust to a drifting machine (--batches cycles)",
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.paired:
        paired(args)
        return
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return
    runs: dict[str, list[dict]] = {name: [] for name in args.variants}
    failed: list[str] = []
    for _ in range(args.rounds):
        for name in args.variants:
            cmd = [sys.executable, __file__, "--child", name, "--dataset", args.dataset]
            cmd += ["--data-root", args.data_root, "--batches", str(args.batches)]
            cmd += ["--device", args.device, "--set", *args.set]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            if args.full_epoch:
                cmd.append("--full-epoch")
            if args.profile:
                cmd += ["--profile", str(args.profile)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                print(f"{name} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                failed.append(name)
                continue
            lines = proc.stdout.strip().splitlines()
            if args.profile:
                print(f"{name}:\n" + "\n".join(lines[:-1]))
            row = json.loads(lines[-1])
            runs[name].append(row)
            print(json.dumps(row), flush=True)
    rows = []
    for done in runs.values():
        if not done:
            continue
        row = dict(done[0])
        for key in ("median_step_s", "start_epoch_s", "epoch_estimate_s", "full_epoch_s"):
            if key in row:
                row[key] = statistics.median(r[key] for r in done)
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in done)
        row["round_steps_s"] = [r["median_step_s"] for r in done]
        rows.append(row)
    base = {r["variant"]: r["median_step_s"] for r in rows}
    threads = args.threads or torch.get_num_threads()
    print(
        f"\n{args.dataset}, device {args.device}, {threads} threads, torch {torch.__version__}, "
        f"{platform.machine()} ({cpu_name()}, CPU GEMM {cpu_gemm_backend()}); medians of "
        f"{args.batches} steps, median of {args.rounds} "
        "interleaved rounds"
    )
    print("| variant | s/step | × LightGCN | × propagation | s/epoch (est.) | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = {
            k: r["median_step_s"] / base[k] if k in base else float("nan")
            for k in ("lightgcn", "propagation")
        }
        epoch = r.get("full_epoch_s", r["epoch_estimate_s"])
        print(
            f"| {r['variant']} | {r['median_step_s']:.3f} | {ratio['lightgcn']:.2f} | "
            f"{ratio['propagation']:.2f} | {epoch:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    if failed:  # a table with rows missing must not pass for a finished benchmark
        sys.exit(f"failed: {', '.join(failed)} (their errors are above)")


if __name__ == "__main__":
    main()
