"""Reports on the dashboard: the table and plots logged (offline) to the sweep's wandb group."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import wandb
import yaml

from sslrec.report import build_report
from sslrec.report.__main__ import main
from sslrec.report.dashboard import sweep_group, table_rows
from tests.test_report import SEEDS, _config, make_run


def _sweep(root: Path) -> Path:
    for seed in SEEDS:
        make_run(root / f"{seed}-lightgcn", _config("LightGCN", seed), 0.2 + seed / 100)
        make_run(root / f"{seed}-simgcl", _config("SimGCL", seed, ssl_weight=0.1), 0.22)
    return root


def test_table_rows_match_the_report(tmp_path):
    report = build_report([_sweep(tmp_path / "multirun" / "2026-01-02" / "03-04-05")])
    columns, rows = table_rows(report)
    assert columns[:3] == ["configuration", "model", "seeds"]
    assert [r[0] for r in rows] == [row.label for row in report.rows]
    assert rows[0][columns.index("recall@20 mean")] == report.rows[0].mean["recall@20"]


def test_sweep_group_follows_the_runs_rule(tmp_path):
    sweep = tmp_path / "multirun" / "2026-01-02" / "03-04-05"
    sweep.mkdir(parents=True)
    assert sweep_group(sweep) == "sslrec-2026-01-02_03-04-05"
    (sweep / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": {"sweep": "losses"}}}})
    )
    assert sweep_group(sweep) == "losses-2026-01-02_03-04-05"
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"logger": {"group": "mine"}}))
    assert sweep_group(sweep) == "mine"


def test_report_cli_logs_table_and_plots_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep = _sweep(tmp_path / "multirun" / "2026-01-02" / "03-04-05")
    out = tmp_path / "report"
    assert main([str(sweep), "--out", str(out), "--wandb"]) == 0
    assert "logged to wandb (offline), group sslrec-2026-01-02_03-04-05" in capsys.readouterr().out
    # in this process wandb's service may still be writing the offline file after finish()
    # (wandb 0.31 wrote only its header on a busy machine); teardown waits for it, as the
    # end of the `sslrec report --wandb` process does
    wandb.teardown()
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    data = run_file.read_bytes()
    assert b"sslrec-2026-01-02_03-04-05" in data and b"report" in data
    assert b"curve_recall@20" in data  # a plot, as an image


def test_multirun_with_wandb_logs_its_report_to_the_sweeps_group(tiny_dataset_dir, tmp_path):
    """A multirun with ``logger=wandb`` ends by writing ``SWEEP_DIR/report`` and logging it
    (offline) as one wandb run in the group its jobs were logged to
    (:func:`sslrec.multirun._report_to_wandb`)."""
    sweep = tmp_path / "multirun" / "2026-01-02" / "03-04-05"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sslrec",
            "--multirun",
            "dataset=custom",
            f"dataset.path={tiny_dataset_dir}",
            "model=mf",
            "seed=1,2",
            "trainer.epochs=2",
            "trainer.eval_every=1",
            "trainer.batch_size=64",
            "trainer.progress=false",
            "threads=1",
            "logger=wandb",
            "logger.mode=offline",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    group = "sslrec-2026-01-02_03-04-05"
    for job in ("0", "1"):  # the jobs' own offline runs carry the group
        (job_file,) = (sweep / job / "wandb").glob("offline-run-*/run-*.wandb")
        assert group.encode() in job_file.read_bytes()
    report = sweep / "report"
    assert f"sweep report: {report}, logged to wandb group {group}" in proc.stdout
    assert "| mf | 2 |" in (report / "report.md").read_text()  # one row, both seeds
    assert (report / "curve_recall@20.png").is_file()
    (run_file,) = (report / "wandb").glob("offline-run-*/run-*.wandb")
    data = run_file.read_bytes()
    assert group.encode() in data and b"report-" + group.encode() in data
    assert b"report" in data and b"curve_recall@20" in data  # the table and a plot
