"""Reports on the dashboard: the table and plots logged (offline) to the sweep's wandb group."""

from __future__ import annotations

from pathlib import Path

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
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    data = run_file.read_bytes()
    assert b"sslrec-2026-01-02_03-04-05" in data and b"report" in data
    assert b"curve_recall@20" in data  # a plot, as an image
