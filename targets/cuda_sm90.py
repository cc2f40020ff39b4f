"""`cuda-sm90`: Hopper (H100, H200), mxc's sm_90a kernels.

Hopper has FP8 tensor cores and no FP4/FP6 ones. Weight-only layers: `dec` at decode shapes
(M <= 16: weights decoded in registers, bf16 mma.sync; `decs` for large layers at M = 2-16, K split across
CTAs: 1 or 2 splits summed in a thread-block cluster, more through `dsum`),
`tilea` + `rdec` [+ `dsum`] from M = 17 (the weights decoded in registers by the consumer warps into
wgmma's A operand; at prefill shapes too, where it measured faster than decoding the weights once per call
to bf16 tiles for a bf16 GEMM, the path it replaced). MXFP8 x MXFP8: the same bf16 GEMM after `tileq`, which
quantizes the activations and holds them as bf16 (exact): Hopper's FP8 wgmma would need the 32-K block
scales applied by the CUDA cores after every 32 K (the earlier `actq` + `qgmma` measured 0.2x cuBLAS
bf16). The other native block-scaled pairs: the block-scaled skeleton's twin (both operands decoded to
bf16 for wgmma), the sm_100a kernels' stand-in that checks them on this hardware.
"""

from __future__ import annotations

from mxc.kernels.catalog import native_pair_kernels
from mxc.kernels.kinds import (DEC_MT, GEMV_MAX_M, RDEC_NA, Dec, dec1b_kernel, dec_rows, decs_kernels,
                               rdec_kernels, use_dec1b, use_decs)
from mxc.kernels.operands import MX_NATIVE, TILEQ_FORMATS, pair_kind

from .base import GemmLayer
from .cuda import CudaTarget


class CudaSm90(CudaTarget):
    name = "cuda-sm90"
    help = "Hopper: mxc's sm_90a kernels inside an IREE CUDA program (needs nvcc)"
    device = "cuda"
    driver = "cuda"
    arch = "sm_90a"
    # dec's rows of x per CTA, rdec's; past rdec's largest tile of x, buckets of 2, 4 and 8 of them (up to 2047
    # rows), so that a dynamic layer's K split (fewer as M grows: kinds.rdec_splits) is chosen near the M that runs
    m_breakpoints = tuple(sorted(set(DEC_MT) | set(RDEC_NA) | {f * RDEC_NA[-1] - 1 for f in (2, 4, 8)}))

    def kernels(self, layer: GemmLayer):
        w, a, bias = layer.w_format, layer.a_format, layer.bias
        if a is None:
            if layer.m <= GEMV_MAX_M:
                mt = next(v for v in DEC_MT if v >= layer.m)
                split = use_decs(layer.m, layer.n, layer.k, w) if layer.n and layer.k else None
                if split is not None:
                    return decs_kernels(w, mt, *split, bias=bias)
                if mt == 1 and use_dec1b(layer.k or 0):
                    return [dec1b_kernel(w, bias)]
                return [Dec(w_format=w, bias=bias, mt=mt, r=dec_rows(layer.n, w, mt) if mt > 1 and layer.n else 1)]
        if a is None or (a in TILEQ_FORMATS and w in TILEQ_FORMATS):  # bf16 tensor cores
            return rdec_kernels(w, bias, layer.m, layer.n or 0, layer.k or 0, a)
        if pair_kind(a, w) is not None:
            return native_pair_kernels(a, w, bias, self.arch)
        return (f"{a} activations x {w} weights have no cuda-sm90 kernel (quantized activations need "
                f"{', '.join(MX_NATIVE)} with each other, or nvfp4 with nvfp4 / nvfp4_4over6 weights; or weights-only)")


TARGET = CudaSm90()
