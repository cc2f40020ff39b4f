"""Element casts: round to nearest even with saturation, codes, decode tables.

Every function works on float32 torch tensors and uses only operations that are
exact in float32 (power-of-two multiplies, `round` to even, compares), so the
CPU lowering, which emits the same steps in `arith`, gives the same bits.
"""

from __future__ import annotations

import torch

from .formats import ElementType


def floor_log2(a: torch.Tensor) -> torch.Tensor:
    """floor(log2(a)) for a > 0 read from the float32 exponent field (int32).

    Subnormals and zero give -127; every caller clamps below that, so this
    equals the true floor(log2) wherever it matters.
    """
    return ((a.view(torch.int32) >> 23) & 0xFF) - 127


def exp2i(e: torch.Tensor) -> torch.Tensor:
    """2**e as float32 for integer e in [-127, 127], built from bits (exact)."""
    normal = ((e.clamp(-126, 127) + 127) << 23).view(torch.float32)
    return torch.where(e < -126, torch.full_like(normal, 2.0**-127), normal)


def round_to_element(v: torch.Tensor, elem: ElementType) -> torch.Tensor:
    """Round float32 `v` to the nearest value of `elem` (RNE), saturating at ±max.

    NaN inputs give NaN; -0 and values that round to zero keep their sign.
    """
    a = v.abs().clamp(max=elem.max)
    e = floor_log2(a).clamp(min=elem.emin)
    q = torch.round(a * exp2i(elem.mbits - e)) * exp2i(e - elem.mbits)
    return torch.copysign(q, v)


def encode(q: torch.Tensor, elem: ElementType) -> torch.Tensor:
    """Codes (uint8) of values already representable in `elem` (see round_to_element).

    NaN encodes as the all-ones magnitude where the type has one (E4M3: 0x7F).
    """
    sign = (q.view(torch.int32) >> 31).to(torch.uint8) & 1
    a = q.abs()
    e = floor_log2(a)
    is_normal = e >= elem.emin
    mant_normal = ((a.view(torch.int32) >> (23 - elem.mbits)) & ((1 << elem.mbits) - 1)) | (
        (e + elem.bias).clamp(min=0) << elem.mbits
    )
    mant_sub = torch.round(a * exp2i(torch.full_like(e, elem.mbits - elem.emin))).to(torch.int32)
    mag = torch.where(is_normal, mant_normal, mant_sub)
    mag = torch.where(torch.isnan(q), torch.full_like(mag, (1 << (elem.bits - 1)) - 1), mag)
    return (sign << (elem.bits - 1)) | mag.to(torch.uint8)


def decode_table(elem: ElementType) -> torch.Tensor:
    """float32 value of every code 0 .. 2**bits - 1, from the definition."""
    codes = torch.arange(1 << elem.bits, dtype=torch.int32)
    mag = codes & ((1 << (elem.bits - 1)) - 1)
    e = mag >> elem.mbits
    m = (mag & ((1 << elem.mbits) - 1)).to(torch.float64)
    scale = 2.0 ** (e.clamp(min=1) - elem.bias).to(torch.float64)
    val = torch.where(e > 0, 1 + m / (1 << elem.mbits), m / (1 << elem.mbits)) * scale
    val = torch.where((codes >> (elem.bits - 1)) == 1, -val, val).to(torch.float32)
    if elem.name == "e4m3":  # S.1111.111 is NaN
        val[mag == 0x7F] = float("nan")
    return val


def decode(codes: torch.Tensor, elem: ElementType) -> torch.Tensor:
    """float32 values of uint8 codes."""
    return decode_table(elem)[codes.long()]
