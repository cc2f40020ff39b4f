"""mxc's CUDA kernels for the `cuda-sm90` and `cuda-sm100` targets: variants, source, assembly.

The kernel bodies are templates: `mxc_sm90.cuh` / `mxc_sm90_mma.cuh` (Hopper's
gemv / wgmma / qgmma kernels) and `mxc_bs.cuh` + `mxc_bs_atoms.cuh` (the
block-scaled GEMM skeleton, whose sm_100a atom is `tcgen05.mma ... block_scale`
and whose sm_90a twin is bf16 wgmma). For the layers of a model, `source()`
writes one translation unit: a struct per number format, generated from
`mxc.numerics.formats` (so the decode has one source of truth), the instruction
descriptors of `mxc.kernels.tcgen05`, the 64-register `wgmma` inline PTX, and
one `extern "C"` wrapper per `Kernel` in IREE's custom-dispatch ABI (buffers in
binding order, then i32 constants). `build()` runs nvcc (PTX) and ptxas (cubin)
for one architecture; the cubin is what the artifact embeds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from mxc.errors import MxcError
from mxc.numerics.elements import decode_table
from mxc.numerics.formats import NONE, ElementType, Format, get_format
from mxc.numerics.quantize import IF4_INT_STEP

from . import tcgen05 as tc

HERE = Path(__file__).resolve().parent
ARCHS = ("sm_90a", "sm_100a")
RECIPE = "nvcc -std=c++17 -O3 -arch=compute_<arch> -ptx | ptxas -O3 -arch=<arch>"  # part of the cache key
HEADERS = ("mxc_sm90.cuh", "mxc_sm90_mma.cuh", "mxc_bs.cuh", "mxc_bs_atoms.cuh")
EPILOGUES = {"none": 0, "relu": 1, "gelu": 2, "silu": 3}
GEMV_MAX_M = 16  # decode shapes; larger M takes the wgmma kernel
GEMV_MT = (1, 4, 16)  # rows of x per pass of the gemv variants
STAGES = 4  # cp.async depth of the wgmma kernel (mxc_sm90_mma.cuh)
FP8 = {"e4m3": (0, "e4m3"), "e5m2": (1, "e5m2")}  # wgmma type tags
QGMMA_FORMATS = ("mxfp8", "mxfp8_e5m2")  # formats of both operands of the FP8 wgmma kernel
# Weight formats the weight-only kernels take (every format of numerics.formats).
WEIGHT_FORMATS = ("mxfp8", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4", "mxint8",
                  "nvfp4", "nvfp4_4over6", "if4", "nvint4", "fp4_ue5m3")


# ---- the block-scaled GEMM skeleton (mxc_bs.cuh): tiles of 128 x 128, STAGES bulk-copy slots
BS_TILE, BS_STAGES = 128, 3
AMAX_CTAS = 128  # the amax kernel's CTAs: partial maxima its readers reduce (mxc_bs.cuh)
MX_NATIVE = ("mxfp8", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4")  # kind::mxf8f6f4 / mxf4
NV_ACT = ("nvfp4", "nvfp4_4over6")  # activations for kind::mxf4nvf4 (Four Over Six is NVFP4 on the wire)
NV_WEIGHT = ("nvfp4", "nvfp4_4over6")
BS_ACT_FORMATS = MX_NATIVE + NV_ACT  # what `bsq` quantizes


def pair_kind(a_format: str, w_format: str) -> int | None:
    """The tcgen05 kind that multiplies these activation x weight formats natively, or None."""
    if a_format in MX_NATIVE and w_format in MX_NATIVE:
        return tc.KIND_MXF4 if a_format == w_format == "mxfp4" else tc.KIND_MXF8F6F4
    if a_format in NV_ACT and w_format in NV_WEIGHT:
        return tc.KIND_MXF4NVF4
    return None


def unit_elements(fmt: str, kind: int | None) -> int:
    """Elements per 16-byte unit of an operand's tiles (mxc.kernels.layouts): bf16 8; packed FP4 32
    (kind::mxf4 / mxf4nvf4, and the decode path's 4-bit formats); 16 otherwise (FP8, FP6, and FP4
    unpacked for kind::mxf8f6f4)."""
    if fmt == "bf16":
        return 8
    bits = get_format(fmt).element.bits
    return 32 if bits == 4 and kind != tc.KIND_MXF8F6F4 else 16


def pair_desc(a_format: str, w_format: str) -> tc.Desc:
    """The instruction descriptor of the kernel for this pair (kind::f16 for the decode path)."""
    kind = pair_kind(a_format, w_format)
    if kind is None:
        return tc.Desc(tc.KIND_F16, tc.idesc(tc.KIND_F16, "bf16", "bf16"))
    ea, ew = get_format(a_format).element.name, get_format(w_format).element.name
    return tc.Desc(kind, tc.idesc(kind, ea, ew, ue8m0=kind != tc.KIND_MXF4NVF4))


def tile_weights(codes, scales, fmt: str, ue: int, k: int):
    """Weight codes [N, >=K] (one per element) and scale codes [N, ceil(K/bs)] -> the bsmma / bsdec
    tiles (mxc.kernels.layouts): codes in 128 x 128 tiles of 16-byte units of `ue`, scales in 128x4
    chunks padded with the scale code of 1."""
    from . import layouts

    f = get_format(fmt)
    return (layouts.tile_codes(codes, f.element.bits, ue),
            layouts.tile_scales(scales, k, f.block_size, _one_code(f)))


def tiled_sizes(fmt: str, ue: int, rows: int, k: int) -> tuple[int, int]:
    """Bytes of an operand [rows, k] in the tiles (bsq's outputs, the re-packed weights): (codes,
    scales), rows and k padded to 128; scales 0 for bf16."""
    rp, kp = -(-rows // BS_TILE) * BS_TILE, -(-k // BS_TILE) * BS_TILE
    return rp * kp * 16 // ue, (0 if fmt == "bf16" else rp * kp // get_format(fmt).block_size)


def bf16_width(k: int) -> int:
    """Columns of the bf16 activations the wgmma kernel reads: K rounded up to its K tile (64)."""
    return -(-k // 64) * 64


class KernelError(MxcError):
    """A kernel could not be generated or assembled (the message names the tool and the fix)."""


@dataclass(frozen=True)
class Kernel:
    """One kernel variant.

    kind: `gemv` (weight-only, M <= 16), `tobf16` (activations to bf16, for `wgmma`),
    `wgmma` (weight-only, bf16 HGMMA, cp.async pipeline), `actq` (MX activation
    quantizer), `qgmma` (MXFP8 x MXFP8, FP8 QGMMA) — Hopper's; and the block-scaled
    skeleton's: `bsmma` (block-scaled codes x codes), `bsdec` (bf16 x any weight
    format, decoded), `bsq` (activations to tiles of codes + 128x4 scales, or bf16),
    `amax` (the NV activation tensor scale). `arch`: what it is assembled for.
    """

    kind: str
    w_format: str = ""
    a_format: str = NONE
    bias: bool = False
    mt: int = 1  # gemv: rows of x per pass
    arch: str = "sm_90a"
    unit: int = 0  # bsq: elements per 16-byte unit of the tiles it writes

    @property
    def name(self) -> str:
        parts = ["mxc", self.kind]
        if self.kind == "bsq":
            return f"mxc_bsq_{self.a_format}" + (f"_u{self.unit}" if self.a_format != "bf16" else "")
        if self.kind == "amax":
            return f"mxc_amax_{self.a_format}"
        if self.kind == "bsmma":
            parts.append(self.a_format)
        if self.kind == "actq":
            return "_".join(parts + [self.a_format])
        if self.kind == "tobf16":
            return "mxc_tobf16"
        if self.kind == "qgmma":
            parts.append(self.a_format)
        parts.append(self.w_format)
        if self.kind == "gemv":
            parts.append(f"m{self.mt}")
        if self.bias:
            parts.append("bias")
        return "_".join(parts)

    @property
    def has_tensor_scale(self) -> bool:
        return bool(self.w_format) and get_format(self.w_format).tensor_scale

    @property
    def act_tensor_scale(self) -> bool:
        return self.kind in ("bsq", "bsmma", "amax") and self.a_format in NV_ACT

    @property
    def decodes(self) -> bool:
        """Whether the skeleton decodes operands to bf16 (the sm_90a twin; the sm_100a decode path)."""
        return self.kind == "bsdec" or (self.kind == "bsmma" and self.arch == "sm_90a")

    def units(self) -> tuple[int, int]:
        """Elements per 16-byte unit of the bsmma / bsdec operands (activations, weights)."""
        if self.kind == "bsdec":
            return 8, unit_elements(self.w_format, None)
        kind = pair_kind(self.a_format, self.w_format)
        return unit_elements(self.a_format, kind), unit_elements(self.w_format, kind)

    def bindings(self) -> list[tuple[str, bool]]:
        """(name, read-only) in the kernel's parameter order; outputs last."""
        if self.kind == "amax":
            return [("x", True), ("a_tensor_scale", False)]
        if self.kind == "bsq":
            if self.a_format == "bf16":
                return [("x", True), ("codes", False)]
            ts = [("a_tensor_scale", True)] if self.act_tensor_scale else []
            return [("x", True), *ts, ("codes", False), ("scales", False)]
        if self.kind in ("bsmma", "bsdec"):
            ins = ["a"] + (["a_scales"] if self.kind == "bsmma" else [])
            ins += ["a_tensor_scale"] if self.act_tensor_scale else []
            ins += ["w", "w_scales"] + (["w_tensor_scale"] if self.has_tensor_scale else [])
            ins += ["bias"] if self.bias else []
            return [(n, True) for n in ins] + [("y", False)]
        if self.kind == "actq":
            return [("x", True), ("codes", False), ("scales", False)]
        if self.kind == "tobf16":
            return [("x", True), ("xb", False)]
        if self.kind == "qgmma":
            ins = ["a", "a_scales", "w", "w_scales"]
        else:
            ins = ["x", "w", "w_scales"] + (["w_tensor_scale"] if self.has_tensor_scale else [])
        ins += ["bias"] if self.bias else []
        return [(n, True) for n in ins] + [("y", False)]

    def constants(self) -> list[str]:
        """The i32 constants after the buffers; `epi` is the epilogue's code (EPILOGUES)."""
        return ["M", "K"] if self.kind in ("actq", "tobf16", "bsq", "amax") else ["M", "N", "K", "epi"]

    @property
    def threads(self) -> int:
        return 512 if self.kind == "amax" else 256

    @property
    def smem(self) -> int:
        """Dynamic shared memory bytes (the export's workgroup_local_memory)."""
        if self.kind == "wgmma":
            rb = 64 * get_format(self.w_format).element.bits // 8
            return STAGES * (128 * 64 * 2 + 128 * rb) + 2 * 128 * 64 * 2
        if self.kind == "qgmma":
            return STAGES * 2 * 128 * 64 + 2 * (128 + 128) * 2 * 4
        if self.kind in ("bsmma", "bsdec"):  # a stage: one 128 x 128 tile and its scales per operand
            fmts = ("bf16" if self.kind == "bsdec" else self.a_format, self.w_format)
            stage = sum(sum(tiled_sizes(f, ue, BS_TILE, BS_TILE)) for f, ue in zip(fmts, self.units()))
            return BS_STAGES * stage + (2 * BS_TILE * 256 if self.decodes else 0) + 128
        return 0

    def grid(self, m: int, n: int, k: int) -> tuple[int, int, int]:
        """Workgroup counts for an [m, k] x [n, k]^T problem."""
        if self.kind == "gemv":
            warps = -(-n // 2)
            return (-(-warps // (self.threads // 32)), 1, 1)
        if self.kind == "actq":
            return (-(-(m * -(-k // 32)) // self.threads), 1, 1)
        if self.kind == "tobf16":
            return (-(-(m * bf16_width(k)) // self.threads), 1, 1)
        if self.kind == "amax":
            return (AMAX_CTAS, 1, 1)
        if self.kind == "bsq":
            mp, kp = -(-m // BS_TILE) * BS_TILE, -(-k // BS_TILE) * BS_TILE
            per_row = kp // 8 if self.a_format == "bf16" else kp // get_format(self.a_format).block_size
            return (-(-(mp * per_row) // self.threads), 1, 1)
        return (-(-n // 128), -(-m // 128), 1)


def select(m: int, w_format: str, a_format: str, bias: bool, target: str = "cuda-sm90") -> list[Kernel] | str:
    """The kernels that compute one fused layer on `target`, or the reason there are none."""
    if target == "cuda-sm100":
        return select_sm100(m, w_format, a_format, bias)
    wf = w_format.split("{", 1)[0]
    if w_format != wf:
        return f"weight format options {w_format[len(wf):]} have no cuda-sm90 kernel"
    if wf not in WEIGHT_FORMATS:
        return f"weight format {wf} has no cuda-sm90 kernel"
    if a_format == NONE:
        if m <= GEMV_MAX_M:
            mt = next(v for v in GEMV_MT if v >= m)
            return [Kernel("gemv", wf, bias=bias, mt=mt)]
        return [Kernel("tobf16"), Kernel("wgmma", wf, bias=bias)]
    if a_format in QGMMA_FORMATS and wf in QGMMA_FORMATS:
        return [Kernel("actq", a_format=a_format), Kernel("qgmma", wf, a_format, bias)]
    kind = pair_kind(a_format, wf)
    if kind is not None:  # the block-scaled skeleton's Hopper twin: operands decoded to bf16, wgmma
        ks = [Kernel("amax", a_format=a_format)] if a_format in NV_ACT else []
        ks.append(Kernel("bsq", a_format=a_format, unit=unit_elements(a_format, kind)))
        return ks + [Kernel("bsmma", wf, a_format, bias)]
    return (f"{a_format} activations x {wf} weights have no cuda-sm90 kernel (quantized activations need "
            f"{', '.join(MX_NATIVE)} with each other, or nvfp4 with nvfp4 / nvfp4_4over6 weights; or weights-only)")


def select_sm100(m: int, w_format: str, a_format: str, bias: bool) -> list[Kernel] | str:
    """cuda-sm100: native pairs -> quantize the activations (bsq) + tcgen05 block-scaled MMA (bsmma);
    weight-only layers -> gemv (M <= 16) or bf16 activations + decoded weights on kind::f16 (bsdec)."""
    wf = w_format.split("{", 1)[0]
    if w_format != wf:
        return f"weight format options {w_format[len(wf):]} have no cuda-sm100 kernel"
    if wf not in WEIGHT_FORMATS:
        return f"weight format {wf} has no cuda-sm100 kernel"
    arch = "sm_100a"
    if a_format == NONE:
        if m <= GEMV_MAX_M:
            return [Kernel("gemv", wf, bias=bias, mt=next(v for v in GEMV_MT if v >= m), arch=arch)]
        return [Kernel("bsq", a_format="bf16", arch=arch), Kernel("bsdec", wf, bias=bias, arch=arch)]
    kind = pair_kind(a_format, wf)
    if kind is None:
        return (f"{a_format} activations x {wf} weights have no block-scaled tcgen05 kind (native: "
                f"{', '.join(MX_NATIVE)} with each other, nvfp4 activations with nvfp4 / nvfp4_4over6 weights)")
    ks = [Kernel("amax", a_format=a_format, arch=arch)] if a_format in NV_ACT else []
    ks.append(Kernel("bsq", a_format=a_format, arch=arch, unit=unit_elements(a_format, kind)))
    return ks + [Kernel("bsmma", wf, a_format, bias, arch=arch)]


def layer_path(ks: list[Kernel]) -> str:
    """How a layer runs, in words (the manifest's and `mxc inspect`'s `path`)."""
    main = ks[-1]
    if main.kind == "bsmma":
        kind = tc.KIND_NAMES[pair_kind(main.a_format, main.w_format)]
        if main.arch == "sm_100a":
            return f"native: tcgen05.mma kind::{kind}.block_scale"
        return f"twin of kind::{kind}: decoded to bf16, wgmma"
    if main.kind == "bsdec":
        return "decode: weights to bf16 in shared memory, tcgen05.mma kind::f16"
    if main.kind == "gemv":
        return "decode: weights in registers, f32 FMA (M <= 16)"
    if main.kind == "wgmma":
        return "decode: weights to bf16 in shared memory, wgmma (HGMMA)"
    return "native: FP8 wgmma (QGMMA), block scales applied per 32-K block"


# ---------------------------------------------------------------- source generation
def _f32(v: float) -> str:
    bits = int(np.array(v, dtype=np.float32).view(np.uint32))
    return f"__int_as_float(0x{bits:08x})"


def _f32_literal(v: float) -> str:
    """A constexpr float32 literal (hex: exact)."""
    f = float(np.float32(v))
    if f != v:
        raise KernelError(f"{v} is not a float32")
    return f"{f.hex()}f"


def _minifloat(e: ElementType) -> str:
    nan = -1 if e.has_inf or e.nan_code is None else e.nan_code
    return (f"mxc::minifloat<{e.ebits}, {e.mbits}, {e.bias}, {str(e.signed).lower()}, "
            f"{str(e.has_inf).lower()}, {nan}>")


def _elem_decode(e: ElementType) -> str:
    if e.kind == "int":
        return f"mxc::intcode<{e.bits}, {e.mbits}>(c)"
    return f"{_minifloat(e)}(c)"


def _one_code(fmt: Format) -> int:
    """A scale code whose value is 1 (the padding's scale)."""
    if fmt.scale.name == "e8m0":
        return 127
    table = decode_table(fmt.scale.element).numpy()
    return int(np.flatnonzero(table == 1.0)[0])


def format_struct(name: str) -> str:
    """The C++ struct of a weight format: BITS, BS, TS, ZERO_SCALE, elem(code, scale code), scale(code)."""
    fmt = get_format(name)
    e = fmt.element
    if fmt.scale.name == "e8m0":
        scale = "mxc::e8m0(c)"
    else:
        mask = "(c & 0x7F)" if fmt.scale.flag else "c"
        scale = f"{_minifloat(fmt.scale.element)}({mask})"
    elem = f"return {_elem_decode(e)};"
    if fmt.choice == "if4":
        elem = (f"return (sc & 0x80) ? mxc::intcode<4, 0>(c) * {_f32(IF4_INT_STEP)} : {_elem_decode(e)};")
    fp8 = FP8.get(e.name, (-1,))[0]
    return f"""struct F_{name} {{
  static constexpr int BITS = {e.bits}, BS = {fmt.block_size}, FP8 = {fp8};
  static constexpr bool TS = {str(fmt.tensor_scale).lower()};
  static constexpr float TS_NUM = {_f32_literal(fmt.tensor_scale_max * e.max) if fmt.tensor_scale else "0.f"};  // S_enc = TS_NUM / amax
  static constexpr uint32_t ZERO_SCALE = {_one_code(fmt)};
  __device__ static __forceinline__ float scale(uint32_t c) {{ return {scale}; }}
  __device__ static __forceinline__ float elem(uint32_t c, uint32_t sc) {{ (void)sc; {elem} }}
}};
"""


def _encoder(name: str) -> str:
    e = get_format(name).element
    interp = {"e4m3": "__NV_E4M3", "e5m2": "__NV_E5M2"}[e.name]
    return f"""struct E_{name} {{
  static constexpr int EMAX = {e.emax};
  __device__ static __forceinline__ uint8_t encode(float v) {{
    return (uint8_t)__nv_cvt_float_to_fp8(v, __NV_SATFINITE, {interp});
  }}
}};
"""


def _regs(n: int, first: int = 0) -> str:
    return ", ".join(f"%{first + i}" for i in range(n))


def _acc_operands(var: str = "d") -> str:
    return ", ".join(f'"+f"({var}[{i}])' for i in range(64))


def wgmma_helpers() -> str:
    """The m64n128 wgmma wrappers (64 accumulator registers each) and the accumulator fence."""
    out = [f"""namespace mxc {{
__device__ __forceinline__ void fence_acc(float* d) {{
  asm volatile("" : {_acc_operands()} :: "memory");
}}
__device__ __forceinline__ void wgmma_bf16_m64n128k16(float* d, uint64_t a, uint64_t b) {{
  asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {{{_regs(64)}}}, %64, %65, 1, 1, 1, 0, 0;\\n"
               : {_acc_operands()} : "l"(a), "l"(b));
}}
template <int A, int B> __device__ void wgmma_fp8_m64n128k32(float* d, uint64_t a, uint64_t b);
"""]
    for ta, na in FP8.values():
        for tb, nb in FP8.values():
            out.append(f"""template <> __device__ __forceinline__ void wgmma_fp8_m64n128k32<{ta}, {tb}>(float* d, uint64_t a, uint64_t b) {{
  asm volatile("wgmma.mma_async.sync.aligned.m64n128k32.f32.{na}.{nb} {{{_regs(64)}}}, %64, %65, 0, 1, 1;\\n"
               : {_acc_operands()} : "l"(a), "l"(b));
}}
""")
    out.append("}  // namespace mxc\n")
    return "".join(out)


def _wrapper(k: Kernel) -> str:
    ptr = {"x": "const float*", "w_tensor_scale": "const float*", "bias": "const float*", "y": "float*",
           "codes": "uint8_t*", "scales": "uint8_t*", "xb": "__nv_bfloat16*"}
    if k.kind == "wgmma":
        ptr["x"] = "const __nv_bfloat16*"
    ptr["a_tensor_scale"] = "float*" if k.kind == "amax" else "const float*"
    params = [f"{ptr.get(n, 'const uint8_t*')} __restrict__ {n}" for n, _ in k.bindings()]
    params += [f"int {c}" for c in k.constants()]
    bias = str(k.bias).lower()
    ts = "w_tensor_scale" if k.has_tensor_scale else "nullptr"
    b = "bias" if k.bias else "nullptr"
    if k.kind == "gemv":
        body = f"mxc::gemv<F_{k.w_format}, {k.mt}, 2, {bias}>(x, w, w_scales, {ts}, {b}, y, M, N, K, epi);"
    elif k.kind == "wgmma":
        body = f"mxc::wgmma_async<F_{k.w_format}, {bias}>(x, w, w_scales, {ts}, {b}, y, M, N, K, epi);"
    elif k.kind == "tobf16":
        body = "mxc::to_bf16(x, xb, M, K);"
    elif k.kind == "actq":
        body = f"mxc::actq_mx<E_{k.a_format}>(x, codes, scales, M, K);"
    elif k.kind == "amax":
        body = "mxc::bs::amax(x, a_tensor_scale, M, K);"
    elif k.kind == "bsq" and k.a_format == "bf16":
        body = "mxc::bs::bsq_bf16(x, codes, M, K);"
    elif k.kind == "bsq":
        ats = "a_tensor_scale" if k.act_tensor_scale else "nullptr"
        body = f"mxc::bs::bsq<Q_{k.a_format}, F_{k.a_format}, {k.unit}>(x, codes, scales, {ats}, M, K);"
    elif k.kind in ("bsmma", "bsdec"):
        ua, uw = k.units()
        fa = "mxc::bs::BF16" if k.kind == "bsdec" else f"F_{k.a_format}"
        a_s = "a_scales" if k.kind == "bsmma" else "nullptr"
        ats = "a_tensor_scale" if k.act_tensor_scale else "nullptr"
        body = (f"mxc::bs::gemm<mxc::bs::Atom, {fa}, {ua}, F_{k.w_format}, {uw}, {bias}>"
                f"(a, {a_s}, {ats}, w, w_scales, {ts}, {b}, y, M, N, K, epi);")
    else:
        body = (f"mxc::qgmma_async<F_{k.a_format}, F_{k.w_format}, {bias}>"
                f"(a, a_scales, w, w_scales, {b}, y, M, N, K, epi);")
    # wgmma kernels: one CTA per SM, all registers; gemv: two CTAs (128 registers), latency hidden by warps
    one = k.kind in ("wgmma", "qgmma", "bsmma", "bsdec", "amax")
    bounds = f"__launch_bounds__({k.threads}, {1 if one else 2}) "
    return f'extern "C" __global__ void {bounds}{k.name}({", ".join(params)}) {{\n  {body}\n}}\n'


def _act_quantizer(name: str) -> str:
    """The C++ quantizer of the bsq kernel for activation format `name` (mxc_bs.cuh's QMx / QNv)."""
    if name in NV_ACT:
        return f"using Q_{name} = mxc::bs::{'QNv46' if get_format(name).choice == '4over6' else 'QNv'};\n"
    e = get_format(name).element
    enc = {"e4m3": "mxc::bs::Fp8E4M3", "e5m2": "mxc::bs::Fp8E5M2"}.get(
        e.name, f"mxc::bs::Mini<{e.ebits}, {e.mbits}, {e.bias}>")
    return f"using Q_{name} = mxc::bs::QMx<{e.emax}, {enc}>;\n"


def _pair(k: Kernel) -> str:
    """Pair<FA, FB>: the tcgen05 kind, MMA K, scale vector and instruction descriptor of a GEMM."""
    a = "mxc::bs::BF16" if k.kind == "bsdec" else f"F_{k.a_format}"
    d = pair_desc("bf16" if k.kind == "bsdec" else k.a_format, k.w_format)
    return (f"template <> struct Pair<{a}, F_{k.w_format}> {{\n"
            f"  static constexpr int KIND = {d.kind}, K = {tc.MMA_K[d.kind]}, VEC = {tc.SCALE_VEC[d.kind]}, "
            f"SFA_SHIFT = {tc.SFA_ID_SHIFT}, SFB_SHIFT = {tc.SFB_ID_SHIFT};\n"
            f"  static constexpr uint32_t IDESC = 0x{d.word:08x}u;  // kind::{tc.KIND_NAMES[d.kind]}\n}};\n")


def source(kernels: list[Kernel]) -> str:
    """One CUDA translation unit holding `kernels` (deduplicated, in order), all for one architecture."""
    kernels = list(dict.fromkeys(kernels))
    arch = _arch(kernels)
    formats = sorted({k.w_format for k in kernels if k.w_format}
                     | {k.a_format for k in kernels if k.kind in ("qgmma", "bsmma", "bsq") and k.a_format != "bf16"})
    encoders = sorted({k.a_format for k in kernels if k.kind == "actq"})
    quantizers = sorted({k.a_format for k in kernels if k.kind in ("bsq", "amax") and k.a_format != "bf16"})
    parts = [f"// mxc kernels for {arch}\n"]
    if arch == "sm_90a":
        parts += ["#define MXC_SM90 1\n", '#include "mxc_sm90.cuh"\n', wgmma_helpers(), '#include "mxc_sm90_mma.cuh"\n']
    else:
        parts += ['#include "mxc_sm90.cuh"\n']  # the decode, the epilogue and gemv are plain CUDA
    kinds = "".join(f"constexpr int KIND_{v.upper()} = {k};\n" for k, v in tc.KIND_NAMES.items())
    parts.append(f"namespace mxc {{\nnamespace bs {{\n{kinds}template <class FA, class FB> struct Pair;\n}}\n}}\n")
    parts += [format_struct(f) for f in formats] + [_encoder(f) for f in encoders]
    parts += ['#include "mxc_bs.cuh"\n', '#include "mxc_bs_atoms.cuh"\n']
    pairs = list(dict.fromkeys(_pair(k) for k in kernels if k.kind in ("bsmma", "bsdec")))
    if pairs:
        parts.append("namespace mxc {\nnamespace bs {\n" + "".join(pairs) + "}\n}\n")
    parts += [_act_quantizer(f) for f in quantizers]
    parts += [_wrapper(k) for k in kernels]
    return "\n".join(parts)


def _arch(kernels: list[Kernel]) -> str:
    archs = {k.arch for k in kernels}
    if len(archs) != 1:
        raise KernelError(f"one kernel library holds one architecture, got {sorted(archs)}")
    (arch,) = archs
    if arch not in ARCHS:
        raise KernelError(f"unknown architecture {arch} (known: {', '.join(ARCHS)})")
    if arch != "sm_90a" and any(k.kind in ("wgmma", "qgmma", "actq", "tobf16") for k in kernels):
        raise KernelError("wgmma kernels are sm_90a only")
    return arch


# ---------------------------------------------------------------- assembly
def nvcc() -> str:
    """Path of nvcc (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)."""
    for cand in (shutil.which("nvcc"), os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc")):
        if cand and os.path.isfile(cand):
            return cand
    raise KernelError("nvcc not found: the cuda-sm90 target assembles its kernels with CUDA 12.8+ nvcc/ptxas "
                      "(install the CUDA toolkit or put nvcc on PATH)")


@dataclass(frozen=True)
class Built:
    """An assembled kernel library: the CUDA source, its PTX and cubin (content-addressed cache files)."""

    source: str
    ptx_path: Path
    cubin_path: Path

    @property
    def cubin(self) -> bytes:
        return self.cubin_path.read_bytes()

    @property
    def ptx(self) -> bytes:
        return self.ptx_path.read_bytes()


def _cache_dir() -> Path:
    d = Path(os.environ.get("MXC_CACHE", Path.home() / ".cache" / "mxc")) / "kernels"
    d.mkdir(parents=True, exist_ok=True)
    return d


@cache
def _header_digest() -> str:
    return hashlib.sha256(b"".join((HERE / f).read_bytes() for f in HEADERS)).hexdigest()


def build(kernels: list[Kernel]) -> Built:
    """nvcc -> PTX, ptxas -> cubin, for the kernels' architecture; cached by the source's hash
    (MXC_CACHE, ~/.cache/mxc)."""
    src = source(kernels)
    arch = _arch(kernels)
    key = hashlib.sha256((src + _header_digest() + arch + RECIPE).encode()).hexdigest()[:24]
    d = _cache_dir()
    ptx_path, cubin_path = d / f"{key}.ptx", d / f"{key}.cubin"
    if not (ptx_path.is_file() and cubin_path.is_file()):
        # Every file goes through a name of this process and is renamed into place: concurrent
        # compilers (pytest workers) may build the same library.
        cu, tmp_cu = d / f"{key}.cu", d / f"{key}.cu.{os.getpid()}"
        tmp_cu.write_text(src)
        tmp_cu.replace(cu)  # atomic: a concurrent nvcc keeps reading the file it opened
        tool = nvcc()
        ptxas = str(Path(tool).with_name("ptxas"))
        steps = (  # nvcc: CUDA C++ -> PTX; ptxas: PTX -> cubin
            ([tool, "-std=c++17", "-O3", f"-I{HERE}", f"-arch=compute_{arch[3:]}", "-ptx", str(cu), "-o"], ptx_path),
            ([ptxas, f"-arch={arch}", "-O3", str(ptx_path), "-o"], cubin_path),
        )
        for cmd, out in steps:
            tmp = out.with_suffix(out.suffix + f".{os.getpid()}")
            r = subprocess.run(cmd + [str(tmp)], capture_output=True, text=True)
            if r.returncode:
                raise KernelError(f"{Path(cmd[0]).name} failed for {cu}:\n{r.stderr[-4000:]}")
            tmp.replace(out)
    return Built(src, ptx_path, cubin_path)


def _bs_kernels(arch: str) -> list[Kernel]:
    """The block-scaled skeleton's variants for `arch`: every native pair, its quantizers."""
    ks = []
    for a in BS_ACT_FORMATS:
        if a in NV_ACT:
            ks.append(Kernel("amax", a_format=a, arch=arch))
        for w in WEIGHT_FORMATS:
            kind = pair_kind(a, w)
            if kind is not None:
                ks.append(Kernel("bsq", a_format=a, arch=arch, unit=unit_elements(a, kind)))
                ks += [Kernel("bsmma", w, a, bias, arch=arch) for bias in (False, True)]
    return list(dict.fromkeys(ks))


def every_kernel(arch: str = "sm_90a") -> list[Kernel]:
    """Every variant `select` can pick for `arch`: what CI assembles."""
    ks = []
    if arch == "sm_100a":
        for f in WEIGHT_FORMATS:
            for bias in (False, True):
                ks.append(Kernel("bsdec", f, bias=bias, arch=arch))
                ks += [Kernel("gemv", f, bias=bias, mt=mt, arch=arch) for mt in GEMV_MT]
        ks.append(Kernel("bsq", a_format="bf16", arch=arch))
        return ks + _bs_kernels(arch)
    for f in WEIGHT_FORMATS:
        for bias in (False, True):
            ks.append(Kernel("wgmma", f, bias=bias))
            ks += [Kernel("gemv", f, bias=bias, mt=mt) for mt in GEMV_MT]
    ks.append(Kernel("tobf16"))
    for a in QGMMA_FORMATS:
        ks.append(Kernel("actq", a_format=a))
        ks += [Kernel("qgmma", w, a, bias) for w in QGMMA_FORMATS for bias in (False, True)]
    return ks + _bs_kernels(arch)


__all__ = ["Built", "Kernel", "KernelError", "build", "every_kernel", "layer_path", "select", "source"]
