"""A model's loss + backward with its InfoNCE head tiled (``fused``, the default) or as the
logits block, interleaved batch by batch in one process.

    python experiments/bench_ssl_head.py --model xsimgcl --threads T [--batches 12]
    python experiments/bench_ssl_head.py --model sgl --threads T --recompute
    python experiments/bench_ssl_head.py --model sgl --threads T --repeated

All heads see the same batches and the same model; only the logsumexp's path differs
(``tests/test_infonce.py`` and ``tests/test_tiled_infonce.py`` check they agree). With
``--recompute`` the tiled head is also timed with its gradients recomputed in the backward
(``tiled_logsumexp(rows=0)``, the path before the eager forward; patched into
``sslrec.losses.infonce`` for those batches only). With ``--repeated`` it is also timed with the
batch's repeated anchors kept as rows of their own (the path before each distinct anchor was
taken once with its count; ``torch.unique``'s counts patched to ones in ``sslrec.losses.infonce``
for those batches only). Prints the medians after two warm-up batches.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import platform
import statistics
import time

import torch
from hydra import compose, initialize_config_dir

from sslrec.__main__ import config_dir
from sslrec.data import DatasetSpec, load_dataset
from sslrec.data.dataset import benchmark_data_root
from sslrec.data.sampling import BPRSampler
from sslrec.factory import build_model
from sslrec.losses import infonce, total

# model -> Hydra overrides (SGL: edge dropout, as bench_epoch.py's sgl-ed)
MODELS = {"xsimgcl": [], "simgcl": [], "sgl": ["augmenter=ed"]}


class _KeepRepeats:
    """``torch`` as ``sslrec.losses.infonce`` sees it with ``--repeated``: ``unique`` with
    counts returns the ids as they are, each counted once."""

    def __getattr__(self, name: str):
        return getattr(torch, name)

    @staticmethod
    def unique(x: torch.Tensor, return_counts: bool = False, **kw):
        return (x, torch.ones_like(x)) if return_counts else torch.unique(x, **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="xsimgcl")
    ap.add_argument("--dataset", default="gowalla")
    ap.add_argument("--data-root", default=benchmark_data_root())
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--recompute", action="store_true", help="also time rows=0 (see above)")
    ap.add_argument("--repeated", action="store_true", help="also time repeated rows (see above)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(DatasetSpec(name=args.dataset, path=f"{args.data_root}/{args.dataset}"))
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={args.model}", *MODELS[args.model]])
    torch.manual_seed(0)
    model = build_model(cfg.model, data, torch.device("cpu"))
    model.start_epoch()  # SGL draws its views here
    sampler = BPRSampler(data.train, 2048, seed=0)
    batches = [b for _, b in zip(range(args.batches + 2), sampler.epoch(), strict=False)]
    heads = {"block": dataclasses.replace(model.head, fused=False), "tiled": model.head}
    if args.recompute:
        heads["tiled, rows=0"] = model.head
    if args.repeated:
        heads["tiled, repeated rows"] = model.head
    lse = infonce.tiled_logsumexp
    times: dict[str, list[float]] = {name: [] for name in heads}
    for r, batch in enumerate(batches):
        for name, head in heads.items():
            model.head = head
            infonce.tiled_logsumexp = functools.partial(lse, rows=0) if "rows=0" in name else lse
            infonce.torch = _KeepRepeats() if "repeated" in name else torch  # type: ignore[assignment]
            t0 = time.perf_counter()
            total(model.loss(batch)).backward()
            model.zero_grad(set_to_none=True)
            if r >= 2:  # warm-up: buffers, caches
                times[name].append(time.perf_counter() - t0)
    infonce.tiled_logsumexp = lse
    infonce.torch = torch
    block = statistics.median(times["block"])
    print(
        f"{args.model} on {args.dataset}, {args.threads} threads, {args.batches} batches "
        f"interleaved, torch {torch.__version__}, {platform.machine()}; loss + backward, median s"
    )
    print("| head | s | × block |\n|---|---:|---:|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.4f} | {statistics.median(ts) / block:.2f} |")


if __name__ == "__main__":
    main()
