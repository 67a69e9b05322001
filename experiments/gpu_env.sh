# Sourced on a lent GPU machine (by gpu_check.sh and reproduce_published.sh): makes sslrec
# importable there from what experiments/gpu_pack.sh packed into .gpu/ and the call carried.
# - sslrec itself: the repository root on PYTHONPATH (no install: the image has no index).
# - Hydra, omegaconf, antlr4: the carried wheels, installed into /tmp/site if `import hydra`
#   fails (the device image lacks them).
# - the datasets: SSLREC_DATA_ROOT=.gpu/data unless it is set or ../shared/data exists.
# Elsewhere (Hydra installed, no .gpu/) it changes nothing but PYTHONPATH.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
if ! python -c "import hydra" 2>/dev/null; then
  if ! ls "$root"/.gpu/wheels/*.whl >/dev/null 2>&1; then
    echo "gpu_env: Hydra is not installed and no wheels were carried: run" \
      "experiments/gpu_pack.sh here and carry .gpu" >&2
    return 1
  fi
  python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$root"/.gpu/wheels/*.whl || return 1
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
if [ -z "${SSLREC_DATA_ROOT:-}" ] && [ ! -d "$root/../shared/data" ] && [ -d "$root/.gpu/data" ]; then
  export SSLREC_DATA_ROOT="$root/.gpu/data"
fi
