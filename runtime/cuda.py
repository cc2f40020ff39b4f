"""mxc's CUDA kernels run from Python: a cubin in torch's CUDA context, and a layer's launches on it.

    mod = Module(mxc.kernels.build(kernels).cubin)
    y = run_layer(mod, kernels, x, q, "gelu", bias)        # x float32 [M, K] on the GPU, q a QTensor
    bufs = run_kernels(mod, kernels, {"x": x}, m, 0, k)    # the buffers by name, intermediates too

This is what the GPU tests (tests/gpu) and the benchmarks (tools/bench_cuda.py) launch the kernels
with. The launches are `mxc.kernels.layer_launches`, the sequence lower-mxq-to-cuda turns into
`flow.dispatch`es, so a layer runs here exactly as in an artifact: the same cubin, the same parameter
order (the buffers in binding order, then the i32 constants), launched through the CUDA driver API
(ctypes) on torch's current stream, as IREE launches them. Buffers are named as the kernel kinds
name them (`mxc.kernels.kinds`): the layer provides `x`, `w`, `w_scales`, `w_tensor_scale` and
`bias`, the kernels write the rest and the last one `y`.

Needs torch alone (no torch-mlir, no IREE): a GPU host without the compiler runs it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping

import torch

from mxc.kernels.catalog import every_kernel
from mxc.kernels.kinds import GEMV_MT, BsDec, BsQ, Gemv, Kernel, dec1b_kernel, dec1b_variants, ring_variants
from mxc.kernels.launches import Launch, layer_launches, weight_layout
from mxc.kernels.operands import WEIGHT_FORMATS, WeightLayout
from mxc.numerics.quantize import QTensor

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "i8": torch.uint8}  # Binding.dtype -> torch
DEFAULT_SMEM = 48 * 1024  # more dynamic shared memory needs the function's limit raised first
MAX_DYNAMIC_SMEM = 8  # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES


def hopper_kernels() -> list[Kernel]:
    """Every sm_90a kernel: what cuda-sm90 can select (the catalogue), the sm_90a twins of what
    only cuda-sm100 selects: the block-scaled skeleton's decode path (bf16 `bsq` + `bsdec`) and the
    f32 `gemv` (whose x = I product is the bit-exact check of the weight decode), and `dec1b` for every
    format with the variants `bench_cuda dec1b` compares, and the measurement variants of dec1b and decs that
    `bench_cuda ring` times (kinds.ring_variants). The library the GPU tests and the benchmarks load."""
    decode = [BsDec(w_format=f, bias=b) for f in WEIGHT_FORMATS for b in (False, True)]
    gemv = [Gemv(w_format=f, bias=b, mt=mt) for f in WEIGHT_FORMATS for b in (False, True) for mt in GEMV_MT]
    dec1b = [k for f in WEIGHT_FORMATS for b in (False, True) for k in [dec1b_kernel(f, b), *dec1b_variants(f, b)]]
    return list(dict.fromkeys([*every_kernel("sm_90a"), BsQ(a_format="bf16"), *decode, *gemv, *dec1b,
                               *ring_variants()]))


class CudaError(RuntimeError):
    """A CUDA driver call that failed; the message names the call, the kernel and the CUresult."""


class Module:
    """A cubin loaded into torch's CUDA context (the primary context of the current device)."""

    def __init__(self, cubin: bytes):
        torch.zeros(1, device="cuda")  # creates torch's primary context and makes it current here
        self._cu = ctypes.CDLL("libcuda.so.1")
        self._image = ctypes.create_string_buffer(cubin, len(cubin))  # alive as long as the module
        self._mod = ctypes.c_void_p()
        self._check(self._cu.cuModuleLoadData(ctypes.byref(self._mod), self._image), "cuModuleLoadData")
        self._functions: dict[str, ctypes.c_void_p] = {}

    @staticmethod
    def _check(rc: int, what: str) -> None:
        if rc:
            raise CudaError(f"{what} failed: CUresult {rc}")

    def function(self, kernel: Kernel) -> ctypes.c_void_p:
        """The kernel's CUfunction, its shared-memory limit raised to `kernel.smem`."""
        if kernel.name in self._functions:
            return self._functions[kernel.name]
        f = ctypes.c_void_p()
        rc = self._cu.cuModuleGetFunction(ctypes.byref(f), self._mod, kernel.name.encode())
        if rc:
            raise CudaError(f"cuModuleGetFunction({kernel.name}) failed: CUresult {rc} "
                            "(500: the cubin was not built with this kernel)")
        if kernel.smem > DEFAULT_SMEM:
            rc = self._cu.cuFuncSetAttribute(f, MAX_DYNAMIC_SMEM, ctypes.c_int(kernel.smem))
            self._check(rc, f"cuFuncSetAttribute({kernel.name}, smem={kernel.smem})")
        self._functions[kernel.name] = f
        return f

    def launch(self, kernel: Kernel, grid: tuple[int, int, int], args: list) -> None:
        """Launch on torch's current stream; `args` are tensors (pointers) and ints (i32), in order."""
        vals = [ctypes.c_void_p(a.data_ptr()) if isinstance(a, torch.Tensor) else ctypes.c_int(a)
                for a in args]
        ptrs = [ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in vals]
        params = (ctypes.c_void_p * len(ptrs))(*ptrs)
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        rc = self._cu.cuLaunchKernel(self.function(kernel), *grid, kernel.threads, 1, 1, kernel.smem, stream,
                                     params, None)
        self._check(rc, f"cuLaunchKernel({kernel.name}, grid={grid})")


