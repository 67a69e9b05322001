#!/usr/bin/env bash
# The published comparisons on the public LightGCN/SGL splits, resumable across GPU slots:
#   bash experiments/reproduce_published.sh [OUT_DIR] [--budget SECONDS] [--only NAME ...]
#     [--timings BENCH_EPOCH.txt] [--no-fit] [--pack FILE.tar.gz]
# Runs the missing rows in order of value (LightGCN yelp2018 and gowalla to convergence, then
# 3 seeds of SimGCL, XSimGCL and SGL-ED under the paper and the validation protocol, then the
# model zoo), each with trainer.resume=true so a cut-off run continues where it stopped (under
# --budget only the rows whose estimated cost fits what is left are started); writes
# OUT_DIR/results.md (every row against its published figure, with the machine) and a report.
# On the project's 2-core CPU one SGL epoch on yelp2018 takes minutes: run this on a GPU.
# On the device tool's bare machine carry .gpu (experiments/gpu_pack.sh; gpu_env.sh below).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=experiments/gpu_env.sh
source experiments/gpu_env.sh
exec python experiments/reproduce_published.py "$@"
