"""A roofline estimate per layer for Blackwell (B200), from an artifact's manifest.

`mxc inspect ARTIFACT --target cuda-sm100` prints it: for each quantized layer, the
kernels cuda-sm100 would run (`mxc.kernels.select`), the tensor-core rate of that
path, the bytes it moves, and time = max(FLOPs / peak, bytes / bandwidth). Dense
peaks of the B200 (HGX, 1000 W; ../shared/reference §5): 2.25 PFLOP/s bf16,
4.5 PFLOP/s FP8 / FP6 (kind::mxf8f6f4, whatever its operands), 9 PFLOP/s FP4
(kind::mxf4, kind::mxf4nvf4), 8 TB/s HBM3e. Decode-shaped weight-only layers
(gemv) run on the CUDA cores; they are bandwidth-bound, so the estimate uses
bytes only. An estimate, not a measurement: no Blackwell GPU has run these kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

from mxc.kernels import layer_path, pair_kind, select
from mxc.kernels import tcgen05 as tc
from mxc.numerics.formats import NONE, get_format

PEAK_FLOPS = {tc.KIND_F16: 2.25e15, tc.KIND_MXF8F6F4: 4.5e15, tc.KIND_MXF4: 9e15, tc.KIND_MXF4NVF4: 9e15}
BANDWIDTH = 8e12  # bytes/s
GEMV_FLOPS = 80e12  # FP32 FMA on the CUDA cores (148 SMs): never the bound at M <= 16


@dataclass(frozen=True)
class Estimate:
    layer: str
    m: int
    n: int
    k: int
    path: str
    peak: float  # FLOP/s of the path
    flops: float
    bytes: float
    seconds: float
    bound: str  # "compute" or "memory"


def _bits(fmt: str) -> float:
    """Bits per element of the activations bsq writes (codes + scales, or bf16 for the decode path)."""
    if fmt == "bf16":
        return 16.0
    return get_format(fmt).bits_per_element


def estimate(row: dict) -> Estimate | None:
    """The estimate of one manifest row (None for a layer that is not quantized)."""
    if row.get("status") != "quantized":
        return None
    *lead, k = row["input_shape"]
    n = row["weight_shape"][0]
    m = 1
    for d in lead:
        m *= d
    w_fmt = row["weight_format"].split("{")[0]
    a_fmt = row["activation_format"].split("{")[0]
    bias = bool(row.get("has_bias"))
    ks = select(m, w_fmt, a_fmt, bias, "cuda-sm100")
    if isinstance(ks, str) and a_fmt != NONE:  # what mxq-legalize-cuda does: activations high precision
        a_fmt, ks = NONE, select(m, w_fmt, NONE, bias, "cuda-sm100")
    if isinstance(ks, str):
        return Estimate(row["layer"], m, n, k, f"no cuda-sm100 kernel: {ks}", 0.0, 0.0, 0.0, float("nan"), "-")
    main = ks[-1]
    if main.kind == "gemv":
        peak = GEMV_FLOPS
    elif main.kind == "bsdec":
        peak = PEAK_FLOPS[tc.KIND_F16]
    else:
        peak = PEAK_FLOPS[pair_kind(a_fmt, w_fmt)]
    flops = 2.0 * m * n * k
    # weights (codes + scales) once; activations read as float32, and (except by gemv) written by bsq
    # as codes or bf16 and read back by the GEMM; the float32 output written
    staged = 0.0 if main.kind == "gemv" else 2 * _bits("bf16" if main.kind == "bsdec" else a_fmt) / 8 * m * k
    nbytes = row["bits_per_weight"] * n * k / 8 + 4.0 * m * k + staged + 4.0 * m * n
    t_c, t_m = flops / peak, nbytes / BANDWIDTH
    return Estimate(row["layer"], m, n, k, layer_path(ks), peak, flops, nbytes, max(t_c, t_m),
                    "compute" if t_c >= t_m else "memory")


def report(manifest: dict) -> str:
    """The table `mxc inspect --target cuda-sm100` prints."""
    lines = [f"roofline on cuda-sm100 (B200: 2.25 PF bf16, 4.5 PF FP8/FP6, 9 PF FP4, 8 TB/s; an estimate, "
             f"not measured)",
             f"{'layer':40s} {'M x N x K':>20s} {'peak PF':>7s} {'FLOP/B':>7s} {'est us':>8s} {'bound':7s} path"]
    total = 0.0
    for row in manifest["layers"]:
        e = estimate(row)
        if e is None:
            continue
        shape = f"{e.m}x{e.n}x{e.k}"
        if e.peak == 0.0:
            lines.append(f"{e.layer[-40:]:40s} {shape:>20s} {'':>7s} {'':>7s} {'':>8s} {'':7s} {e.path}")
            continue
        total += e.seconds
        lines.append(f"{e.layer[-40:]:40s} {shape:>20s} {e.peak / 1e15:7.2f} {e.flops / e.bytes:7.1f} "
                     f"{e.seconds * 1e6:8.2f} {e.bound:7s} {e.path}")
    lines.append(f"{'total (quantized layers, one pass)':40s} {'':>20s} {'':>7s} {'':>7s} {total * 1e6:8.2f}")
    return "\n".join(lines)
