#!/usr/bin/env bash
# LightGCN vs SGL-ED vs SimGCL vs XSimGCL on the bundled lastfm, default configs, validation
# protocol, seeds 1-3; two jobs at a time with one torch thread each. Then the summary table.
#   bash experiments/lastfm_ssl_comparison.sh [OUT_DIR]
set -euo pipefail
mkdir -p "${1:-multirun/lastfm_ssl_comparison}"
out=${1:-multirun/lastfm_ssl_comparison}
python -m sslrec --multirun model=sgl seed=1,2,3 threads=1 logger=none \
  hydra.sweep.dir="$out/sgl" > "$out.sgl.log" 2>&1 &
python -m sslrec --multirun model=lightgcn,simgcl,xsimgcl seed=1,2,3 threads=1 logger=none \
  hydra.sweep.dir="$out/others" > "$out.others.log" 2>&1
wait
python experiments/summarize.py "$out"
