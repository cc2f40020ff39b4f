"""Block quantization: `quantize(x, fmt, **options) -> QTensor`, vectorized torch, float32.

Layout: the block axis is moved last and zero-padded to a multiple of the
block size; `QTensor` keeps that padded, axis-last layout internally and hands
out codes in x's layout. The float32 operation order here is the contract the
CPU lowering (`passes/lower_mxq_to_linalg.py`) reproduces.

MX formats (E8M0 scales) take one of four scale rules; the NV family (UE4M3 or
UE5M3 block scales over an FP32 tensor scale) follows the NVFP4 recipe, with
Four Over Six and IF4 choosing per block between two candidates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import hadamard as _hadamard
from . import rng
from .elements import ceil_log2, decode, encode, exp2i, floor_log2, round_int, round_to_element
from .formats import Format
from .options import FormatSpec, QuantOptions

E8M0_NAN = 0xFF
IF4_INT_FLAG = 0x80
IF4_INT_STEP = 6 / 7  # an INT block's code q means q * 6/7 (its max, 7, maps to E2M1's 6)
SR_TARGET = 16 / 17  # with stochastic rounding, NV block scales map amax to max * 16/17


@dataclass(frozen=True)
class QTensor:
    """A block-quantized tensor.

    `elements`: uint8 codes, axis-last and padded, shape (..., Ko * block).
    `scales`: uint8 block-scale codes, shape (..., Ko).
    `tensor_scale`: float32 decode-side tensor scale S_dec (NV family) or None.
    `options`: how it was quantized; with `hadamard`, the codes hold x rotated along K.
    """

    fmt: Format
    elements: torch.Tensor
    scales: torch.Tensor
    tensor_scale: torch.Tensor | None
    shape: tuple[int, ...]
    axis: int
    options: QuantOptions = QuantOptions()

    def _to_input_layout(self, t: torch.Tensor, k: int) -> torch.Tensor:
        return t[..., :k].movedim(-1, self.axis)

    def element_codes(self) -> torch.Tensor:
        """uint8, one code per element, in x's layout, padding removed."""
        return self._to_input_layout(self.elements, self.shape[self.axis])

    def scale_codes(self) -> torch.Tensor:
        """uint8 block-scale codes, x's layout with the block axis of length ceil(K / block)."""
        return self.scales.movedim(-1, self.axis)

    def int_blocks(self) -> torch.Tensor:
        """bool per block: IF4 blocks stored as INT4 (all False for other formats)."""
        if not self.fmt.scale.flag:
            return torch.zeros_like(self.scales, dtype=torch.bool)
        return (self.scales & IF4_INT_FLAG) != 0

    def scale_values(self) -> torch.Tensor:
        """float32 decoded block scales (axis-last), tensor scale folded in."""
        if self.fmt.scale.name == "e8m0":
            s = exp2i(self.scales.to(torch.int32) - 127)
            return torch.where(self.scales == E8M0_NAN, torch.full_like(s, math.nan), s)
        codes = self.scales & 0x7F if self.fmt.scale.flag else self.scales
        return decode(codes, self.fmt.scale.element) * self.tensor_scale

    def element_values(self) -> torch.Tensor:
        """float32 element values (axis-last, padded), before the block scales."""
        vals = decode(self.elements, self.fmt.element)
        if self.fmt.choice != "if4":
            return vals
        bs = self.fmt.block_size
        nibble = self.elements.to(torch.int32)
        ints = torch.where(nibble >= 8, nibble - 16, nibble).to(torch.float32) * torch.tensor(IF4_INT_STEP)
        flag = self.int_blocks().repeat_interleave(bs, dim=-1)
        return torch.where(flag, ints, vals)

    def dequantize(self, rotated: bool = False) -> torch.Tensor:
        """float32 values in x's shape (element value times its block's scale).

        With a Hadamard rotation the values are rotated back to x's basis, unless
        `rotated` (the operand a block-scaled GEMM contracts).
        """
        k = self.elements.shape[-1]
        bs = self.fmt.block_size
        vals = self.element_values().unflatten(-1, (k // bs, bs))
        out = (vals * self.scale_values().unsqueeze(-1)).flatten(-2)[..., : self.shape[self.axis]]
        if self.options.hadamard and not rotated:
            out = _hadamard.rotate(out, self.options.hadamard)
        return out.movedim(-1, self.axis)

    def packed_elements(self) -> torch.Tensor:
        """Storage bytes (axis-last, padded): 4-bit codes two per byte, 6-bit codes four per three."""
        if self.fmt.element.bits == 4:
            return pack_nibbles(self.elements)
        if self.fmt.element.bits == 6:
            return pack_fp6(self.elements)
        return self.elements


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes per byte along the last axis: element 2i low, 2i+1 high."""
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of pack_nibbles."""
    return torch.stack([packed & 0xF, packed >> 4], dim=-1).flatten(-2)


def pack_fp6(codes: torch.Tensor) -> torch.Tensor:
    """Four 6-bit codes per three bytes, little-endian bits: w = c0 | c1<<6 | c2<<12 | c3<<18, bytes w, w>>8, w>>16."""
    c = codes.to(torch.int32).unflatten(-1, (-1, 4))
    w = c[..., 0] | (c[..., 1] << 6) | (c[..., 2] << 12) | (c[..., 3] << 18)
    return torch.stack([w & 0xFF, (w >> 8) & 0xFF, (w >> 16) & 0xFF], dim=-1).flatten(-2).to(torch.uint8)


def unpack_fp6(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of pack_fp6."""
    b = packed.to(torch.int32).unflatten(-1, (-1, 3))
    w = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
    return torch.stack([(w >> s) & 0x3F for s in (0, 6, 12, 18)], dim=-1).flatten(-2).to(torch.uint8)


def row_nbytes(fmt: Format, k: int) -> int:
    """The bytes of one row of `row_bytes`: K values of `fmt` quantized along the row."""
    kp = -(-k // fmt.block_size) * fmt.block_size
    return kp * fmt.element.bits // 8 + kp // fmt.block_size + (4 if fmt.tensor_scale else 0)


def row_bytes(q: QTensor) -> torch.Tensor:
    """A tensor quantized along its last axis, each row (a KV cache's vector of one head and position) as
    one row of bytes, uint8 [..., row_nbytes]: the packed elements (`packed_elements`), then the block-scale
    codes, then (NV family) the decode-side FP32 tensor scale as four little-endian bytes, the same in every
    row of one quantize (`from_row_bytes` reads a tensor scale per row, so rows of several quantizes can share
    one tensor: each keeps its own)."""
    if q.axis != len(q.shape) - 1:
        raise ValueError("row_bytes needs a tensor quantized along its last axis")
    parts = [q.packed_elements(), q.scales]
    if q.fmt.tensor_scale:
        bits = q.tensor_scale.to(torch.float32).reshape(-1)[:1].view(torch.int32)
        ts = torch.stack([(bits >> s) & 0xFF for s in (0, 8, 16, 24)], dim=-1).to(torch.uint8)
        parts.append(ts.expand(*q.scales.shape[:-1], 4))
    return torch.cat(parts, dim=-1)


def from_row_bytes(b: torch.Tensor, fmt: str | Format | FormatSpec, k: int) -> QTensor:
    """Inverse of `row_bytes` for K values per row: a QTensor along the last axis whose tensor scale (NV family)
    is one per row, shape [..., 1]."""
    fmt, opts = resolve(fmt)
    b = b.view(torch.uint8) if b.dtype == torch.int8 else b
    kp = -(-k // fmt.block_size) * fmt.block_size
    ne = kp * fmt.element.bits // 8
    if b.shape[-1] != row_nbytes(fmt, k):
        raise ValueError(f"rows of {b.shape[-1]} bytes: {fmt.name} with K={k} has {row_nbytes(fmt, k)}")
    packed, scales = b[..., :ne], b[..., ne:ne + kp // fmt.block_size]
    elements = unpack_nibbles(packed) if fmt.element.bits == 4 else unpack_fp6(packed) if fmt.element.bits == 6 \
        else packed
    ts = None
    if fmt.tensor_scale:
        t = b[..., ne + kp // fmt.block_size:].to(torch.int32)
        ts = (t[..., 0] | (t[..., 1] << 8) | (t[..., 2] << 16) | (t[..., 3] << 24)).view(torch.float32)[..., None]
    return QTensor(fmt, elements, scales, ts, (*b.shape[:-1], k), b.dim() - 1, opts)


def _blocks(x: torch.Tensor, bs: int) -> torch.Tensor:
    """x [..., K] float32 zero-padded to a multiple of bs, shape (..., Ko, bs)."""
    pad = -x.shape[-1] % bs
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    return x.unflatten(-1, (x.shape[-1] // bs, bs))


def mx_scale_exponent(amax: torch.Tensor, fmt: Format, rule: str) -> torch.Tensor:
    """The E8M0 exponent of each block (before the special-block codes), clamped to [-127, 127]."""
    elem = fmt.element
    if rule == "floor":
        e = floor_log2(amax) - elem.emax
    elif rule == "ceil":
        e = ceil_log2(amax) - elem.emax
    elif rule == "rceil":  # on the FP32 product amax * (1/max); tiny amax scaled by 2^64 so it stays normal
        r = torch.tensor(1 / elem.max, dtype=torch.float32)
        tiny = amax < 2.0**-100
        e = ceil_log2(torch.where(tiny, amax * 2.0**64, amax) * r) - 64 * tiny.to(torch.int32)
    else:  # even: round amax's mantissa to the element's width, half up on the bit pattern, then floor
        drop = 23 - elem.mbits
        bits = (amax.view(torch.int32) + (1 << (drop - 1))) & ~((1 << drop) - 1)
        e = floor_log2(bits.view(torch.float32)) - elem.emax
    return e.clamp(-127, 127)


def _quantize_mx(xb: torch.Tensor, fmt: Format, opts: QuantOptions, u, codes: bool = True):
    """OCP MX: E8M0 scale 2^e per block by `opts.scale_rule`, elements = encode(x / 2^e).

    Returns (element codes or None, scale codes, None, dequantized blocks or None).
    """
    amax = xb.abs().amax(dim=-1)
    special = ~torch.isfinite(amax)
    e = mx_scale_exponent(amax, fmt, opts.scale_rule)
    e = torch.where(amax == 0, torch.full_like(e, -127), e)
    q = round_to_element(xb * exp2i(-e).unsqueeze(-1), fmt.element, u)
    has_special = bool(special.any())
    if has_special:
        q = torch.where(special.unsqueeze(-1), torch.zeros_like(q), q)
    scales = torch.where(special, torch.full_like(e, E8M0_NAN), e + 127).to(torch.uint8)
    if codes:
        return encode(q, fmt.element), scales, None, None
    sv = exp2i(e)
    if has_special:
        sv = torch.where(special, torch.full_like(sv, math.nan), sv)
    return None, scales, None, q.mul_(sv.unsqueeze(-1))


def nv_tensor_scale(x: torch.Tensor, fmt: Format) -> torch.Tensor:
    """S_enc = max_scale * max_elem / amax over the finite values (1 if that is 0 or not finite)."""
    a = x.detach().to(torch.float32).abs()
    amax = torch.where(torch.isfinite(a), a, torch.zeros_like(a)).amax() if a.numel() else torch.tensor(0.0)
    s_enc = torch.tensor(fmt.tensor_scale_max * fmt.element.max, dtype=torch.float32) / amax
    return torch.where(torch.isfinite(s_enc) & (amax > 0), s_enc, torch.ones_like(s_enc))


def product(p: torch.Tensor) -> torch.Tensor:
    """A product that feeds a sum, NaN read as 0 (the lowering's guard against FMA contraction)."""
    return torch.where(torch.isnan(p), torch.zeros_like(p), p)


def block_error(deq: torch.Tensor, x: torch.Tensor, metric: str) -> torch.Tensor:
    """Per-block error of dequantized blocks against x (..., bs), summed left to right (the lowering's order)."""
    d = product(deq) - x
    if metric == "max":
        return d.abs().amax(dim=-1)
    terms = product(d * d) if metric == "mse" else d.abs()
    acc = terms[..., 0]
    for i in range(1, terms.shape[-1]):
        acc = acc + terms[..., i]
    return acc


def nv_block_target(fmt: Format, opts: QuantOptions) -> float:
    """The element value a block's amax maps to: max, or max * 16/17 with stochastic rounding."""
    return fmt.element.max * (SR_TARGET if opts.rounding == "stochastic" else 1.0)


def _candidate(xb, s_b, s_dec, elem, u):
    """Quantize blocks with scale values s_b: (element values, dequantized values); zero scale flushes."""
    sd = s_b * s_dec
    q = round_to_element(xb * (1.0 / sd).unsqueeze(-1), elem, u)
    q = torch.where((s_b == 0).unsqueeze(-1), torch.zeros_like(q), q)
    return q, q * sd.unsqueeze(-1)


def _int_candidate(xb, s_b, s_dec, u):
    """IF4's INT half: q = clamp(rne(x / (s * S_dec) * 7/6), -7, 7), value q * 6/7 * s * S_dec."""
    sd = s_b * s_dec
    v = (xb * (1.0 / sd).unsqueeze(-1)) * torch.tensor(7 / 6)
    q = torch.copysign(round_int(v.abs(), u).clamp(max=7), v)
    q = torch.where((s_b == 0).unsqueeze(-1), torch.zeros_like(q), q)
    return q, (q * torch.tensor(IF4_INT_STEP)) * sd.unsqueeze(-1)


def _quantize_nv(xb: torch.Tensor, fmt: Format, opts: QuantOptions, s_enc: torch.Tensor, u, codes: bool = True):
    """The NVFP4 recipe (TransformerEngine), with Four Over Six / IF4 block choices.

    Blocks holding NaN or Inf get the scale's NaN code; a block whose scale
    rounds to zero flushes to zero. Returns (element codes or None, scale codes,
    S_dec, dequantized blocks or None).
    """
    selem, elem = fmt.scale.element, fmt.element
    s_dec = 1.0 / s_enc
    amax = xb.abs().amax(dim=-1)
    special = ~torch.isfinite(amax)
    s6 = round_to_element(amax / nv_block_target(fmt, opts) * s_enc, selem)
    q, deq = _candidate(xb, s6, s_dec, elem, u)
    scale_codes = encode(s6, selem)
    if fmt.choice == "4over6":  # map-4: amax -> 4 (= 1.5 * amax / 6); ties keep map-6
        s4 = round_to_element(amax / 4.0 * s_enc, selem)
        q4, deq4 = _candidate(xb, s4, s_dec, elem, u)
        pick = block_error(deq4, xb, opts.error_metric) < block_error(deq, xb, opts.error_metric)
        q = torch.where(pick.unsqueeze(-1), q4, q)
        deq = torch.where(pick.unsqueeze(-1), deq4, deq)
        scale_codes = torch.where(pick, encode(s4, selem), scale_codes)
    el = encode(q, elem) if codes else None
    if fmt.choice == "if4":  # INT block when strictly better; flagged in bit 7 of the scale byte
        qi, deqi = _int_candidate(xb, s6, s_dec, u)
        pick = block_error(deqi, xb, opts.error_metric) < block_error(deq, xb, opts.error_metric)
        if codes:
            el = torch.where(pick.unsqueeze(-1), qi.to(torch.int32).bitwise_and(0xF).to(torch.uint8), el)
        deq = torch.where(pick.unsqueeze(-1), deqi, deq)
        scale_codes = torch.where(pick, scale_codes | IF4_INT_FLAG, scale_codes)
    scale_codes = torch.where(special, torch.full_like(scale_codes, selem.nan_code), scale_codes)
    if codes:
        return torch.where(special.unsqueeze(-1), torch.zeros_like(el), el), scale_codes, s_dec, None
    return None, scale_codes, s_dec, torch.where(special.unsqueeze(-1), torch.full_like(deq, math.nan), deq)


def resolve(fmt: str | Format | FormatSpec, **overrides) -> tuple[Format, QuantOptions]:
    """(Format, QuantOptions) from a spec string, Format or FormatSpec, keyword options applied on top."""
    spec = FormatSpec.of(fmt, **overrides)
    return spec.format, spec.options


def quantize(
    x: torch.Tensor,
    fmt: str | Format | FormatSpec,
    *,
    axis: int = -1,
    scale_rule: str | None = None,
    rounding: str | None = None,
    seed: int | None = None,
    error_metric: str | None = None,
    hadamard: int | None = None,
    s_enc: torch.Tensor | float | None = None,
) -> QTensor:
    """Block-quantize `x` along `axis` (the GEMM's K axis) in format `fmt`.

    `fmt` is a FormatSpec, a name ("mxfp4") or a spec string ("mxfp4{scale_rule=rceil}");
    the keyword options (see `mxc.numerics.options`) apply on top. K not
    divisible by the block size is zero-padded. NaN/Inf in a block make the
    whole block decode to NaN (MX: scale 0xFF; NV family: the scale's NaN code).
    `s_enc` (NV family): the encode-side FP32 tensor scale to use instead of the one
    computed from x's amax (`nv_tensor_scale`); GPTQ fixes it before choosing the codes.
    """
    fmt, opts = resolve(fmt, scale_rule=scale_rule, rounding=rounding, seed=seed,
                        error_metric=error_metric, hadamard=hadamard)
    axis = _check_axis(x, axis)
    elements, scales, ts, _ = _quantize_blocks(x, axis, fmt, opts, codes=True, s_enc=s_enc)
    return QTensor(fmt, elements.flatten(-2), scales, ts, tuple(x.shape), axis, opts)


def _check_axis(x: torch.Tensor, axis: int) -> int:
    if x.dim() == 0:
        raise ValueError("quantize needs a tensor with at least one dimension")
    return axis % x.dim()


def _quantize_blocks(x: torch.Tensor, axis: int, fmt: Format, opts: QuantOptions, codes: bool, s_enc=None):
    """x -> (element codes or None, scale codes, S_dec, dequantized blocks or None), axis-last, padded."""
    xl = x.detach().to(torch.float32).movedim(axis, -1)
    if opts.hadamard:
        xl = _hadamard.rotate(xl, opts.hadamard)
    xb = _blocks(xl, fmt.block_size)
    u = None
    if opts.rounding == "stochastic":
        u = rng.uniform(tuple(xb.shape), opts.seed)
    if fmt.family == "mx":
        return _quantize_mx(xb, fmt, opts, u, codes)
    if s_enc is None:
        s_enc = nv_tensor_scale(xl, fmt)
    return _quantize_nv(xb, fmt, opts, torch.as_tensor(s_enc, dtype=torch.float32), u, codes)


def fake_quantize(x: torch.Tensor, fmt: str | Format | FormatSpec, *, axis: int = -1,
                  s_enc: torch.Tensor | float | None = None, **options) -> torch.Tensor:
    """quantize(...).dequantize() in x's dtype, the torch fake-quant reference, without the codes.

    Bit-identical to `quantize(x, fmt, ...).dequantize()` (tested): it multiplies the
    rounded element values by their scales instead of encoding and decoding them.
    """
    fmt, opts = resolve(fmt, **options)
    axis = _check_axis(x, axis)
    _, _, _, deq = _quantize_blocks(x, axis, fmt, opts, codes=False, s_enc=s_enc)
    out = deq.flatten(-2)[..., : x.shape[axis]]
    if opts.hadamard:
        out = _hadamard.rotate(out, opts.hadamard)
    return out.movedim(-1, axis).to(x.dtype)

def dot_general(a: QTensor, b: QTensor) -> torch.Tensor:
    """OCP MX DotGeneral (spec §6) of a [M, K] and b [N, K], both quantized along K: [M, N] float32.

    Sum over K blocks of X_A * X_B * sum_i(P_A,i * P_B,i); the operands may be
    different formats with the same block size (MXFP8 activations x MXFP4 weights).
    A NaN scale makes every result it touches NaN. Both operands must share a
    Hadamard rotation (or none): the dot product of rotated operands is the product.
    """
    if a.fmt.block_size != b.fmt.block_size:
        raise ValueError(f"block sizes differ: {a.fmt.name} {a.fmt.block_size}, {b.fmt.name} {b.fmt.block_size}")
    if a.options.hadamard != b.options.hadamard:
        raise ValueError("operands must use the same hadamard rotation")
    bs = a.fmt.block_size
    pa = a.element_values().unflatten(-1, (-1, bs)).double()
    pb = b.element_values().unflatten(-1, (-1, bs)).double()
    inner = torch.einsum("mkb,nkb->mnk", pa, pb)  # exact for 4/6/8-bit elements in float64
    scaled = inner * a.scale_values().double().unsqueeze(1) * b.scale_values().double().unsqueeze(0)
    return scaled.sum(-1).to(torch.float32)
