"""How a run uses its device: CUDA graphs, TF32, channels-last, bfloat16.

Chosen from the config and the device, in one place, so the single-run loop and
the batched sweep make the same choices.

- TF32 (GPU): matmuls (the Gram matrices) and convolutions on tensor cores with a
  10-bit mantissa; PyTorch already allows it for cuDNN convolutions by default.
  Losses are means over many products, far less precise needs than the
  optimizer's step noise.
- channels-last (GPU): cuDNN's fast convolution kernels on tensor cores read and
  write NHWC; the network's weights and the canvas fed to it use that layout.
- bf16 (opt-in, `precision = "bf16"`): the network runs under autocast in
  bfloat16; features are cast back to float32 before Grams and losses, and the
  canvas and Adam's state stay float32. Its quality cost is measured in
  benchmarks/, not assumed.
- CUDA graphs (`cuda_graphs`, GPU, Adam): see engine/graphs.py.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from nst_tui.config import Config


@dataclass(frozen=True)
class Accel:
    cuda_graphs: bool = False
    channels_last: bool = False
    tf32: bool = False
    bf16: bool = False
    device_type: str = "cpu"

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """The context the network's forward runs in."""
        if not self.bf16:
            return contextlib.nullcontext()
        # No weight-cast cache: a CUDA graph must not capture casts cached by an earlier
        # forward (PyTorch's CUDA graph notes), and each forward is its own autocast
        # region anyway, so the cache would never be reused.
        return torch.autocast(self.device_type, dtype=torch.bfloat16, cache_enabled=False)

    def describe(self) -> str:
        on = [
            name
            for name, flag in (
                ("cuda graphs", self.cuda_graphs),
                ("tf32", self.tf32),
                ("channels-last", self.channels_last),
                ("bf16", self.bf16),
            )
            if flag
        ]
        return ", ".join(on) or "plain fp32"

    @property
    def arithmetic(self) -> str:
        """The tensor-core precision the convolutions and Grams run in: which datasheet
        peak a run's TFLOP/s is a fraction of."""
        return "bf16" if self.bf16 else "tf32" if self.tf32 else "fp32"


def choose(cfg: Config, device: torch.device) -> Accel:
    cuda = device.type == "cuda"
    return Accel(
        cuda_graphs=cuda and cfg.cuda_graphs and cfg.optimizer == "adam",
        channels_last=cuda,
        tf32=cuda,
        bf16=cfg.precision == "bf16",
        device_type=device.type,
    )


def features(
    extractor: torch.nn.Module, canvas: torch.Tensor, accel: Accel
) -> dict[int, torch.Tensor]:
    """The extractor's taps for `canvas` in `accel`'s layout and precision; always float32
    out, so Grams and losses are computed alike in every mode."""
    if accel.channels_last:
        canvas = canvas.contiguous(memory_format=torch.channels_last)
    with accel.autocast():
        out = extractor(canvas)
    if accel.bf16:
        out = {i: f.float() for i, f in out.items()}
    return out


def prepare_extractor(extractor: torch.nn.Module, accel: Accel) -> torch.nn.Module:
    apply_backend_flags(accel)
    if accel.channels_last:
        extractor = extractor.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return extractor


def apply_backend_flags(accel: Accel) -> None:
    """Process-wide switches: set only for GPU runs, which all want them alike."""
    if accel.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed shapes per run: autotune once