def layer_weights(kernels: list[Kernel], q: QTensor, k: int, device: str = "cuda") -> dict[str, torch.Tensor]:
    """The weight buffers the layer's kernels read: `w`, `w_scales` (and `w_tensor_scale` for NV
    formats), as stored, or re-packed into the layout of `weight_layout(kernels)`."""
    return layout_weights(weight_layout(kernels), q, k, device)


def layout_weights(layout: WeightLayout | None, q: QTensor, k: int, device: str = "cuda") -> dict[str, torch.Tensor]:
    """layer_weights for a weight layout (None: as stored)."""
    if layout is None:
        w, scales = q.packed_elements(), q.scales
    else:
        w, scales = layout.pack(q.elements, q.scales, q.fmt.name, k)
    out = {"w": w.contiguous().to(device), "w_scales": scales.contiguous().to(device)}
    if q.tensor_scale is not None:
        out["w_tensor_scale"] = q.tensor_scale.reshape(1).float().to(device)
    return out


def _allocate(launch: Launch, fill: int | None) -> dict[str, torch.Tensor]:
    out = {}
    for o in launch.writes:
        t = torch.empty(o.shape, dtype=DTYPES[o.dtype], device="cuda")
        if fill is not None:
            t.view(torch.uint8).fill_(fill)
        out[o.name] = t
    return out


def _argument(kernel: Kernel, name: str, dtype: str, buffers: Mapping[str, torch.Tensor]) -> torch.Tensor:
    t = buffers.get(name)
    if t is None:
        raise ValueError(f"{kernel.name} reads `{name}`, which the layer does not provide "
                         f"(have: {', '.join(buffers)})")
    if t.dtype != DTYPES[dtype] or not t.is_cuda or not t.is_contiguous():
        raise ValueError(f"{kernel.name} reads `{name}` as a contiguous CUDA {DTYPES[dtype]} buffer, "
                         f"got {t.dtype} on {t.device}{'' if t.is_contiguous() else ', not contiguous'}")
    return t


def run_kernels(module: Module, kernels: list[Kernel], buffers: Mapping[str, torch.Tensor], m: int, n: int,
                k: int, epilogue: str = "none", fill: int | None = None) -> dict[str, torch.Tensor]:
    """Launch `kernels` (a layer's, or a prefix of them: the activation quantizers alone) for an
    [m, k] x [n, k]^T layer on the `buffers` the layer provides; every buffer by name, those the
    kernels wrote included. `fill`: a byte the written buffers start as (garbage the kernels must
    overwrite, padding included); uninitialized when None."""
    bufs = dict(buffers)
    for launch in layer_launches(kernels, m, n, k, epilogue):
        bufs |= _allocate(launch, fill)
        args = [_argument(launch.kernel, b.name, b.dtype, bufs) for b in launch.kernel.bindings()]
        module.launch(launch.kernel, launch.grid, [*args, *launch.constants])
    return bufs


def run_layer(module: Module, kernels: list[Kernel], x: torch.Tensor, q: QTensor, epilogue: str = "none",
              bias: torch.Tensor | None = None,
              weights: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """y = epilogue(x @ W^T + bias), float32 [M, N], through `kernels` (a target's selection for the
    layer); x float32 [M, K] and bias float32 [N] on the GPU, W the quantized `q` [N, K].
    `weights`: the buffers of `layer_weights(kernels, q, K)` already on the GPU (the benchmarks
    rotate copies of them); made from `q` when None."""
    m, k = x.shape
    layer = dict(weights if weights is not None else layer_weights(kernels, q, k))
    layer["x"] = x
    if bias is not None:
        layer["bias"] = bias
    return run_kernels(module, kernels, layer, m, q.shape[0], k, epilogue)["y"]
