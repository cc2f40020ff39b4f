"""Block quantization: `quantize(x, fmt) -> QTensor`, vectorized torch, float32.

Layout: the block axis is moved last and zero-padded to a multiple of the
block size; `QTensor` keeps that padded, axis-last layout internally and hands
out codes in x's layout. The float32 operation order here is the contract the
CPU lowering (`passes/lower_mxq_to_linalg.py`) reproduces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .elements import decode, encode, exp2i, floor_log2, round_to_element
from .formats import E4M3, Format, get_format

E8M0_NAN = 0xFF
UE4M3_NAN = 0x7F


@dataclass(frozen=True)
class QTensor:
    """A block-quantized tensor.

    `elements`: uint8 codes, axis-last and padded, shape (..., Ko * block).
    `scales`: uint8 block-scale codes, shape (..., Ko).
    `tensor_scale`: float32 decode-side tensor scale S_dec (NVFP4 family) or None.
    """

    fmt: Format
    elements: torch.Tensor
    scales: torch.Tensor
    tensor_scale: torch.Tensor | None
    shape: tuple[int, ...]
    axis: int

    def _to_input_layout(self, t: torch.Tensor, k: int) -> torch.Tensor:
        return t[..., :k].movedim(-1, self.axis)

    def element_codes(self) -> torch.Tensor:
        """uint8, one code per element, in x's layout, padding removed."""
        return self._to_input_layout(self.elements, self.shape[self.axis])

    def scale_codes(self) -> torch.Tensor:
        """uint8 block-scale codes, x's layout with the block axis of length ceil(K / block)."""
        return self.scales.movedim(-1, self.axis)

    def scale_values(self) -> torch.Tensor:
        """float32 decoded block scales (axis-last), tensor scale folded in."""
        if self.fmt.scale.name == "e8m0":
            s = exp2i(self.scales.to(torch.int32) - 127)
            return torch.where(self.scales == E8M0_NAN, torch.full_like(s, math.nan), s)
        return decode(self.scales, E4M3) * self.tensor_scale

    def dequantize(self) -> torch.Tensor:
        """float32 values in x's shape (element value times its block's scale)."""
        k = self.elements.shape[-1]
        bs = self.fmt.block_size
        vals = decode(self.elements, self.fmt.element).unflatten(-1, (k // bs, bs))
        out = (vals * self.scale_values().unsqueeze(-1)).flatten(-2)
        return self._to_input_layout(out, self.shape[self.axis])

    def packed_elements(self) -> torch.Tensor:
        """Storage bytes (axis-last, padded): 4-bit codes two per byte, low nibble first."""
        if self.fmt.element.bits == 4:
            return pack_nibbles(self.elements)
        return self.elements


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes per byte along the last axis: element 2i low, 2i+1 high."""
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of pack_nibbles."""
    return torch.stack([packed & 0xF, packed >> 4], dim=-1).flatten(-2)


def _blocks(x: torch.Tensor, axis: int, bs: int) -> torch.Tensor:
    """x as float32, axis moved last, zero-padded to a multiple of bs, shape (..., Ko, bs)."""
    x = x.detach().to(torch.float32).movedim(axis, -1)
    pad = -x.shape[-1] % bs
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    return x.unflatten(-1, (x.shape[-1] // bs, bs))


def _quantize_mx(xb: torch.Tensor, fmt: Format):
    """OCP MX, FLOOR scale rule: e = floor(log2(amax)) - emax_elem, clamped to [-127, 127]."""
    elem = fmt.element
    amax = xb.abs().amax(dim=-1)
    special = ~torch.isfinite(amax)
    e = (floor_log2(amax) - elem.emax).clamp(-127, 127)
    e = torch.where(amax == 0, torch.full_like(e, -127), e)
    q = round_to_element(xb * exp2i(-e).unsqueeze(-1), elem)
    q = torch.where(special.unsqueeze(-1), torch.zeros_like(q), q)
    scales = torch.where(special, torch.full_like(e, E8M0_NAN), e + 127).to(torch.uint8)
    return encode(q, elem), scales, None


def nv_tensor_scale(x: torch.Tensor, fmt: Format) -> torch.Tensor:
    """S_enc = max_scale * max_elem / amax over the finite values (1 if that is 0 or not finite)."""
    a = x.detach().to(torch.float32).abs()
    amax = torch.where(torch.isfinite(a), a, torch.zeros_like(a)).amax() if a.numel() else torch.tensor(0.0)
    s_enc = torch.tensor(fmt.tensor_scale_max * fmt.element.max, dtype=torch.float32) / amax
    return torch.where(torch.isfinite(s_enc) & (amax > 0), s_enc, torch.ones_like(s_enc))


def _quantize_nv(xb: torch.Tensor, fmt: Format, s_enc: torch.Tensor):
    """NVFP4 (TransformerEngine recipe): UE4M3 block scales over an FP32 tensor scale.

    Blocks holding NaN or Inf get scale code 0x7F (NaN); a block whose scale
    rounds to zero flushes to zero.
    """
    s_dec = 1.0 / s_enc
    amax = xb.abs().amax(dim=-1)
    special = ~torch.isfinite(amax)
    s_b = round_to_element(amax / fmt.element.max * s_enc, E4M3)
    inv = 1.0 / (s_b * s_dec)
    q = round_to_element(xb * inv.unsqueeze(-1), fmt.element)
    q = torch.where(((s_b == 0) | special).unsqueeze(-1), torch.zeros_like(q), q)
    s_b = torch.where(special, torch.full_like(s_b, math.nan), s_b)
    return encode(q, fmt.element), encode(s_b, E4M3), s_dec


def quantize(x: torch.Tensor, fmt: str | Format, *, axis: int = -1) -> QTensor:
    """Block-quantize `x` along `axis` (the GEMM's K axis) in format `fmt`.

    K not divisible by the block size is zero-padded. NaN/Inf in a block make
    the whole block decode to NaN (MX: scale 0xFF; NVFP4: scale 0x7F).
    """
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    if x.dim() == 0:
        raise ValueError("quantize needs a tensor with at least one dimension")
    axis = axis % x.dim()
    xb = _blocks(x, axis, fmt.block_size)
    if fmt.family == "mx":
        elements, scales, ts = _quantize_mx(xb, fmt)
    else:
        elements, scales, ts = _quantize_nv(xb, fmt, nv_tensor_scale(x, fmt))
    return QTensor(fmt, elements.flatten(-2), scales, ts, tuple(x.shape), axis)


def fake_quantize(x: torch.Tensor, fmt: str | Format, *, axis: int = -1) -> torch.Tensor:
    """quantize(...).dequantize() in x's dtype: the torch fake-quant reference."""
    return quantize(x, fmt, axis=axis).dequantize().to(x.dtype)
