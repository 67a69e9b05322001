#!/usr/bin/env bash
# LightGCN vs SGL-ED vs SimGCL vs XSimGCL on the bundled lastfm: default configs, validation
# protocol, seeds 1-3 (the +sweep=sgl_vs_simgcl preset, 12 jobs), two jobs at a time with one
# torch thread each, every run logged offline to wandb in one group; then the report
# (OUT_DIR/report: report.md, report.csv, plots).
#   bash experiments/lastfm_ssl_comparison.sh [OUT_DIR]
set -euo pipefail
out=${1:-multirun/lastfm_ssl_comparison}
python -m sslrec --multirun +sweep=sgl_vs_simgcl hydra/launcher=joblib_local \
  hydra.sweep.dir="$out"
python -m sslrec.report "$out" --out "$out/report" --split test
