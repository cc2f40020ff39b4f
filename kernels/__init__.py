"""mxc's CUDA kernels for the `cuda-sm90` target: variants, source generation, assembly.

The kernel bodies are templates in `mxc_sm90.cuh` / `mxc_sm90_mma.cuh`. For the
layers of a model, `source()` writes one translation unit: a struct per number
format, generated from `mxc.numerics.formats` (so the decode has one source of
truth), the 64-register `wgmma` inline PTX, and one `extern "C"` wrapper per
`Kernel` in IREE's custom-dispatch ABI (buffers in binding order, then i32
constants). `build()` runs nvcc for `sm_90a` (PTX) and ptxas (cubin); the cubin is
what the artifact embeds.
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

from mxc.compiler.errors import MxcError
from mxc.numerics.elements import decode_table
from mxc.numerics.formats import NONE, ElementType, Format, get_format
from mxc.numerics.quantize import IF4_INT_STEP

HERE = Path(__file__).resolve().parent
ARCH = "sm_90a"
RECIPE = "nvcc -O3 -arch=compute_90a -ptx | ptxas -O3 -arch=sm_90a"  # part of the cache key
EPILOGUES = {"none": 0, "relu": 1, "gelu": 2, "silu": 3}
GEMV_MAX_M = 16  # decode shapes; larger M takes the wgmma kernel
GEMV_MT = (1, 4, 16)  # rows of x per pass of the gemv variants
STAGES = 4  # cp.async depth of the wgmma kernel (mxc_sm90_mma.cuh)
FP8 = {"e4m3": (0, "e4m3"), "e5m2": (1, "e5m2")}  # wgmma type tags
QGMMA_FORMATS = ("mxfp8", "mxfp8_e5m2")  # formats of both operands of the FP8 wgmma kernel
# Weight formats the weight-only kernels take (every format of numerics.formats).
WEIGHT_FORMATS = ("mxfp8", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4", "mxint8",
                  "nvfp4", "nvfp4_4over6", "if4", "nvint4", "fp4_ue5m3")


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
    quantizer), `qgmma` (MXFP8 x MXFP8, FP8 QGMMA).
    """

    kind: str
    w_format: str = ""
    a_format: str = NONE
    bias: bool = False
    mt: int = 1  # gemv: rows of x per pass

    @property
    def name(self) -> str:
        parts = ["mxc", self.kind]
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

    def bindings(self) -> list[tuple[str, bool]]:
        """(name, read-only) in the kernel's parameter order; outputs last."""
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
        return ["M", "K"] if self.kind in ("actq", "tobf16") else ["M", "N", "K", "epi"]

    @property
    def threads(self) -> int:
        return 256

    @property
    def smem(self) -> int:
        """Dynamic shared memory bytes (the export's workgroup_local_memory)."""
        if self.kind == "wgmma":
            rb = 64 * get_format(self.w_format).element.bits // 8
            return STAGES * (128 * 64 * 2 + 128 * rb) + 2 * 128 * 64 * 2
        if self.kind == "qgmma":
            return STAGES * 2 * 128 * 64 + 2 * (128 + 128) * 2 * 4
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
        return (-(-n // 128), -(-m // 128), 1)


def select(m: int, w_format: str, a_format: str, bias: bool) -> list[Kernel] | str:
    """The kernels that compute one fused layer, or the reason there are none."""
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
    return (f"{a_format} activations x {wf} weights have no cuda-sm90 kernel (Hopper's tensor cores take "
            f"FP8 operands: use --act-format mxfp8 with mxfp8 weights, or weights-only)")


# ---------------------------------------------------------------- source generation
def _f32(v: float) -> str:
    bits = int(np.array(v, dtype=np.float32).view(np.uint32))
    return f"__int_as_float(0x{bits:08x})"


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
    else:
        body = (f"mxc::qgmma_async<F_{k.a_format}, F_{k.w_format}, {bias}>"
                f"(a, a_scales, w, w_scales, {b}, y, M, N, K, epi);")
    # wgmma kernels: one CTA per SM, all registers; gemv: two CTAs (128 registers), latency hidden by warps
    bounds = f"__launch_bounds__({k.threads}, {1 if k.kind in ('wgmma', 'qgmma') else 2}) "
    return f'extern "C" __global__ void {bounds}{k.name}({", ".join(params)}) {{\n  {body}\n}}\n'


def source(kernels: list[Kernel]) -> str:
    """One CUDA translation unit holding `kernels` (deduplicated, in order)."""
    kernels = list(dict.fromkeys(kernels))
    formats = sorted({k.w_format for k in kernels if k.w_format} | {k.a_format for k in kernels if k.kind == "qgmma"})
    encoders = sorted({k.a_format for k in kernels if k.kind == "actq"})
    parts = ['#include "mxc_sm90.cuh"\n', wgmma_helpers(), '#include "mxc_sm90_mma.cuh"\n']
    parts += [format_struct(f) for f in formats] + [_encoder(f) for f in encoders]
    parts += [_wrapper(k) for k in kernels]
    return "\n".join(parts)


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
    return hashlib.sha256(b"".join((HERE / f).read_bytes() for f in ("mxc_sm90.cuh", "mxc_sm90_mma.cuh"))).hexdigest()


def build(kernels: list[Kernel]) -> Built:
    """nvcc -> PTX (sm_90a), ptxas -> cubin; cached by the source's hash (MXC_CACHE, ~/.cache/mxc)."""
    src = source(kernels)
    key = hashlib.sha256((src + _header_digest() + ARCH + RECIPE).encode()).hexdigest()[:24]
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
        steps = (  # nvcc: CUDA C++ -> PTX for sm_90a; ptxas: PTX -> cubin
            ([tool, "-std=c++17", "-O3", f"-I{HERE}", f"-arch=compute_{ARCH[3:]}", "-ptx", str(cu), "-o"], ptx_path),
            ([ptxas, f"-arch={ARCH}", "-O3", str(ptx_path), "-o"], cubin_path),
        )
        for cmd, out in steps:
            tmp = out.with_suffix(out.suffix + f".{os.getpid()}")
            r = subprocess.run(cmd + [str(tmp)], capture_output=True, text=True)
            if r.returncode:
                raise KernelError(f"{Path(cmd[0]).name} failed for {cu}:\n{r.stderr[-4000:]}")
            tmp.replace(out)
    return Built(src, ptx_path, cubin_path)


def every_kernel() -> list[Kernel]:
    """Every variant `select` can pick: what CI assembles."""
    ks = []
    for f in WEIGHT_FORMATS:
        for bias in (False, True):
            ks.append(Kernel("wgmma", f, bias=bias))
            ks += [Kernel("gemv", f, bias=bias, mt=mt) for mt in GEMV_MT]
    ks.append(Kernel("tobf16"))
    for a in QGMMA_FORMATS:
        ks.append(Kernel("actq", a_format=a))
        ks += [Kernel("qgmma", w, a, bias) for w in QGMMA_FORMATS for bias in (False, True)]
    return ks


__all__ = ["Built", "Kernel", "KernelError", "build", "every_kernel", "select", "source"]
