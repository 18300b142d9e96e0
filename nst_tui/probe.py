"""What a device has free, for the memory plan (nst_tui.memory), without loading torch.

- CPU: the available RAM (/proc/meminfo's MemAvailable, within a cgroup's limit where
  there is one) and this process's own resident memory (part of the budget: on a CPU
  `max_memory` is the whole process's).
- CUDA: known only once torch has asked the driver (nst_tui.engine.device_memory, which
  reports here); until then a CUDA device's free memory is not known (None). Whether a
  GPU is there at all is guessed from the driver's files.
- The peak: this process's peak resident memory (VmHWM), which Linux lets a process
  reset (/proc/self/clear_refs), so a dashboard's second run measures its own peak.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from nst_tui.memory import Device

_PROC = Path("/proc")


def _meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes ({} where there is none: not Linux)."""
    out = {}
    try:
        for line in (_PROC / "meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            words = rest.split()
            if words and words[0].isdigit():
                out[key] = int(words[0]) * (1024 if words[1:] == ["kB"] else 1)
    except OSError:
        return {}
    return out


def _cgroup_room() -> int | None:
    """Bytes this process's cgroup may still take (v2 memory.max - memory.current; v1
    limit - usage), or None without a limit."""
    try:
        line = (_PROC / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for entry in line:
        _, controllers, path = entry.split(":", 2)
        if controllers == "":  # cgroup v2
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            files = ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        try:
            limit = (base / files[0]).read_text().strip()
            usage = int((base / files[1]).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            return max(0, int(limit) - usage)
    return None


def available_ram() -> int | None:
    """RAM that can be had without swapping (None where it cannot be read)."""
    info = _meminfo()
    free = info.get("MemAvailable")
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    room = _cgroup_room()
    return free if room is None else min(free, room)


def _status(key: str) -> int | None:
    try:
        for line in (_PROC / "self" / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def own_rss() -> int:
    """This process's resident memory now, in bytes (0 where it cannot be read)."""
    return _status("VmRSS") or 0


def reset_peak() -> bool:
    """Start this process's peak resident memory afresh (Linux 4.0+); False where it
    cannot be (peak_rss then says the process's peak since it started)."""
    try:
        (_PROC / "self" / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    """This process's peak resident memory: since the last reset_peak, or since it began
    (getrusage's ru_maxrss, in KiB on Linux, bytes on macOS)."""
    peak = _status("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def cpu_fast_bf16() -> bool:
    """Whether this CPU has AMX's bf16 tiles (amx_bf16), where precision = auto runs bf16
    (engine/accel.fast_bf16 decides; this is its CPU test, read without torch)."""
    try:
        for line in (_PROC / "cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return "amx_bf16" in line.partition(":")[2].split()
    except OSError:
        return False
    return False


def nvidia_present() -> bool:
    """Whether an NVIDIA GPU's driver is loaded here (torch may still not use it)."""
    gpus = _PROC / "driver" / "nvidia" / "gpus"
    try:
        return any(gpus.iterdir()) or Path("/dev/nvidia0").exists()
    except OSError:
        return Path("/dev/nvidia0").exists()


# ---- what the engine found on CUDA devices ----------------------------------------------


@dataclass(frozen=True)
class CudaSeen:
    free: int
    total: int
    used: int  # this process's tensors there (memory_allocated)
    bf16: bool  # precision = auto runs bf16 there
    at: float  # time.monotonic()


_cuda: dict[str, CudaSeen] = {}
_auto: list[str] = []  # what device "auto" resolved to, once the engine said
_lock = threading.Lock()


def note_cuda(name: str, free: int, total: int, used: int = 0, bf16: bool = False) -> None:
    """The engine asked the driver (torch.cuda.mem_get_info): remember it."""
    with _lock:
        _cuda[name] = CudaSeen(free, total, used, bf16, time.monotonic())
        if name == "cuda:0":
            _cuda.setdefault("cuda", _cuda[name])


def note_auto(name: str) -> None:
    """What device `auto` means in this process (cpu, cuda:0), once torch said."""
    with _lock:
        _auto[:] = [name]


def device_now(spec: str, weights_loaded: bool = False) -> Device:
    """The plan's view of a config's device (`cpu`, `cuda`, `cuda:N`, `auto`) now, without
    torch: a CPU's figures are read; a CUDA device's are what the engine last found (its
    free memory unknown before)."""
    name = spec
    if spec == "auto":
        with _lock:
            name = _auto[0] if _auto else ("cuda" if nvidia_present() else "cpu")
    torch_loaded = "torch" in sys.modules
    if name == "cpu":
        return Device(
            "cpu", available_ram(), own_rss(), torch_loaded, weights_loaded, cpu_fast_bf16()
        )
    with _lock:
        seen = _cuda.get(name) or (_cuda.get("cuda:0") if name == "cuda" else None)
    if seen is None:
        return Device(name)
    return Device(name, seen.free, seen.used, True, weights_loaded, seen.bf16)
