#!/usr/bin/env bash
# Issue 10's GPU figures as one prepared run for the device machine (under 8 minutes): the mBERT-shaped throughput
# table at full size, seed ensembles (4 and 10 seeds, eager and SDPA) included, appended to BENCHMARKS.md, and the
# one-trial figures recorded for `estimate: auto` (sweeper/throughput.json); both copied to $OUT.
#
# The device's python3 holds torch, transformers, pyarrow, numpy and pyyaml but not pydantic or datasets, and
# reaches no package index: fetch their wheels here first (into .gpu-wheels/, ignored by git), then carry them.
#   here:    benchmarks/gpu_check.sh --fetch
#   device:  run(command="benchmarks/gpu_check.sh", carry=[".gpu-wheels"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fetch" ]; then
  python3 -m pip download --quiet --dest .gpu-wheels --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --no-deps pydantic==2.14.4 pydantic-core==2.50.5 annotated-types \
    typing-inspection datasets==5.2.0 "dill<0.4.2" "multiprocess<0.70.20"
  ls .gpu-wheels
  exit 0
fi
python3 -m pip install --quiet --no-deps --no-index .gpu-wheels/*.whl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 460 python3 benchmarks/bench_mbert_throughput.py --records --updates 10
out="${OUT:-/tmp/gpu-check}"
mkdir -p "$out"
cp BENCHMARKS.md sweeper/throughput.json "$out/"
