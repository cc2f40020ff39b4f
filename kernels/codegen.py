"""C++ generation: one CUDA translation unit for a list of kernel variants of one architecture.

The kernel bodies are templates (`mxc_sm90.cuh`, `mxc_sm90_prefill.cuh`, `mxc_bs.cuh`,
`mxc_bs_atoms.cuh`); this writes what varies: a struct per number format, generated from
`mxc.numerics.formats` (so the decode has one source of truth), the activation encoders and
quantizers, the tcgen05 instruction descriptor of each GEMM pair (`tcgen05.py`), the `wgmma` inline
PTX (one accumulator operand per register), and each kernel's `extern "C"` wrapper, whose call its kind owns (`kinds.py`).
"""

from __future__ import annotations

import numpy as np

from mxc.errors import MxcError
from mxc.numerics.formats import ElementType, get_format
from mxc.numerics.quantize import IF4_INT_STEP

from . import tcgen05 as tc
from .kinds import ARCHS, CTYPES, RDEC_NA, SM90_ONLY, Amax, BsDec, BsMma, BsQ, Kernel, TileQ
from .operands import NV_ACT, fast_e2m1, fast_fp6, fast_fp8, fast_int8, fast_tab4, one_code, pair_desc



class KernelError(MxcError):
    """A kernel could not be generated or assembled (the message names the tool and the fix)."""


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


def format_struct(name: str) -> str:
    """The C++ struct of a weight format: BITS, BS, TS, E2M1, E8M0, F8, TAB4, FP6, I8, ZERO_SCALE, elem(code, scale
    code), scale(code)."""
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
    int_dec = fast_fp8(name) or fast_fp6(name)
    return f"""struct F_{name} {{
  static constexpr int BITS = {e.bits}, BS = {fmt.block_size};
  static constexpr bool TS = {str(fmt.tensor_scale).lower()};
  static constexpr bool E2M1 = {str(fast_e2m1(name)).lower()};  // elements plain E2M1: dec's integer decode
  static constexpr bool E8M0 = {str(fmt.scale.name == "e8m0").lower()};
  static constexpr bool F8 = {str(fast_fp8(name)).lower()};  // FP8 elements, E8M0 scales: dec1's integer decode
  static constexpr bool TAB4 = {str(fast_tab4(name)).lower()};  // IF4, NVINT4: dec's table decode (sign x per-scale-byte magnitudes)
  static constexpr bool FP6 = {str(fast_fp6(name)).lower()};  // FP6 elements, E8M0 scales: dec's integer decode
  static constexpr bool I8 = {str(fast_int8(name)).lower()};  // MXINT8: dec's integer decode (sign-magnitude bytes, one FMA)
  static constexpr uint32_t F8_BIAS = {e.bias if int_dec else 0}, F8_MB = {e.mbits if int_dec else 0};  // F8, FP6
  static constexpr float TS_NUM = {_f32_literal(fmt.tensor_scale_max * e.max) if fmt.tensor_scale else "0.f"};  // S_enc = TS_NUM / amax
  static constexpr uint32_t ZERO_SCALE = {one_code(fmt)};
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


def _acc_operands(var: str = "d", n: int = 64) -> str:
    return ", ".join(f'"+f"({var}[{i}])' for i in range(n))


def wgmma_helpers() -> str:
    """The m64n128 wgmma wrappers (64 accumulator registers each), the prefill's m64n256 bf16 one (128),
    rdec's m64nN ones with A from registers, and the accumulator fences."""
    out = [f"""namespace mxc {{
__device__ __forceinline__ void fence_acc(float* d) {{
  asm volatile("" : {_acc_operands()} :: "memory");
}}
__device__ __forceinline__ void fence_acc128(float* d) {{
  asm volatile("" : {_acc_operands(n=128)} :: "memory");
}}
__device__ __forceinline__ void wgmma_bf16_m64n256k16(float* d, uint64_t a, uint64_t b) {{
  asm volatile("wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {{{_regs(128)}}}, %128, %129, 1, 1, 1, 0, 0;\\n"
               : {_acc_operands(n=128)} : "l"(a), "l"(b));
}}
__device__ __forceinline__ void wgmma_bf16_m64n128k16(float* d, uint64_t a, uint64_t b) {{
  asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {{{_regs(64)}}}, %64, %65, 1, 1, 1, 0, 0;\\n"
               : {_acc_operands()} : "l"(a), "l"(b));
}}
template <int N> __device__ void wgmma_bf16_rA(float* d, const uint32_t* a, uint64_t b);
template <int N> __device__ void fence_acc_n(float* d);
"""]
    for n in RDEC_NA:  # rdec's wgmma m64nNk16 with A from registers, and its accumulator fence
        out.append(f"""template <> __device__ __forceinline__ void wgmma_bf16_rA<{n}>(float* d, const uint32_t* a, uint64_t b) {{
  asm volatile("wgmma.mma_async.sync.aligned.m64n{n}k16.f32.bf16.bf16 {{{_regs(n // 2)}}}, {{{_regs(4, n // 2)}}}, %{n // 2 + 4}, 1, 1, 1, 0;\\n"
               : {_acc_operands(n=n // 2)} : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}}
template <> __device__ __forceinline__ void fence_acc_n<{n}>(float* d) {{
  asm volatile("" : {_acc_operands(n=n // 2)} :: "memory");
}}
""")
    out.append("}  // namespace mxc\n")
    return "".join(out)


