"""The counter-based random numbers of stochastic rounding, reproducible run to run.

Element i of the padded, axis-last tensor viewed as [rows, Kp] (i = row * Kp + k)
draws u_i from a 32-bit hash of (i, seed): the murmur3 finalizer of
i XOR (seed * 0x9E3779B9), all mod 2^32. Its top 23 bits k give
u = (2k + 1) * 2^-24, an exact float32 in (0, 1). The CPU lowering computes the
same hash with i32 arithmetic, so compiled and reference round identically.
"""

from __future__ import annotations

import torch

_M32 = 0xFFFFFFFF


def seed_word(seed: int) -> int:
    """The 32-bit word the element index is XORed with."""
    return (seed * 0x9E3779B9) & _M32


def fmix32(h: torch.Tensor) -> torch.Tensor:
    """murmur3's 32-bit finalizer on int64 tensors holding values in [0, 2^32)."""
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & _M32
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def uniform(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """float32 u in (0, 1) for every element of a tensor of `shape` (row-major flat index)."""
    n = 1
    for d in shape:
        n *= d
    idx = torch.arange(n, dtype=torch.int64) & _M32
    h = fmix32(idx ^ seed_word(seed))
    return ((h >> 9) * 2 + 1).to(torch.float32).mul_(2.0**-24).reshape(shape)
