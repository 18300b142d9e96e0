#!/usr/bin/env bash
# The one prepared script for a lent GPU (the device tool: 15 minutes for a whole task).
# First, here: `bash benchmarks/prepare_gpu_bundle.sh`; then run this there with carry
# [".gpu"]. It checks the CUDA path, then measures speed, writing under $OUT. Every step
# has its own timeout, so a stuck step costs its limit and the rest still runs; about
# 7 minutes on an H200 in all.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
export NST_TUI_CAFFE_WEIGHTS=$PWD/.gpu/vgg16-caffe-fp16.pt NST_TUI_IMAGES=$PWD/.gpu/images
PY=python3
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} 2>&1 | tee "$OUT/device.txt"
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/unit/test_cuda.py \
  tests/unit/test_fast_path.py tests/unit/test_flops.py > "$OUT/cuda-tests.txt" 2>&1
tail -15 "$OUT/cuda-tests.txt"
streaming=--skip-streaming  # the relay needs textual, which the GPU image may lack
$PY -c "import textual" 2>/dev/null && streaming=
DATE=$(date +%F)
timeout 270 $PY benchmarks/speed.py --device cuda --iterations 1000 --repeats 3 \
  $streaming --json "$OUT/cuda-$DATE.json" 2>&1 | tee "$OUT/speed.txt"
timeout 90 $PY benchmarks/bf16_quality.py --device cuda --size 256 --iterations 1000 \
  --out "$OUT" > "$OUT/bf16.txt" 2>&1
tail -3 "$OUT/bf16.txt"
