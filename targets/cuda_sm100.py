"""`cuda-sm100`: Blackwell (B200), mxc's sm_100a kernels on block-scaled `tcgen05.mma`.

Native pairs: quantize the activations (`bsq`, with `amax` for NV formats) + the block-scaled MMA
(`bsmma`). Weight-only layers: `gemv` (M <= 16), or bf16 activation tiles + weights decoded to
bf16 on kind::f16 (`bsdec`). mxc has no Blackwell GPU: the kernels are assembled and their SASS
read, never run, and `mxc inspect --target cuda-sm100` estimates their time from `ROOFLINE`.
"""

from __future__ import annotations

from mxc.kernels.catalog import native_pair_kernels
from mxc.kernels.kinds import GEMV_MAX_M, GEMV_MT, BsDec, BsQ, Gemv
from mxc.kernels.operands import MX_NATIVE, pair_kind

from .base import GemmLayer, Roofline
from .cuda import CudaTarget

# Dense peaks of the B200 (HGX, 1000 W; ../shared/reference §5): 2.25 PFLOP/s bf16, 4.5 PFLOP/s
# FP8 / FP6 (kind::mxf8f6f4, whatever its operands), 9 PFLOP/s FP4 (kind::mxf4, mxf4nvf4), 8 TB/s.
ROOFLINE = Roofline("B200", bf16=2.25e15, fp8=4.5e15, fp4=9e15, bandwidth=8e12, cuda_cores=80e12)


class CudaSm100(CudaTarget):
    name = "cuda-sm100"
    help = "Blackwell: block-scaled tcgen05 kernels for sm_100a (assembled, not runnable here)"
    not_runnable = ("its kernels are sm_100a (Blackwell) cubins, and mxc has no Blackwell GPU to run them on: "
                    "inspect it with `mxc inspect`, or recompile with --target cuda-sm90 (Hopper) or --target cpu")
    arch = "sm_100a"
    m_breakpoints = GEMV_MT  # gemv's rows per pass; bsdec / bsmma past GEMV_MAX_M
    roofline = ROOFLINE

    def kernels(self, layer: GemmLayer):
        w, a, bias = layer.w_format, layer.a_format, layer.bias
        if a is None:
            if layer.m <= GEMV_MAX_M:
                return [Gemv(w_format=w, bias=bias, mt=next(v for v in GEMV_MT if v >= layer.m), arch=self.arch)]
            return [BsQ(a_format="bf16", arch=self.arch), BsDec(w_format=w, bias=bias, arch=self.arch)]
        if pair_kind(a, w) is None:
            return (f"{a} activations x {w} weights have no block-scaled tcgen05 kind (native: "
                    f"{', '.join(MX_NATIVE)} with each other, nvfp4 activations with nvfp4 / nvfp4_4over6 weights)")
        return native_pair_kernels(a, w, bias, self.arch)


TARGET = CudaSm100()
