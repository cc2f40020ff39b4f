"""Whether this CPU has AMX bf16 tiles (or AVX512-BF16, or AVX2 and FMA), and the Linux permission a process needs for AMX.

Kept free of the compiler's imports (torch-mlir): the runtime asks before it loads an artifact compiled
with `--contraction amx` (passes/_amx.py writes those kernels), also on hosts that only run artifacts.
"""

from __future__ import annotations

import ctypes
import functools
import platform
from pathlib import Path

_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA = 158, 0x1023, 18  # Linux x86-64


@functools.cache
def _flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere and off x86-64)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return frozenset()
    try:
        return frozenset(next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                               if line.startswith("flags")), "").split())
    except OSError:
        return frozenset()


def host_has_amx() -> bool:
    """The CPU has AMX tiles and bf16 tile multiplies."""
    return {"amx_tile", "amx_bf16"} <= _flags()


def host_has_dpbf16() -> bool:
    """The CPU has AVX512-BF16 with 256-bit forms (`vdpbf16ps` on ymm: `--contraction dpbf16`'s kernels) and
    AVX2 + FMA (its float32 kernels)."""
    return {"avx512_bf16", "avx512vl", "avx512f", "avx2", "fma"} <= _flags()


def host_has_fma() -> bool:
    """The CPU has AVX2 and FMA (what `--contraction fma`'s kernels are compiled to)."""
    return {"avx2", "fma"} <= _flags()


@functools.cache
def enable_amx() -> None:
    """Ask Linux for this process's AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM, XTILEDATA); raise
    RuntimeError when the CPU or the kernel (Linux >= 5.16) cannot give it."""
    if not host_has_amx():
        raise RuntimeError("this CPU has no AMX bf16 tiles (the /proc/cpuinfo flags amx_tile and amx_bf16)")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) != 0:
        raise RuntimeError(f"Linux refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM: errno "
                           f"{ctypes.get_errno()}; AMX needs Linux 5.16 or later)")
