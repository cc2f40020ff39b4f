"""A roofline estimate per layer for a target with a `Roofline` (cuda-sm100: a B200), from a manifest.

`mxc inspect ARTIFACT --target cuda-sm100` prints it: for each quantized layer, the
kernels the target would run (its `select`), the tensor-core rate of that path
(the target's `roofline`), the bytes it moves, and time = max(FLOPs / peak,
bytes / bandwidth). Decode-shaped weight-only layers (gemv) run on the CUDA
cores; they are bandwidth-bound. An estimate, not a measurement: no Blackwell
GPU has run these kernels.
"""

from __future__ import annotations

import math

from dataclasses import dataclass

from mxc.kernels import tcgen05 as tc
from mxc.kernels.kinds import BsDec, Gemv
from mxc.kernels.operands import pair_kind
from mxc.numerics.formats import get_format
from mxc.numerics.options import FormatSpec
from mxc.targets import GemmLayer, Roofline, get_target


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


def _peak(r: Roofline, kind: int) -> float:
    return {tc.KIND_F16: r.bf16, tc.KIND_MXF8F6F4: r.fp8, tc.KIND_MXF4: r.fp4, tc.KIND_MXF4NVF4: r.fp4}[kind]


def estimate(row: dict, target_name: str = "cuda-sm100") -> Estimate | None:
    """The estimate of one manifest row (None for a layer that is not quantized)."""
    if row.get("status") != "quantized":
        return None
    *lead, k = row["input_shape"]
    n = row["weight_shape"][0]
    if None in lead:  # a dynamic token dimension: its time depends on the call
        return Estimate(row["layer"], 0, n, k, "dynamic row count: not estimated (compile for one shape to estimate "
                        "it)", 0.0, 0.0, 0.0, math.nan, "-")
    m = 1
    for d in lead:
        m *= d
    acts = row["activation_format"]
    layer = GemmLayer(row["layer"], m, FormatSpec.parse(row["weight_format"]),
                      None if acts == "none" else FormatSpec.parse(acts), bool(row.get("has_bias")))
    return layer_estimate(get_target(target_name), layer, n, k, row["bits_per_weight"])


def layer_estimate(target, layer: GemmLayer, n: int, k: int, bits_per_weight: float) -> Estimate:
    """The roofline time of `layer` ([m, k] x [n, k]^T) through the kernels `target` selects for it."""
    m = layer.m
    ks = target.select(layer)
    if isinstance(ks, str) and layer.acts is not None:  # what mxq-legalize-cuda does: activations high precision
        layer = GemmLayer(layer.layer, m, layer.weights, None, layer.bias)
        ks = target.select(layer)
    if isinstance(ks, str):
        return Estimate(layer.layer, m, n, k, f"no {target.name} kernel: {ks}", 0.0, 0.0, 0.0, float("nan"), "-")
    main, r = ks[-1], target.roofline
    a_fmt = layer.a_format
    if isinstance(main, Gemv):
        peak = r.cuda_cores
    elif isinstance(main, BsDec):
        peak = r.bf16
    else:
        peak = _peak(r, pair_kind(a_fmt, layer.w_format))
    flops = 2.0 * m * n * k
    # weights (codes + scales) once; activations read as float32, and (except by gemv) written by bsq
    # as codes or bf16 and read back by the GEMM; the float32 output written
    staged = 0.0 if isinstance(main, Gemv) else 2 * _bits("bf16" if isinstance(main, BsDec) else a_fmt) / 8 * m * k
    nbytes = bits_per_weight * n * k / 8 + 4.0 * m * k + staged + 4.0 * m * n
    t_c, t_m = flops / peak, nbytes / r.bandwidth
    return Estimate(layer.layer, m, n, k, main.path, peak, flops, nbytes, max(t_c, t_m),
                    "compute" if t_c >= t_m else "memory")


def high_precision_estimate(target, m: int, n: int, k: int, dtype_bits: int) -> float:
    """The roofline time of a layer kept in high precision: bf16 tensor cores, the weights in their dtype."""
    r = target.roofline
    nbytes = dtype_bits / 8 * n * k + 4.0 * m * k + 4.0 * m * n
    return max(2.0 * m * n * k / r.bf16, nbytes / r.bandwidth)


def report(manifest: dict, target_name: str = "cuda-sm100") -> str:
    """The table `mxc inspect --target TARGET` prints."""
    r = get_target(target_name).roofline
    lines = [f"roofline on {target_name} ({r.device}: {r.bf16 / 1e15:g} PF bf16, {r.fp8 / 1e15:g} PF FP8/FP6, "
             f"{r.fp4 / 1e15:g} PF FP4, {r.bandwidth / 1e12:g} TB/s; an estimate, not measured)",
             f"{'layer':40s} {'M x N x K':>20s} {'peak PF':>7s} {'FLOP/B':>7s} {'est us':>8s} {'bound':7s} path"]
    total = 0.0
    for row in manifest["layers"]:
        e = estimate(row, target_name)
        if e is None:
            continue
        shape = f"{e.m or '?'}x{e.n}x{e.k}"
        if e.peak == 0.0:
            lines.append(f"{e.layer[-40:]:40s} {shape:>20s} {'':>7s} {'':>7s} {'':>8s} {'':7s} {e.path}")
            continue
        total += e.seconds
        lines.append(f"{e.layer[-40:]:40s} {shape:>20s} {e.peak / 1e15:7.2f} {e.flops / e.bytes:7.1f} "
                     f"{e.seconds * 1e6:8.2f} {e.bound:7s} {e.path}")
    lines.append(f"{'total (quantized layers, one pass)':40s} {'':>20s} {'':>7s} {'':>7s} {total * 1e6:8.2f}")
    return "\n".join(lines)