def _wrapper(k: Kernel) -> str:
    """The kernel's `extern "C"` entry point in IREE's custom-dispatch ABI: buffers, then i32 constants."""
    params = [f"{'' if b.writes else 'const '}{CTYPES[b.dtype]}* __restrict__ {b.name}" for b in k.bindings()]
    params += [f"int {c}" for c in k.constants()]
    bounds = f"__launch_bounds__({k.threads}, {k.ctas_per_sm}) "
    if k.cluster_dims:
        bounds += "__cluster_dims__({}, {}, {}) ".format(*k.cluster_dims)
    return f'extern "C" __global__ void {bounds}{k.name}({", ".join(params)}) {{\n  {k.call()}\n}}\n'


def _act_quantizer(name: str) -> str:
    """The C++ quantizer of the bsq kernel for activation format `name` (mxc_bs.cuh's QMx / QNv)."""
    if name in NV_ACT:
        return f"using Q_{name} = mxc::bs::{'QNv46' if get_format(name).choice == '4over6' else 'QNv'};\n"
    e = get_format(name).element
    enc = {"e4m3": "mxc::bs::Fp8E4M3", "e5m2": "mxc::bs::Fp8E5M2"}.get(
        e.name, f"mxc::bs::Mini<{e.ebits}, {e.mbits}, {e.bias}>")
    return f"using Q_{name} = mxc::bs::QMx<{e.emax}, {enc}>;\n"


def _pair(k: BsMma | BsDec) -> str:
    """Pair<FA, FB>: the tcgen05 kind, MMA K, scale vector and instruction descriptor of a GEMM."""
    a = "mxc::bs::BF16" if isinstance(k, BsDec) else f"F_{k.a_format}"
    d = pair_desc(k.act_format(), k.w_format)
    return (f"template <> struct Pair<{a}, F_{k.w_format}> {{\n"
            f"  static constexpr int KIND = {d.kind}, K = {tc.MMA_K[d.kind]}, VEC = {tc.SCALE_VEC[d.kind]}, "
            f"SFA_SHIFT = {tc.SFA_ID_SHIFT}, SFB_SHIFT = {tc.SFB_ID_SHIFT};\n"
            f"  static constexpr uint32_t IDESC = 0x{d.word:08x}u;  // kind::{tc.KIND_NAMES[d.kind]}\n}};\n")


def source(kernels: list[Kernel]) -> str:
    """One CUDA translation unit holding `kernels` (deduplicated, in order), all for one architecture."""
    kernels = list(dict.fromkeys(kernels))
    arch = check_arch(kernels)
    formats = sorted({k.w_format for k in kernels if getattr(k, "w_format", "")}
                     | {k.a_format for k in kernels if isinstance(k, (BsMma, BsQ, TileQ)) and k.a_format != "bf16"})
    encoders = sorted({k.a_format for k in kernels if isinstance(k, TileQ)})
    quantizers = sorted({k.a_format for k in kernels if isinstance(k, (BsQ, Amax)) and k.a_format != "bf16"})
    parts = [f"// mxc kernels for {arch}\n"]
    if arch == "sm_90a":
        parts += ["#define MXC_SM90 1\n", '#include "mxc_sm90.cuh"\n', wgmma_helpers()]
    else:
        parts += ['#include "mxc_sm90.cuh"\n']  # the decode, the epilogue and gemv are plain CUDA
    kinds = "".join(f"constexpr int KIND_{v.upper()} = {k};\n" for k, v in tc.KIND_NAMES.items())
    parts.append(f"namespace mxc {{\nnamespace bs {{\n{kinds}template <class FA, class FB> struct Pair;\n}}\n}}\n")
    parts += [format_struct(f) for f in formats] + [_encoder(f) for f in encoders]
    parts += ['#include "mxc_bs.cuh"\n', '#include "mxc_bs_atoms.cuh"\n']
    if arch == "sm_90a":
        parts.append('#include "mxc_sm90_prefill.cuh"\n')
    pairs = list(dict.fromkeys(_pair(k) for k in kernels if isinstance(k, (BsMma, BsDec))))
    if pairs:
        parts.append("namespace mxc {\nnamespace bs {\n" + "".join(pairs) + "}\n}\n")
    parts += [_act_quantizer(f) for f in quantizers]
    parts += [_wrapper(k) for k in kernels]
    return "\n".join(parts)


def check_arch(kernels: list[Kernel]) -> str:
    """The one architecture of a kernel library (KernelError when mixed, unknown, or wgmma on sm_100a)."""
    archs = {k.arch for k in kernels}
    if len(archs) != 1:
        raise KernelError(f"one kernel library holds one architecture, got {sorted(archs)}")
    (arch,) = archs
    if arch not in ARCHS:
        raise KernelError(f"unknown architecture {arch} (known: {', '.join(ARCHS)})")
    if arch != "sm_90a" and any(isinstance(k, SM90_ONLY) for k in kernels):
        raise KernelError("wgmma kernels are sm_90a only")
    return arch
