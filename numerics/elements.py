"""Element casts: round to nearest even (or stochastic) with saturation, codes, decode tables.

Every function works on float32 torch tensors and uses only operations that are
exact in float32 (power-of-two multiplies, `round` to even, `floor`, compares),
so the CPU lowering, which emits the same steps in `arith`, gives the same bits.
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


def ceil_log2(a: torch.Tensor) -> torch.Tensor:
    """ceil(log2(a)) for a > 0, exact also for subnormal a (int32).

    A subnormal a is first scaled by 2^64 (exactly), so only normal numbers are
    inspected: a power of two gives its exponent, anything else one more.
    """
    tiny = a < 2.0**-100
    s = torch.where(tiny, a * 2.0**64, a)
    bits = s.view(torch.int32)
    e = floor_log2(s) + ((bits & 0x7FFFFF) != 0).to(torch.int32)
    return torch.where(tiny, e - 64, e)


def exp2i(e: torch.Tensor) -> torch.Tensor:
    """2**e as float32 for integer e in [-127, 127], built from bits (exact)."""
    normal = ((e.clamp(-126, 127) + 127) << 23).view(torch.float32)
    return torch.where(e < -126, torch.full_like(normal, 2.0**-127), normal)


_TORCH_FP8 = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}


def round_int(t: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
    """Round t >= 0 to an integer: RNE, or up with probability frac(t) when `u` (uniform in (0, 1)) is given."""
    if u is None:
        return torch.round(t)
    f = torch.floor(t)
    return f + (u < t - f).to(t.dtype)


def round_to_element(v: torch.Tensor, elem: ElementType, u: torch.Tensor | None = None) -> torch.Tensor:
    """Round float32 `v` to the nearest value of `elem` (RNE, or stochastic with `u`), saturating at ±max.

    NaN inputs give NaN; -0 and values that round to zero keep their sign.
    """
    if u is None and elem.name in _TORCH_FP8:  # torch's own cast is RNE; saturate first (it would make NaN)
        return v.clamp(-elem.max, elem.max).to(_TORCH_FP8[elem.name]).to(torch.float32)
    a = v.abs().clamp(max=elem.max)
    if elem.kind == "int":
        q = round_int(a * 2.0**elem.mbits, u) * 2.0**-elem.mbits
        return torch.copysign(q, v)
    if u is None:
        # RNE by magic number: M = 2^(e + 23 - mbits) has the element grid step as its float32
        # ulp (e = the binade of a, at least emin), so a + M rounds a to the grid and - M is exact.
        # Same result as roundeven(a * 2^(mbits-e)) * 2^(e-mbits) (the lowering's form), fewer passes.
        field = (a.view(torch.int32) >> 23).clamp_(min=elem.emin + 127)
        magic = ((field + (23 - elem.mbits)) << 23).view(torch.float32)
        return torch.copysign((a + magic).sub_(magic), v)
    e = floor_log2(a).clamp(min=elem.emin)
    q = round_int(a * exp2i(elem.mbits - e), u) * exp2i(e - elem.mbits)
    return torch.copysign(q.clamp(max=elem.max), v)


def encode(q: torch.Tensor, elem: ElementType) -> torch.Tensor:
    """Codes (uint8) of values already representable in `elem` (see round_to_element).

    NaN encodes as the type's NaN code (E4M3/E5M2: 0x7F, UE5M3: 0xFF).
    Integer kinds give two's complement codes of q * 2**mbits.
    """
    mask = (1 << elem.bits) - 1
    if elem.kind == "int":
        return (q * 2.0**elem.mbits).to(torch.int32).bitwise_and(mask).to(torch.uint8)
    sign_bit = elem.bits - 1 if elem.signed else None
    a = q.abs()
    e = floor_log2(a)
    is_normal = e >= elem.emin
    mant_normal = ((a.view(torch.int32) >> (23 - elem.mbits)) & ((1 << elem.mbits) - 1)) | (
        (e + elem.bias).clamp(min=0) << elem.mbits
    )
    mant_sub = torch.round(a * exp2i(torch.full_like(e, elem.mbits - elem.emin))).to(torch.int32)
    mag = torch.where(is_normal, mant_normal, mant_sub)
    if elem.nan_code is not None:
        mag = torch.where(torch.isnan(q), torch.full_like(mag, elem.nan_code), mag)
    if sign_bit is None:
        return mag.to(torch.uint8)
    sign = (q.view(torch.int32) >> 31).to(torch.int32) & 1
    return ((sign << sign_bit) | mag).to(torch.uint8)


def decode_table(elem: ElementType) -> torch.Tensor:
    """float32 value of every code 0 .. 2**bits - 1, from the definition."""
    codes = torch.arange(1 << elem.bits, dtype=torch.int64)
    if elem.kind == "int":
        signed = torch.where(codes >= 1 << (elem.bits - 1), codes - (1 << elem.bits), codes)
        return (signed.to(torch.float64) * 2.0**-elem.mbits).to(torch.float32)
    mag_bits = elem.bits - int(elem.signed)
    mag = codes & ((1 << mag_bits) - 1)
    e = mag >> elem.mbits
    m = (mag & ((1 << elem.mbits) - 1)).to(torch.float64)
    scale = 2.0 ** (e.clamp(min=1) - elem.bias).to(torch.float64)
    val = torch.where(e > 0, 1 + m / (1 << elem.mbits), m / (1 << elem.mbits)) * scale
    if elem.signed:
        val = torch.where((codes >> (elem.bits - 1)) == 1, -val, val)
    val = val.to(torch.float32)
    if elem.has_inf:  # IEEE-like: exponent all ones is Inf (mantissa 0) or NaN
        top = e == (1 << elem.ebits) - 1
        val[top] = torch.where(m[top] == 0, val[top].sign() * float("inf"), float("nan")).float()
    elif elem.nan_code is not None:
        val[mag == elem.nan_code] = float("nan")
    return val


def decode(codes: torch.Tensor, elem: ElementType) -> torch.Tensor:
    """float32 values of uint8 codes."""
    return decode_table(elem)[codes.long()]
