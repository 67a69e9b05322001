#!/usr/bin/env bash
# Run HERE, before a lent GPU's first call: packs what its bare machine lacks into .gpu/ (ignored
# by git, so it travels only when the call carries it), then prints that call.
#   bash experiments/gpu_pack.sh [DATA_ROOT] [--published EARLIER.tar.gz]
#   (DATA_ROOT default: $SSLREC_DATA_ROOT or ../shared/data)
# - .gpu/wheels: Hydra and its two dependencies as wheels. The device image has torch, PyG,
#   numpy, scipy, tqdm, PyYAML and matplotlib but not these, and it reaches no package index
#   (its packages: the tool library's device/KINDS.md). Pure-Python wheels: any Python 3 there.
# - .gpu/data: yelp2018 and gowalla (about 14 MB): ../shared/data does not travel.
# - .gpu/published.tar.gz: with --published, the archive an earlier lease's reproduction packed
#   (brought back from its $OUT): reproduce_published.py --resume-from unpacks its finished runs,
#   so this lease goes on from there instead of redoing them.
# On the device, experiments/gpu_env.sh (sourced by gpu_check.sh and reproduce_published.sh)
# installs the wheels into /tmp/site and points SSLREC_DATA_ROOT at .gpu/data.
set -euo pipefail
cd "$(dirname "$0")/.."
data_root=${SSLREC_DATA_ROOT:-../shared/data}
published=""
while [ $# -gt 0 ]; do
  case $1 in
    --published) published=$(realpath "$2"); shift 2 ;;
    *) data_root=$1; shift ;;
  esac
done
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"
rm -rf .gpu && mkdir -p .gpu/wheels .gpu/data
# The versions installed here, which the test suite ran with. antlr4-python3-runtime 4.9.3 is
# published as a source archive only: pip builds its (pure-Python) wheel here.
versions=$(python - <<'EOF'
from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in ("hydra-core", "omegaconf", "antlr4-python3-runtime")))
EOF
)
# shellcheck disable=SC2086
python -m pip wheel -q --no-deps --wheel-dir .gpu/wheels $versions
for name in yelp2018 gowalla; do
  cp -r "$data_root/$name" .gpu/data/
done
python - <<'EOF'
import zipfile
from pathlib import Path

for wheel in sorted(Path(".gpu/wheels").glob("*.whl")):
    tags = wheel.stem.split("-")[-3:]
    if tags[1:] != ["none", "any"]:  # the device runs another Python: only pure wheels travel
        raise SystemExit(f"{wheel.name} is not a pure-Python wheel")
    zipfile.ZipFile(wheel).testzip()
EOF
if [ -n "$published" ]; then
  tar -tzf "$published" > /dev/null  # a readable archive, or stop here
  cp "$published" .gpu/published.tar.gz
fi
du -sh .gpu/*
cat <<'EOF'
Packed. One device call (run tool) does both, within its 600 s: carry [".gpu"], timeout_s 600,
  bash experiments/gpu_check.sh $OUT/gpu_check; bash experiments/reproduce_published.sh
  /tmp/published --resume-from .gpu/published.tar.gz --budget $((540 - SECONDS))
  --timings $OUT/gpu_check/bench_epoch.txt --pack $OUT/published.tar.gz
(one line). gpu_check's seven files and the archive come back: keep the archive, the next
gpu_pack.sh --published takes it and its finished runs are not run again. The checkpoints
cannot come back (a yelp2018 LightGCN checkpoint is ~71 MB, the tool returns 16 MiB a file),
so a later lease starts the cut-off runs again. reproduce_published.py therefore starts only
the rows whose estimated cost (at the seconds per epoch gpu_check just measured) fits the
budget left, and defers the rest: LightGCN's 1,000 epochs need a lease of their own.
EOF
