"""How a run uses its device: CUDA graphs, TF32, channels-last, packed convs, bfloat16.

Chosen from the config and the device, in one place, so the single-run loop and
the batched sweep make the same choices.

- TF32 (GPU): convolutions on tensor cores with a 10-bit mantissa (PyTorch's
  default for cuDNN); their rounding is far below the optimizer's step noise. The
  loss matmuls (Grams, w2's covariances) stay float32: near convergence a Gram
  difference is a small difference of large sums, and w2's tr S + tr S_s -
  2 tr sqrt(...) cancels to near 0, where TF32's rounding would be the result
  (noisy, or below 0). The network has no matmul of its own, so turning TF32 off
  for matmuls costs only the Grams' share of the work.
- channels-last (GPU, and the CPU when its convs are packed): cuDNN's tensor-core
  kernels and oneDNN's CPU kernels read and write NHWC; the network's weights and the
  canvas fed to it use that layout, so no activation is reordered inside the loop.
- packed convs (CPU, engine/packed.py): each conv's weights laid out for oneDNN once
  per input shape instead of at every call, forward and backward.
- bf16 (`precision`: "auto" picks it where the device has fast bf16, see
  `resolve_precision`): the network's weights are cast to bfloat16 once, when the
  network is built, and the canvas is cast at the first conv; the taps are cast back
  to float32 before Grams and losses, and the canvas and the optimizer's state stay
  float32. No autocast: nothing is cast per step, and a CUDA graph captures plain
  bf16 weights (an autocast cache would have to be off under capture). Its quality
  cost is measured in benchmarks/, not assumed.
- CUDA graphs (`cuda_graphs`, GPU, Adam): see engine/graphs.py; never for a step that
  waits for the device (step_waits).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from nst_tui.config import Config
from nst_tui.engine import packed as packed_convs


@dataclass(frozen=True)
class Accel:
    cuda_graphs: bool = False
    channels_last: bool = False
    tf32: bool = False
    bf16: bool = False
    device_type: str = "cpu"
    packed: bool = False  # CPU: convs with their weights packed for oneDNN once
    precision_reason: str = ""  # why this precision (run.json's precision_reason)

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    def describe(self) -> str:
        on = [
            name
            for name, flag in (
                ("cuda graphs", self.cuda_graphs),
                ("tf32", self.tf32),
                ("channels-last", self.channels_last),
                ("packed convs", self.packed),
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


# ---- precision: "auto" -------------------------------------------------------------------

# /proc/cpuinfo's flags for the CPU's bf16 units: AMX's tile multiply in bf16 (Sapphire
# Rapids and later) and AVX512-BF16's dot products (Cooper Lake, Sapphire Rapids and later;
# AMD Zen 4 and later).
AMX_BF16, AVX512_BF16 = "amx_bf16", "avx512_bf16"
CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def cpu_bf16_units() -> frozenset[str]:
    """Which of AMX_BF16 and AVX512_BF16 this CPU has: /proc/cpuinfo's flags where there
    is one (Linux), else what torch's own CPU probe says. Tests replace this function to
    simulate another CPU."""
    wanted = {AMX_BF16, AVX512_BF16}
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(wanted & set(line.partition(":")[2].split()))
    except OSError:
        pass
    probe = torch.cpu
    found = set()
    if getattr(probe, "_is_amx_tile_supported", lambda: False)():
        found.add(AMX_BF16)
    if getattr(probe, "_is_avx512_bf16_supported", lambda: False)():
        found.add(AVX512_BF16)
    return frozenset(found)


@functools.cache
def cpu_vendor() -> str:
    """/proc/cpuinfo's vendor_id (GenuineIntel, AuthenticAMD), "" where it cannot be read.
    Tests replace this function to simulate another CPU."""
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


def fast_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether `device` runs bf16 convolutions faster than fp32, and why (or why not).

    CPU, by measurement (benchmarks/README.md, "bf16 and auto"): AMX's bf16 tiles
    (amx_bf16): 2-5x over fp32 on this project's Xeon. AVX512-BF16 on an AMD EPYC (Zen 4;
    no AMX): 1.6-1.7x at 128 and 256 px. AVX512-BF16 on an Intel CPU without AMX: slower
    than fp32 (oneDNN capped at AVX512_CORE_BF16 on the Xeon: 0.83x), so not there. CUDA:
    compute capability 8.0 or more (Ampere and later: bf16 tensor cores)."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        name = torch.cuda.get_device_name(device)
        if (major, minor) >= (8, 0):
            return True, f"{name} (compute capability {major}.{minor}) has bf16 tensor cores"
        return False, f"{name} (compute capability {major}.{minor}) has no bf16 tensor cores"
    if device.type == "cpu":
        units = cpu_bf16_units()
        if AMX_BF16 in units:
            return True, "this CPU has AMX bf16 matrix units (amx_bf16)"
        if AVX512_BF16 in units and cpu_vendor() == "AuthenticAMD":
            return True, "this AMD CPU has AVX512-BF16 (avx512_bf16; measured faster on Zen 4)"
        if AVX512_BF16 in units:
            return False, "this CPU has AVX512-BF16 but no AMX: bf16 measured no faster there"
        return False, "this CPU has no bf16 units (neither amx_bf16 nor avx512_bf16)"
    return False, f"no bf16 fast path known for {device.type}"


def resolve_precision(requested: str, device: torch.device) -> tuple[str, str]:
    """The precision a run computes in (fp32 or bf16) for the config's `precision`, and
    why: run.json's precision and precision_reason."""
    if requested in ("fp32", "bf16"):
        return requested, f"precision = {requested!r} in the config"
    fast, why = fast_bf16(device)
    return ("bf16" if fast else "fp32"), f"auto: {why}"


