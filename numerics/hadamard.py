"""Block-diagonal normalized Hadamard rotation along the last axis (MR-GPTQ, QuaRot).

H_n is Sylvester's Hadamard matrix divided by sqrt(n): symmetric and orthogonal,
so it is its own inverse and x H (W H)^T = x W^T. It is applied as a fast
Walsh-Hadamard transform with a fixed butterfly order (stage s pairs element i
with i + s inside each block of 2s) and then one multiply by float32(1/sqrt(n)),
so the CPU lowering, which emits the same adds in the same order, gives the same
bits. The butterfly has adds only: nothing for a compiler to contract into FMAs.

Subnormals are flushed to signed zero on the way in and after every step, as
IREE's CPU code does (FTZ/DAZ); the rotated values below 2^-126 round to zero
in every element format anyway, so this only fixes the sign of such zeros.
The flushes are skipped, with the same bits, where no step can make a
subnormal (`_no_subnormals`).
"""

from __future__ import annotations

import math

import torch

from .options import HADAMARD_SIZES


def norm(n: int) -> float:
    """float32(1 / sqrt(n)), the normalization applied after the butterflies."""
    return float(torch.tensor(1 / math.sqrt(n), dtype=torch.float32))


def flush_subnormals(t: torch.Tensor) -> torch.Tensor:
    """Subnormal float32 values -> zero of the same sign (FTZ/DAZ)."""
    return torch.where(t.abs() < 2.0**-126, t * 0.0, t)


def _no_subnormals(x: torch.Tensor, n: int) -> bool:
    """True when every nonzero |x| is at least 2^-102 sqrt(n): then no step of `rotate` makes a subnormal.
    Every value the butterflies make is a multiple of u, the ulp of the smallest nonzero |x| (sums and
    differences of multiples of a power of two, rounded to float32 grids that are multiples of it or
    exact), so a nonzero one is at least u = 2^(e - 23) >= 2^-125 sqrt(n), and times norm(n) (about
    1 / sqrt(n)) still above 2^-126."""
    t = x.abs()
    return not bool(((t > 0) & (t < 2.0**-102 * math.sqrt(n))).any())


def rotate(x: torch.Tensor, n: int) -> torch.Tensor:
    """x [..., K] times blockdiag(H_n) along the last axis; K must be a multiple of n."""
    if n not in HADAMARD_SIZES:
        raise ValueError(f"hadamard size must be one of {HADAMARD_SIZES}, got {n}")
    k = x.shape[-1]
    if k % n:
        raise ValueError(f"hadamard={n} needs K divisible by {n}, got K={k}: use a smaller size or none")
    x = x.to(torch.float32)
    flush = (lambda t: t) if _no_subnormals(x, n) else flush_subnormals
    y = flush(x).unflatten(-1, (k // n, n))
    s = 1
    while s < n:
        y = y.unflatten(-1, (n // (2 * s), 2, s))
        a, b = y[..., 0, :], y[..., 1, :]
        y = flush(torch.stack([a + b, a - b], dim=-2).flatten(-3))
        s *= 2
    return flush(y * norm(n)).flatten(-2)
