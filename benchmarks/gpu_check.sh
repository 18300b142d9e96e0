#!/usr/bin/env bash
# The one prepared script for a lent GPU (the device tool: 15 minutes for a whole task).
# It checks the CUDA path, then measures speed, writing under $OUT (default: ./gpu-out).
# Budget: about 6-8 minutes on an H200; every step has its own timeout, so a stuck
# step costs its limit and the rest still runs.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"
pip install -q -e '.[test]' > "$OUT/install.log" 2>&1 || tail -5 "$OUT/install.log"
timeout 120 python -m pytest -q tests/unit/test_cuda.py tests/unit/test_fast_path.py \
  > "$OUT/cuda-tests.txt" 2>&1
tail -5 "$OUT/cuda-tests.txt"
DATE=$(date +%F)
timeout 300 python benchmarks/speed.py --device cuda --iterations 1000 --repeats 3 \
  --json "$OUT/cuda-$DATE.json" 2>&1 | tee "$OUT/speed.txt"
timeout 90 python benchmarks/bf16_quality.py --device cuda --size 256 --iterations 1000 \
  --out "$OUT" > "$OUT/bf16.txt" 2>&1
tail -3 "$OUT/bf16.txt"