def choose(cfg: Config, device: torch.device) -> Accel:
    cuda = device.type == "cuda"
    precision, why = resolve_precision(cfg.precision, device)
    bf16 = precision == "bf16"
    # CPU: packed convs in channels-last wherever oneDNN's ops are there to pack them;
    # without packing, channels-last is left off (the plain CPU convolution reorders).
    dtype = torch.bfloat16 if bf16 else torch.float32
    packed = device.type == "cpu" and packed_convs.available(dtype)
    return Accel(
        cuda_graphs=cuda and cfg.cuda_graphs and cfg.optimizer == "adam" and not step_waits(cfg),
        channels_last=cuda or packed,
        tf32=cuda,
        bf16=bf16,
        device_type=device.type,
        packed=packed,
        precision_reason=why,
    )


def features(
    extractor: torch.nn.Module, canvas: torch.Tensor, accel: Accel, recompute: bool = False
) -> dict[int, torch.Tensor]:
    """The extractor's taps for `canvas` in `accel`'s layout and precision; always float32
    out, so Grams and losses are computed alike in every mode. `recompute`: block by block
    in the backward pass (FeatureExtractor.forward)."""
    if accel.channels_last:
        canvas = canvas.contiguous(memory_format=torch.channels_last)
    out: dict[int, torch.Tensor] = (
        extractor(canvas, recompute=True) if recompute else extractor(canvas)
    )
    if accel.bf16:
        out = {i: f.float() for i, f in out.items()}
    return out


def prepare_extractor(extractor: torch.nn.Module, accel: Accel) -> torch.nn.Module:
    """Lay the network out, cast and pack it for `accel`, once (in place)."""
    apply_backend_flags(accel)
    if accel.channels_last:
        extractor = extractor.to(memory_format=torch.channels_last)
    cast, pack = getattr(extractor, "cast", None), getattr(extractor, "pack", None)
    if accel.bf16:
        if cast is None:
            raise TypeError("bf16 needs a network that can cast its convs (FeatureExtractor)")
        cast(torch.bfloat16)
    if accel.packed and pack is not None:
        pack()
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
