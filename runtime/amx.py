"""Whether this CPU has AMX bf16 tiles, and the Linux permission a process needs to use them.

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
def host_has_amx() -> bool:
    """The CPU has AMX tiles and bf16 tile multiplies (Linux /proc/cpuinfo flags)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_tile" in flags and "amx_bf16" in flags


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
