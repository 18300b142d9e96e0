#!/usr/bin/env bash
# The one prepared script for a lent GPU (the device tool: 15 minutes for a whole task).
# First, here: `bash benchmarks/prepare_gpu_bundle.sh`; then run this there with carry
# [".gpu"]. It checks the CUDA path, then measures speed, writing under $OUT. Every step
# has its own timeout, most important first, so a stuck step costs its limit and the
# rest still runs; at most 9.5 minutes in all (limits: 60 + 90 + 240 + 120 + 60 s).
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
export NST_TUI_CAFFE_WEIGHTS=$PWD/.gpu/vgg16-caffe-fp16.pt
PY=python3
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} 2>&1 | tee "$OUT/device.txt"
# Issue 30's checks first (captures that fail, memory given back, w2 under TF32), alone.
ISSUE30="cuda_as_it_found_it or wait_for_the_device or gives_its_graph_back"
ISSUE30="$ISSUE30 or gives_each_scale_back or not_negative_with_tf32"
timeout 60 $PY -m pytest -q -p no:cacheprovider tests/unit/test_cuda.py -k "$ISSUE30" \
  > "$OUT/cuda-issue30.txt" 2>&1
tail -15 "$OUT/cuda-issue30.txt"
timeout 90 $PY -m pytest -q -p no:cacheprovider tests/unit/test_cuda.py -k "not ($ISSUE30)" \
  tests/unit/test_fast_path.py tests/unit/test_flops.py > "$OUT/cuda-tests.txt" 2>&1
tail -15 "$OUT/cuda-tests.txt"
DATE=$(date +%F)
timeout 240 $PY benchmarks/speed.py --device cuda --iterations 1000 --repeats 3 \
  --skip-streaming --json "$OUT/cuda-$DATE.json" 2>&1 | tee "$OUT/speed.txt"
# The dashboard needs Textual: installed from the bundle (no index on the GPU box).
$PY -m pip install -q --no-index --find-links .gpu/wheels textual > "$OUT/pip.txt" 2>&1
if $PY -c "import textual" 2>/dev/null; then
  # Each mode in a fresh process (CUDA initialised each time): 2 rounds of 4 modes.
  timeout 120 $PY benchmarks/speed.py --device cuda --sizes --memory-sizes --skip-sweep \
    --streaming-iterations 2500 --repeats 2 --json "$OUT/cuda-$DATE-streaming.json" \
    2>&1 | tee "$OUT/streaming.txt"
else
  echo "no textual: streaming not measured" | tee "$OUT/streaming.txt"
fi
timeout 60 $PY benchmarks/bf16_quality.py --device cuda --size 256 --iterations 1000 \
  --out "$OUT" > "$OUT/bf16.txt" 2>&1
tail -3 "$OUT/bf16.txt"
