"""The published comparisons on the LightGCN/SGL splits, resumable across short GPU slots.

    python experiments/reproduce_published.py OUT_DIR [--budget SECONDS] [--only NAME ...]
        [--pack FILE.tar.gz] [--resume-from EARLIER.tar.gz] [--timings BENCH_EPOCH.txt ...]
        [--no-fit]

Runs the missing rows of :data:`PLAN` in order of value: LightGCN on yelp2018 and gowalla to
convergence first (the baselines every table needs), then three seeds of SimGCL, XSimGCL and
SGL-ED under the paper's protocol (selected on TEST, as the official code did) and under the
validation protocol, then the model zoo's published rows, then the rest. Every run goes to
``OUT_DIR/<experiment>-<protocol>-s<seed>`` with ``trainer.resume=true``: a finished run is
skipped, a cut-off run continues from its last checkpoint, so a second slot picks up where the
first stopped. ``--budget`` stops before the slot ends: a run still going then is interrupted
(SIGTERM; its last checkpoint stays) and the next call resumes it. At the end (and at every
call) ``OUT_DIR/results.md`` tabulates every row against its published figure, with the
machine, and ``sslrec report`` writes ``OUT_DIR/report``.

``--pack`` then writes every file of ``OUT_DIR`` but the checkpoints and embeddings into one
archive: the device tool brings back at most 8 files of 16 MiB from a lent GPU, and a run folder
holds more files than that (a yelp2018 LightGCN checkpoint alone is ~71 MB). Keep ``OUT_DIR``
outside the tool's ``$OUT`` and pack into it. The checkpoints then stay on that machine: a later
call resumes them only while it is still held (a fresh lease starts bare).

**Finished rows travel.** A lease starts bare, so ``--resume-from`` unpacks the finished runs
of an earlier call's ``--pack`` archive (and its machine lines) into ``OUT_DIR`` first: they are
skipped, and this call's archive holds them again, so each lease goes on where the last one
stopped instead of redoing its first rows. Unfinished runs stay out (their records without
their checkpoint would mix two runs into one folder); they start again.

**Only what can finish is started.** A run cut off at the end of a lease is lost with its
checkpoint, so under ``--budget`` each row's cost is estimated first (:func:`estimate`: its
expected epochs, :data:`EXPECTED_EPOCHS`, times its seconds per epoch, plus its evaluations and
start-up) and a row that would not finish in what is left is deferred, with its estimate, for
the next rows in order of value. The seconds per epoch are this GPU's when ``--timings`` names
``bench_epoch.py``'s output (``gpu_check.sh`` writes it before), else the issue's H100 targets.
A row whose run already started on this machine is estimated from the epochs it has left.
``--no-fit`` starts rows in order regardless (a run on a machine of your own).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath

from sslrec.io import read_jsonl

# experiment -> published (Recall@20, NDCG@20) on the LightGCN/SGL splits, or None
PUBLISHED = {
    "lightgcn_yelp2018": (0.0649, 0.0530),
    "lightgcn_gowalla": (0.1830, 0.1554),
    "simgcl_yelp2018": (0.0721, 0.0601),
    "xsimgcl_yelp2018": (0.0723, 0.0604),
    "sgl_ed_yelp2018": (0.0675, 0.0555),
    "sgl_nd_yelp2018": (0.0644, 0.0528),
    "sgl_rw_yelp2018": (0.0667, 0.0547),
    "ncl_yelp2018": (0.0670, 0.0562),
    "directau_selfrec_yelp2018": (0.0695, 0.0583),  # SELFRec's settings, its re-run's figure
    "directau_yelp2018": None,  # the official settings; the paper's figures are on other splits
    "simplex_yelp2018": (0.0701, 0.0575),
    "simplex_gowalla": (0.1872, 0.1557),
    "mfccl_yelp2018": (0.0698, 0.0572),
    "mfccl_gowalla": (0.1837, 0.1493),
    "mixgcf_yelp2018": (0.0713, 0.0589),
    "ease_yelp2018": (0.0657, 0.0552),  # BARS, closed form: no GPU needed (11.6 GB on the CPU)
    "lightgcl_yelp2018": None,  # the paper's figures are on other splits
    "lightgcl_gowalla": None,
    "lightgcnpp_yelp2018": None,  # the paper's figures are on its own splits (not verified)
    "lightgcnpp_gowalla": None,
    "simgcl_gowalla": None,
}

#: (experiment, protocol, seed), in order of value
PLAN: list[tuple[str, str, int]] = [
    ("lightgcn_yelp2018", "paper", 2020),
    ("lightgcn_gowalla", "paper", 2020),
    *[(e, "paper", s) for s in (1, 2, 3) for e in
      ("simgcl_yelp2018", "xsimgcl_yelp2018", "sgl_ed_yelp2018")],
    *[(e, "validation", s) for s in (1, 2, 3) for e in
      ("simgcl_yelp2018", "xsimgcl_yelp2018", "sgl_ed_yelp2018")],
    *[(e, "paper", 2020) for e in
      ("ncl_yelp2018", "directau_selfrec_yelp2018", "simplex_yelp2018", "mfccl_yelp2018",
       "mixgcf_yelp2018", "ease_yelp2018", "lightgcl_yelp2018", "simplex_gowalla", "mfccl_gowalla",
       "lightgcl_gowalla", "lightgcnpp_yelp2018", "lightgcnpp_gowalla", "sgl_nd_yelp2018",
       "sgl_rw_yelp2018", "simgcl_gowalla")],
]  # fmt: skip


#: experiment -> (epochs a run is expected to take, where that comes from): the epochs a slot must
#: hold for the run to finish. Measured stops where a GPU run gave one, the config's fixed length
#: where it has no early stop, else its cap (a conservative guess: such a row waits for a long
#: slot or ``--no-fit``).
EXPECTED_EPOCHS: dict[str, tuple[int, str]] = {
    "lightgcn_yelp2018": (1000, "the config's 1000; the H100 run still rose at epoch 40"),
    "lightgcn_gowalla": (1000, "the config's 1000; the H100 run still rose at epoch 70"),
    "simgcl_yelp2018": (45, "H100 2026-11-24: best epoch 19, then patience 20"),
    "xsimgcl_yelp2018": (30, "H100 2026-11-24: stopped at 25"),
    "sgl_ed_yelp2018": (30, "H100 2026-11-24: best epoch 19, then patience 10"),
    "sgl_rw_yelp2018": (30, "H100 2026-11-24: best epoch 20, then patience 10"),
    "sgl_nd_yelp2018": (60, "guess: the H100 run still rose at epoch 24"),
    "ncl_yelp2018": (300, "the config's cap"),
    "directau_selfrec_yelp2018": (50, "fixed length, no early stop"),
    "directau_yelp2018": (300, "the config's cap"),
    "simplex_yelp2018": (100, "the config's cap"),
    "simplex_gowalla": (100, "the config's cap"),
    "mfccl_yelp2018": (100, "the config's cap"),
    "mfccl_gowalla": (100, "the config's cap"),
    "mixgcf_yelp2018": (1000, "the config's cap"),
    "ease_yelp2018": (0, "closed form: one fit"),
    "lightgcl_yelp2018": (100, "fixed length, no early stop"),
    "lightgcl_gowalla": (100, "fixed length, no early stop"),
    "lightgcnpp_yelp2018": (2000, "the config's cap"),
    "lightgcnpp_gowalla": (2000, "the config's cap"),
    "simgcl_gowalla": (60, "guess: yelp2018's stop and margin"),
}
#: the model of an experiment (its name up to the dataset) -> the ``bench_epoch.py`` variant
#: whose step it is priced at: its own, or the nearest in cost (all-node contrastive terms like
#: SGL's; one propagation like LightGCN's), times a factor
COST_BASIS: dict[str, tuple[str, float]] = {
    "lightgcn": ("lightgcn", 1.0),
    "simgcl": ("simgcl", 1.0),
    "xsimgcl": ("xsimgcl", 1.0),
    "sgl_ed": ("sgl-ed", 1.0),
    "sgl_rw": ("sgl-ed", 1.0),
    "sgl_nd": ("sgl-ed", 1.0),
    "ncl": ("sgl-ed", 1.0),
    "lightgcl": ("sgl-ed", 1.0),
    "directau_selfrec": ("lightgcn", 1.0),
    "directau": ("lightgcn", 1.0),
    "simplex": ("lightgcn", 1.0),
    "mfccl": ("lightgcn", 1.0),
    "mixgcf": ("lightgcn", 2.0),  # each positive's hop-mixed negative: a second gather pass
    "lightgcnpp": ("lightgcn", 1.0),
}
#: a yelp2018 epoch on one H100 without ``--timings``: the issue's targets (seconds)
TARGET_EPOCH_S = {"lightgcn": 1.0, "xsimgcl": 1.5, "simgcl": 2.5, "sgl-ed": 3.0}
#: batches of 2048 per epoch (training interactions: the data's READMEs)
BATCHES = {"yelp2018": math.ceil(1_237_259 / 2048), "gowalla": math.ceil(810_128 / 2048)}
#: seconds per row for the process, the data and the graph; per evaluation (yelp2018 on an H100
#: took 0.16-0.46 s in 2026-11-24's runs); a closed-form fit
STARTUP_S, EVAL_S, CLOSED_FORM_S = 30.0, 0.5, 120.0


def load_timings(paths: list[Path]) -> dict[str, float]:
    """Seconds per training batch by ``bench_epoch.py`` variant, from its output files (the JSON
    line of each variant's run: ``full_epoch_s`` where it timed a whole epoch, else
    ``epoch_estimate_s``, over ``batches_per_epoch``); the median where a variant ran more than
    once. Lines that are not such rows (the table, the tests' output) are skipped."""
    per_batch: dict[str, list[float]] = {}
    for row in (row for path in paths for row in read_jsonl(path)):
        epoch = row.get("full_epoch_s", row.get("epoch_estimate_s"))
        if "variant" in row and epoch and row.get("batches_per_epoch"):
            per_batch.setdefault(row["variant"], []).append(epoch / row["batches_per_epoch"])
    return {variant: statistics.median(v) for variant, v in per_batch.items()}


def _eval_every(experiment: str) -> int:
    """``trainer.eval_every`` of ``conf/experiment/<experiment>.yaml`` (the default's 5 if it
    sets none)."""
    import yaml

    conf = Path(__file__).resolve().parent.parent / "conf" / "experiment" / f"{experiment}.yaml"
    trainer = (yaml.safe_load(conf.read_text()) or {}).get("trainer") or {}
    return int(trainer.get("eval_every", 5))


def estimate(experiment: str, done_epochs: int, timings: dict[str, float]) -> float:
    """Seconds a run of ``experiment`` needs to finish from ``done_epochs``: start-up, its
    remaining expected epochs (:data:`EXPECTED_EPOCHS`) at its basis's seconds per batch
    (``timings``, else :data:`TARGET_EPOCH_S`) times its dataset's batches, and one evaluation
    per ``eval_every`` epochs."""
    epochs = EXPECTED_EPOCHS[experiment][0]
    if epochs == 0:
        return STARTUP_S + CLOSED_FORM_S
    model, dataset = experiment.rsplit("_", 1)
    variant, factor = COST_BASIS[model]
    per_batch = timings.get(variant, TARGET_EPOCH_S[variant] / BATCHES["yelp2018"])
    left = max(epochs - done_epochs, 1)
    epoch_s = per_batch * BATCHES[dataset] * factor
    return STARTUP_S + left * epoch_s + math.ceil(left / _eval_every(experiment)) * EVAL_S


def epochs_done(folder: Path) -> int:
    """The last epoch recorded in ``folder/metrics.jsonl`` (0 without one): where a resume
    starts from."""
    epochs = (row.get("epoch") for row in read_jsonl(folder / "metrics.jsonl"))
    return max((e for e in epochs if isinstance(e, int)), default=0)


def run_name(experiment: str, protocol: str, seed: int) -> str:
    return f"{experiment}-{protocol}-s{seed}"


def status(folder: Path) -> str:
    """``finished``, ``failed``, ``started`` (a checkpoint or records) or ``missing``."""
    results = folder / "results.json"
    if results.is_file():
        try:
            return json.loads(results.read_text()).get("status", "finished")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "failed"
    return "started" if (folder / "metrics.jsonl").is_file() else "missing"


def run_one(out: Path, experiment: str, protocol: str, seed: int, timeout: float | None) -> str:
    folder = out / run_name(experiment, protocol, seed)
    cmd = [
        sys.executable, "-m", "sslrec", f"+experiment={experiment}", f"seed={seed}",
        f"trainer.protocol={protocol}", "trainer.resume=true", "logger=none",
        f"hydra.run.dir={folder}",
    ]  # fmt: skip
    log = (out / f"{folder.name}.log").open("a")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # its last checkpoint stays; the next call resumes
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        return "interrupted"
    return status(folder) if proc.returncode == 0 else "failed"


def table(out: Path) -> str:
    """Markdown: one row per planned run that has records."""
    lines = [
        "| experiment | protocol | seed | status | epochs | best | Recall@20 | NDCG@20 "
        "| published |",
        "|---|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for experiment, protocol, seed in PLAN:
        folder = out / run_name(experiment, protocol, seed)
        state = status(folder)
        if state == "missing":
            continue
        recall = ndcg = "–"
        epochs = best = "–"
        if state == "finished":
            res = json.loads((folder / "results.json").read_text())
            recall, ndcg = f"{res['test']['recall@20']:.4f}", f"{res['test']['ndcg@20']:.4f}"
            epochs, best = res.get("epochs_run", "–"), res.get("best_epoch", "–")
        pub = PUBLISHED.get(experiment)
        published = f"{pub[0]:.4f} / {pub[1]:.4f}" if pub else "–"
        lines.append(
            f"| {experiment} | {protocol} | {seed} | {state} | {epochs} | {best} | {recall} | "
            f"{ndcg} | {published} |"
        )
    return "\n".join(lines) + "\n"


def machine() -> str:
    try:
        import torch

        dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        return f"{platform.node()}, {dev}, torch {torch.__version__}, {platform.platform()}"
    except Exception as exc:  # never fail the table over the machine line
        return f"unknown ({exc})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default="outputs/published")
    ap.add_argument("--budget", type=float, default=None, help="seconds this call may use")
    ap.add_argument("--only", nargs="+", default=None, help="experiments to run (default: all)")
    ap.add_argument(
        "--pack", type=Path, default=None, help="archive OUT_DIR here, less checkpoints/embeddings"
    )
    ap.add_argument(
        "--timings",
        type=Path,
        nargs="+",
        default=[],
        help="bench_epoch.py output on this GPU (yelp2018): the seconds per epoch of the estimates",
    )
    ap.add_argument(
        "--resume-from",
        type=Path,
        default=None,
        help="an earlier call's --pack archive: its finished runs are unpacked first",
    )
    ap.add_argument(
        "--no-fit",
        action="store_true",
        help="start rows in order even where their estimate exceeds the budget left",
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.resume_from is not None:
        if args.resume_from.is_file():
            carried = carry_finished(args.resume_from, out)
            print(f"carried {len(carried)} finished runs from {args.resume_from}", flush=True)
        else:
            print(f"no file {args.resume_from}: no earlier runs carried", flush=True)
    timings = load_timings([p for p in args.timings if p.is_file()])
    missing = [str(p) for p in args.timings if not p.is_file()]
    if missing:
        print(f"no file {', '.join(missing)}")
    if args.budget is not None and not args.no_fit:
        priced = ", ".join(
            f"{v} {timings[v] * BATCHES['yelp2018']:.2f} (measured)"
            if v in timings
            else f"{v} {target:.2f} (the issue's target)"
            for v, target in TARGET_EPOCH_S.items()
        )
        print(f"rows priced at s per yelp2018 epoch: {priced}", flush=True)
    start = time.monotonic()
    deferred: list[str] = []
    for experiment, protocol, seed in PLAN:
        if args.only and experiment not in args.only:
            continue
        folder = out / run_name(experiment, protocol, seed)
        if status(folder) in ("finished", "failed"):
            continue
        left = None if args.budget is None else args.budget - (time.monotonic() - start)
        if left is not None and left < 60:
            print("budget spent; the next call resumes here", flush=True)
            break
        cost = estimate(experiment, epochs_done(folder), timings)
        if left is not None and cost > left and not args.no_fit:
            deferred.append(f"{folder.name}: ~{cost:.0f} s needed, {left:.0f} s left")
            print(f"{folder.name} deferred: ~{cost:.0f} s > {left:.0f} s left", flush=True)
            continue
        print(f"{folder.name} ... (~{cost:.0f} s estimated)", flush=True)
        print(f"  {run_one(out, experiment, protocol, seed, left)}", flush=True)
    with (out / "machine.txt").open("a") as fh:
        fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {machine()}\n")
    later = ""
    if deferred:
        later = (
            "\nDeferred by the last call (estimated to need more than it had left; a run cut "
            "off at a lease's end is lost with its checkpoint):\n\n"
            + "".join(f"- {line}\n" for line in deferred)
        )
    (out / "results.md").write_text(
        f"Machines (one line per call):\n\n```\n{(out / 'machine.txt').read_text()}```\n\n"
        + table(out)
        + later
    )
    subprocess.run(
        [sys.executable, "-m", "sslrec", "report", str(out), "--out", str(out / "report"),
         "--split", "test"],
        check=False,
    )  # fmt: skip
    print(table(out))
    if args.pack is not None:
        pack(out, args.pack)
    return 0


#: what --pack leaves out: the per-run state too large to bring back from a lent GPU
UNPACKED = ("checkpoint.pt", "embeddings.npz")


def pack(out: Path, archive: Path) -> None:
    """``archive`` (.tar.gz): every file under ``out`` but :data:`UNPACKED`, paths relative
    to ``out``'s parent."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(out.rglob("*")):
            if path.is_file() and path.name not in UNPACKED and path != archive:
                tar.add(path, arcname=str(path.relative_to(out.parent)))
    print(f"packed {archive} ({archive.stat().st_size / 2**20:.1f} MiB)", flush=True)


#: the key of a run's log (``OUT_DIR/<run>.log``) among its files in :func:`carry_finished`
_LOG = ("<log>",)


def carry_finished(archive: Path, out: Path) -> list[str]:
    """Unpack into ``out`` the finished runs of ``archive`` (a :func:`pack` of another call's
    ``OUT_DIR``, whatever its name): each run folder whose ``results.json`` says finished, with
    its log, unless ``out`` has that run already; and the machine lines ``out/machine.txt``
    lacks. Unfinished runs, reports and members outside a run are left. Returns the runs
    carried, sorted."""
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict[tuple[str, ...], tarfile.TarInfo]] = {}
    machine: tarfile.TarInfo | None = None
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            path = PurePosixPath(member.name)
            if not member.isfile() or path.is_absolute() or ".." in path.parts:
                continue
            rel = path.parts[1:]  # below the packed OUT_DIR
            if rel == ("machine.txt",):
                machine = member
            elif len(rel) >= 2 and rel[0] != "report":
                runs.setdefault(rel[0], {})[rel[1:]] = member
            elif len(rel) == 1 and rel[0].endswith(".log"):
                runs.setdefault(rel[0][: -len(".log")], {})[_LOG] = member

        def read(member: tarfile.TarInfo) -> bytes:
            handle = tar.extractfile(member)
            return handle.read() if handle is not None else b""

        carried = []
        for run, files in sorted(runs.items()):
            results = files.get(("results.json",))
            if results is None or (out / run).exists():
                continue
            try:
                state = json.loads(read(results)).get("status", "finished")
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if state != "finished":
                continue
            for rel, member in files.items():
                target = out / f"{run}.log" if rel == _LOG else out.joinpath(run, *rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(read(member))
            carried.append(run)
        if machine is not None:
            have = (out / "machine.txt").read_text() if (out / "machine.txt").is_file() else ""
            lines = [ln for ln in read(machine).decode().splitlines() if ln and ln not in have]
            if lines:
                with (out / "machine.txt").open("a") as fh:
                    fh.write("".join(f"{ln}\n" for ln in lines))
    return carried


if __name__ == "__main__":
    sys.exit(main())
