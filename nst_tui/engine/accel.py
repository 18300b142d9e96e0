"""How a run uses its device: CUDA graphs, TF32, channels-last, bfloat16.

Chosen from the config and the device, in one place, so the single-run loop and
the batched sweep make the same choices.

- TF32 (GPU): convolutions on tensor cores with a 10-bit mantissa (PyTorch's
  default for cuDNN); their rounding is far below the optimizer's step noise. The
  loss matmuls (Grams, w2's covariances) stay float32: near convergence a Gram
  difference is a small difference of large sums, and w2's tr S + tr S_s -
  2 tr sqrt(...) cancels to near 0, where TF32's rounding would be the result
  (noisy, or below 0). The network has no matmul of its own, so turning TF32 off
  for matmuls costs only the Grams' share of the work.
- channels-last (GPU): cuDNN's fast convolution kernels on tensor cores read and
  write NHWC; the network's weights and the canvas fed to it use that layout.
- bf16 (opt-in, `precision = "bf16"`): the network runs under autocast in
  bfloat16; features are cast back to float32 before Grams and losses, and the
  canvas and Adam's state stay float32. Its quality cost is measured in
  benchmarks/, not assumed.
- CUDA graphs (`cuda_graphs`, GPU, Adam): see engine/graphs.py; never for a step that
  waits for the device (step_waits).
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
        """The tensor-core precision the convolutions run in (most of the work; the Grams
        run in float32 under tf32): which datasheet peak a run's TFLOP/s is a fraction of."""
        return "bf16" if self.bf16 else "tf32" if self.tf32 else "fp32"


def step_waits(cfg: Config) -> str:
    """Why an Adam step of `cfg` waits for the device ("" when it never does): a CUDA graph
    cannot capture such a step, so none is tried.

    torch.linalg's eigvalsh reads its solver's `info` on the host, to raise on a failed
    decomposition: a sync. The histogram term's argsort and scatter_ are device kernels
    that read nothing back, so it is captured; tests/unit/test_cuda.py checks both claims
    on a GPU (test_only_w2_steps_wait_for_the_device)."""
    if cfg.style_stats == "w2":
        return "w2's eigvalsh reads its result on the host"
    return ""


def choose(cfg: Config, device: torch.device) -> Accel:
    cuda = device.type == "cuda"
    return Accel(
        cuda_graphs=cuda and cfg.cuda_graphs and cfg.optimizer == "adam" and not step_waits(cfg),
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
        out: dict[int, torch.Tensor] = extractor(canvas)
    if accel.bf16:
        out = {i: f.float() for i, f in out.items()}
    return out


def prepare_extractor(extractor: torch.nn.Module, accel: Accel) -> torch.nn.Module:
    apply_backend_flags(accel)
    if accel.channels_last:
        extractor = extractor.to(memory_format=torch.channels_last)
    return extractor


def apply_backend_flags(accel: Accel) -> None:
    """Process-wide switches: set only for GPU runs, which all want them alike."""
    if accel.tf32:
        torch.backends.cudnn.allow_tf32 = True
        # Host-side flags, read when a matmul is launched: no device wait.
        torch.backends.cuda.matmul.allow_tf32 = False  # the losses' matmuls: see above
        # cuDNN times its algorithms for each new input shape, then reuses the fastest. A
        # shape is new at each scale of a multi-scale run and each time a batch loses a
        # cell (a batch of n cells goes through up to n shapes); each costs one timing of
        # every layer, a fraction of a second, against runs of hundreds of steps per shape.
        torch.backends.cudnn.benchmark = True
