"""The published comparisons on the LightGCN/SGL splits, resumable across short GPU slots.

    python experiments/reproduce_published.py OUT_DIR [--budget SECONDS] [--only NAME ...]
        [--pack FILE.tar.gz]

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
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

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
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    for experiment, protocol, seed in PLAN:
        if args.only and experiment not in args.only:
            continue
        if status(out / run_name(experiment, protocol, seed)) in ("finished", "failed"):
            continue
        left = None if args.budget is None else args.budget - (time.monotonic() - start)
        if left is not None and left < 60:
            print("budget spent; the next call resumes here", flush=True)
            break
        print(f"{run_name(experiment, protocol, seed)} ...", flush=True)
        print(f"  {run_one(out, experiment, protocol, seed, left)}", flush=True)
    with (out / "machine.txt").open("a") as fh:
        fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {machine()}\n")
    (out / "results.md").write_text(
        f"Machines (one line per call):\n\n```\n{(out / 'machine.txt').read_text()}```\n\n"
        + table(out)
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


if __name__ == "__main__":
    sys.exit(main())
