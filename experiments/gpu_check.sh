#!/usr/bin/env bash
# One call on a lent GPU (about 4-5 minutes): the GPU tests, then the GPU epoch benchmark.
#   bash experiments/gpu_check.sh [OUT_DIR]
# 1. tests/test_gpu.py (no host sync inside a training step of any model, at a batch of 32 and
#    of 2,048; a seeded run repeats bit for bit; the device sampler, the tiled InfoNCE kernel
#    on the device, a short CLI run) and the CUDA cases of the kernel tests;
# 2. experiments/bench_epoch.py --device cuda on yelp2018: one full epoch of LightGCN,
#    XSimGCL, SimGCL and SGL-ED through Trainer.train_epoch (targets on one H100: LightGCN
#    <= 1.0 s, XSimGCL <= 1.5, SimGCL <= 2.5, SGL-ED <= 3.0), and SimGCL with its three
#    encoders as one [N, 3d] product per layer (model.fused=true: slower on the CPU, where the
#    wide operand leaves the caches; whether it wins on a GPU decides its default there; last,
#    so that a timeout cuts only it);
# 3. one full-ranking evaluation of yelp2018 on the device;
# 4. SimGCL's three encoders in each layout (separate, shared first product, wide), interleaved:
#    whether shared or wide should be SimGCL's default on a GPU;
# 5. each model's step eager and replayed from a captured CUDA graph (experiments/
#    bench_cuda_graph.py): whether the trainer should capture its step on a GPU;
# 6. a batch's ranking scores from one gather or two (experiments/bench_gather.py): whether
#    SMALL_GATHER_IDS's rule (two at a batch of 2,048) launches fewer kernels and runs faster.
# Everything it prints goes to OUT_DIR (default outputs/gpu_check) with the machine: seven
# files, within what the device tool brings back from $OUT.
# On the tool's bare machine first run experiments/gpu_pack.sh HERE and carry .gpu: the image
# lacks Hydra and ../shared/data does not travel (experiments/gpu_env.sh, sourced below).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-outputs/gpu_check}
mkdir -p "$out"
# shellcheck source=experiments/gpu_env.sh
source experiments/gpu_env.sh || exit 1
{ date -u; uname -a; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; } \
  > "$out/machine.txt" 2>&1
rc=0
timeout 180 python -m pytest -q tests/test_gpu.py tests/test_tiled_infonce.py -k "cuda or gpu or device" \
  2>&1 | tee "$out/tests.txt" | tail -5 || rc=1
timeout 150 python experiments/bench_epoch.py --dataset yelp2018 --device cuda --full-epoch \
  --batches 20 --variants lightgcn xsimgcl simgcl sgl-ed simgcl-fused 2>&1 | tee "$out/bench_epoch.txt" || rc=1
timeout 40 python experiments/bench_evaluation.py --dataset yelp2018 --device cuda --repeats 3 \
  2>&1 | tee "$out/bench_evaluation.txt" | tail -3 || rc=1
timeout 40 python experiments/bench_views.py --dataset yelp2018 --device cuda --repeats 10 \
  2>&1 | tee "$out/bench_views.txt" | tail -5 || rc=1
timeout 90 python experiments/bench_cuda_graph.py --dataset yelp2018 --device cuda --steps 40 \
  2>&1 | tee "$out/bench_cuda_graph.txt" | tail -8 || rc=1
timeout 30 python experiments/bench_gather.py --device cuda \
  2>&1 | tee "$out/bench_gather.txt" || rc=1
echo "gpu_check: files in $out (exit $rc)"
exit $rc
