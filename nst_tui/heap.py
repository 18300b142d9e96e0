"""glibc's malloc, set per run from its memory plan: tight where the plan's error matters,
roomy elsewhere, and the heap handed back when a run ends. Plain Python (ctypes), no torch.

By default glibc's mmap threshold floats up to 32 MiB: a freed tensor below it stays in
the heap for the next step to reuse (fast), but a run's peak resident memory can then be
20-40% above what its tensors held at once, and unpredictable. Tight: blocks of 1 MiB or
more are mapped on their own and given back when freed, so the peak is what the plan
counts, at the price of the kernel zeroing fresh pages every step (measured: 0.89x
roomy's it/s at 128 px, 0.76x at 256 px; docs/memory.md). Roomy: glibc's own ceilings,
held fixed.
"""

from __future__ import annotations

import ctypes
import functools
import sys

TIGHT_MMAP = 1 << 20
ROOMY_MMAP = 32 << 20
ROOMY_TRIM = 64 << 20  # twice the mmap threshold, as glibc's floating trim threshold goes
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_MAX_PLUGS = 4096
_allocator: list[str] = []  # the mode set last (one at most)
_plugs: list[int] = []  # the heap's holes, held while tight (see plug_holes)


class _MallInfo2(ctypes.Structure):
    _fields_ = [  # malloc.h's struct mallinfo2: ten size_t
        (name, ctypes.c_size_t)
        for name in [
            *("arena", "ordblks", "smblks", "hblks", "hblkhd"),
            *("usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"),
        ]
    ]


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library, where it is glibc on Linux (mallopt, malloc_trim); else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    if hasattr(libc, "mallinfo2"):  # glibc 2.33 and later
        libc.mallinfo2.restype = _MallInfo2
    return libc


def set_allocator(tight: bool) -> str | None:
    """Set this process's allocator tight or roomy (see above); going tight gives back
    what the heap holds free and plugs its holes. Returns the mode now in force, None
    where the C library has no mallopt (not glibc)."""
    mode = "tight" if tight else "roomy"
    if _allocator and _allocator[-1] == mode:
        return mode
    libc = _glibc()
    if libc is None:
        return None
    ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, TIGHT_MMAP if tight else ROOMY_MMAP))
    # Tight keeps glibc's trim threshold (128 KiB): the heap's free top goes back too.
    ok = ok and bool(libc.mallopt(_M_TRIM_THRESHOLD, 128 << 10 if tight else ROOMY_TRIM))
    if not ok:
        return None
    if tight:  # what roomy kept for reuse goes back: the plan sees what is live
        libc.malloc_trim(0)
        plug_holes(libc)
    else:  # the holes are roomy's again, to reuse
        for block in _plugs:
            libc.free(block)
        _plugs.clear()
    _allocator[:] = [mode]
    return mode


def plug_holes(libc: ctypes.CDLL) -> None:
    """Hold the heap's free holes of TIGHT_MMAP or more, untouched (resident: a page of
    malloc's header each).

    Why: roomy runs leave their blocks' address space as free holes in the heap (708 MiB
    after a 384 px run, given back to the system but still in malloc's bins). A tight
    run's tensors would be cut from them instead of being mapped on their own, and what
    they free would stay resident until the run ends: a 768 px run after three roomy ones
    peaked 6-20% above its plan, 1-2% off with the holes held (docs/memory.md)."""
    if not hasattr(libc, "mallinfo2"):
        return
    size = libc.mallinfo2().fordblks
    while size >= TIGHT_MMAP and len(_plugs) < _MAX_PLUGS:
        before = libc.mallinfo2().fordblks
        block = libc.malloc(size)
        if block and libc.mallinfo2().fordblks < before:  # cut from a hole: keep it
            _plugs.append(block)
            continue
        if block:  # mapped on its own (no hole this big): untouched, it goes straight back
            libc.free(block)
        size //= 2


def give_back_heap() -> bool:
    """Hand the heap's free memory back to the system (glibc's malloc_trim, every arena):
    what a roomy run kept for its next step is not held by an idle dashboard or worker.
    False where the C library cannot (not glibc)."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
