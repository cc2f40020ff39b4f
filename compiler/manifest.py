"""manifest.json: what mxc decided for every layer, read off the IR after fusion."""

from __future__ import annotations

import json
import math

from torch_mlir import ir

from mxc.dialects.mxq import format_attr
from mxc.dialects.mxq_kernels import LAUNCH_GROUP_ATTR, PATH_ATTR, buckets_of, kernels_of
from mxc.numerics.formats import NONE
from mxc.numerics.options import FormatSpec, spec_text

_MATMULS = ("mxq.fused_matmul", "mxq.matmul", "mxq.scaled_matmul")


def _s(op, key: str) -> str:
    return ir.StringAttr(op.attributes[key]).value


def _shape(v) -> list[int | None]:
    """A tensor's sizes; a dynamic (token) size as None."""
    t = ir.RankedTensorType(v.type)
    return [None if t.is_dynamic_dim(i) else t.get_dim_size(i) for i in range(t.rank)]


def _dynamic(row: dict) -> bool:
    return None in row.get("input_shape", [])


def _param(v):
    owner = v.owner
    return owner if not isinstance(owner, ir.Block) and owner.operation.name == "mxq.param" else None


# Ops between a parameter and the op that reads it which leave its data as stored (casts, the exact
# bf16/f16 -> f32 extension, transposes and reshapes of a weight).
_VIEWS = ("torch_c.to_builtin_tensor", "torch_c.from_builtin_tensor", "arith.extf", "torch.aten.t",
          "torch.aten.transpose.int", "tensor.collapse_shape")


def _param_behind(v):
    """The mxq.param whose stored data `v` reads, seen through _VIEWS; None when computed at run time."""
    while True:
        owner = v.owner
        if isinstance(owner, ir.Block):
            return None
        if owner.operation.name == "mxq.param":
            return owner
        if owner.operation.name not in _VIEWS:
            return None
        v = owner.operands[0]


def _nbytes(param) -> int:
    """Bytes a parameter takes in model.irpa: its elements at their bit width (FP4 two per byte, FP6 four
    per three bytes)."""
    t = ir.RankedTensorType(param.result.type)
    return -(-math.prod(t.shape) * t.element_type.width // 8)


def _stored(param) -> dict:
    """A high-precision weight's fields: its parameter, shape, bits per weight and bytes."""
    t = ir.RankedTensorType(param.result.type)
    return {"weight_param": _s(param, "name"), "weight_shape": list(t.shape),
            "bits_per_weight": float(t.element_type.width), "weight_bytes": _nbytes(param)}


def _formats(w: FormatSpec | None, a: FormatSpec | None) -> dict:
    """The weights' and activations' specs as text, and their format names ("none": high precision)."""
    return {"weight_format": spec_text(w), "activation_format": spec_text(a),
            "weight_format_name": w.name if w else NONE, "activation_format_name": a.name if a else NONE}


def _calibration(elems, params) -> dict:
    """A calibrated weight's record (mxq-calibrate-weights), or an imported one's (--checkpoint), with the
    params that hold its codes (the fake-quant reference decodes those: they are not model.py's weight's)."""
    out = {}
    for attr, key in (("mxq.calibration", "calibration"), ("mxq.imported", "imported")):
        if elems and attr in elems.attributes:
            out[key] = {**json.loads(_s(elems, attr)), "params": [_s(p, "name") for p in params]}
    return out


def _fused_entry(op) -> dict:
    w_spec = format_attr(op, "w_format")
    w_fmt = w_spec.format
    x, w = _shape(op.operands[0]), _shape(op.operands[1])
    n, k = w[0], x[-1]
    elems = _param(op.operands[1])
    sqnr = float(elems.attributes["mxq.sqnr_db"].value) if elems and "mxq.sqnr_db" in elems.attributes else None
    fused = op.opview
    params = [_param(v) for v in (fused.w, fused.w_scales, fused.w_tensor_scale) if v is not None]
    source = _s(elems, "mxq.source") if elems and "mxq.source" in elems.attributes else None
    bits = w_fmt.bits_per_element * (w[1] / k) + (32 / (n * k) if w_fmt.tensor_scale else 0.0)
    return {
        "layer": _s(op, "layer"),
        "op": _s(op, "mxq.op") if "mxq.op" in op.attributes else "linear",
        "status": "quantized",
        **_formats(w_spec, format_attr(op, "act_format")),
        "scale_encoding": w_fmt.scale.name,
        "options": w_spec.options.to_dict(),
        "block_size": w_fmt.block_size,
        "epilogue": _s(op, "epilogue"),
        "has_bias": len(op.operands) > 3 + int(w_fmt.tensor_scale),
        "input_shape": x,
        "weight_shape": [n, k],
        "bits_per_weight": round(bits, 4),
        "weight_sqnr_db": None if sqnr is None or math.isinf(sqnr) else round(sqnr, 2),
        "nonfinite_weight_blocks": int(elems.attributes["mxq.nonfinite_blocks"].value) if elems else 0,
        "weight_param": _s(elems, "name") if elems else None,
        "weight_bytes": sum(_nbytes(p) for p in params) if all(params) else None,
        **({"source_param": source} if source else {}),
        **_calibration(elems, params),
        "decision": _s(op, "mxq.decision"),
        **_kernel_fields(op),
    }


def _kernel_fields(op) -> dict:
    """Which kernels run the layer (CUDA targets: mxq.kernels; a dynamic row count: those of its largest M, and
    `kernel_buckets` by M, m_max None for the last), the path in words, and what their numerics add to float32
    summation order (`run --compare` sets its tolerance from it)."""
    kernels = kernels_of(op)
    if kernels is None:
        return {"kernel": "cpu: linalg (dequantize + f32 contraction)",
                "path": "emulated: decode to f32 + f32 contraction (IREE llvm-cpu)", "run_time_rounding": []}
    buckets = buckets_of(op) or [(None, kernels)]
    every = [k for _, ks in buckets for k in ks]
    return {
        "kernel": " + ".join(k.name for k in kernels),
        "kernels": [k.to_dict() for k in kernels],
        **({"kernel_buckets": [{"m_max": top, "kernel": " + ".join(k.name for k in ks),
                                "kernels": [k.to_dict() for k in ks]} for top, ks in buckets]}
           if len(buckets) > 1 else {}),
        "path": _s(op, PATH_ATTR),
        "run_time_rounding": sorted({k.rounding for k in every if k.rounding}),
        **({"launch_group": _s(op, LAUNCH_GROUP_ATTR)} if LAUNCH_GROUP_ATTR in op.attributes else {}),
    }


def on_amx(row: dict) -> dict:
    """A CPU layer's row when compiled with --contraction amx: the fused layers whose operands are exact in
    bf16 (passes/_amx.bf16_exact) and the 2-D matmuls (float32 operands, split) say they ran on AMX tiles;
    the rest kept the float32 contraction."""
    from mxc.numerics.formats import get_format
    from mxc.passes._amx import bf16_exact

    if _dynamic(row):  # the AMX dispatch is built for one shape: IREE's contraction for a dynamic token size
        return row
    if row.get("op") == "matmul" and len(row.get("weight_shape", [])) == 2:  # lower-mxq-to-linalg's _matmul
        return {**row, "kernel": "cpu: AMX bf16 tiles (mxc_amx)",
                "path": "AMX: float32 operands split in 3 bf16 parts each, the 6 products that matter "
                        "(float32-accurate), f32 sums"}
    names = [row.get("weight_format_name", NONE), row.get("activation_format_name", NONE)]
    if row.get("status") != "quantized" or not all(n == NONE or bf16_exact(get_format(n)) for n in names):
        return row
    weight_only = names[1] == NONE
    return {**row, "kernel": "cpu: AMX bf16 tiles (mxc_amx)",
            "path": ("AMX: weights decoded to bf16 (exact), float32 activations split in 3 bf16 parts, "
                     "f32 sums" if weight_only else "AMX: both operands decoded to bf16 (exact), f32 sums")}


def on_fma(row: dict, dpbf16: bool = False, act_dtype: str = "f32") -> dict:
    """A CPU layer's row when compiled with --contraction fma: every contraction lower-mxq-to-linalg emits
    (quantized layers, and the 2-D matmuls of layers kept in float32) ran on mxc's FMA kernel (a dynamic row
    count in blocks of its rows, passes/_fma.py's `_contract_rows`). With --contraction dpbf16, the quantized
    layers whose operands are exact in bf16 (passes/_amx.bf16_exact; weight-only ones with --act-dtype bf16)
    ran on its bf16 dot form."""
    from mxc.numerics.formats import get_format
    from mxc.passes._amx import operands_exact

    if row.get("status") != "quantized" and not (row.get("op") == "matmul" and len(row.get("weight_shape", [])) == 2):
        return row
    w, a = row.get("weight_format_name", NONE), row.get("activation_format_name", NONE)
    if (dpbf16 and row.get("status") == "quantized" and w != NONE
            and operands_exact(get_format(w), get_format(a) if a != NONE else None, act_dtype)):
        return {**row, "kernel": "cpu: bf16 dot micro-kernel (mxc_fma, vdpbf16ps)",
                "path": "bf16 dot: both operands decoded to bf16 (exact; weights packed at load), "
                        "pairs of exact products added in f32"}
    return {**row, "kernel": "cpu: FMA micro-kernel (mxc_fma)",
            "path": "FMA: operands decoded to float32 (weights packed at load), f32 fused multiply-adds"}


def _qdq_format(v) -> FormatSpec | None:
    """The format of a dequantize feeding `v`, or None."""
    owner = v.owner
    if isinstance(owner, ir.Block) or owner.operation.name != "mxq.dequantize":
        return None
    return format_attr(owner, "format")


def _matmul_entry(op) -> dict:
    decision = _s(op, "mxq.decision") if "mxq.decision" in op.attributes else "not assigned"
    a_fmt, b_fmt = _qdq_format(op.operands[0]), _qdq_format(op.operands[1])
    if op.name == "mxq.scaled_matmul":
        a_fmt, b_fmt = format_attr(op, "a_format"), format_attr(op, "b_format")
    quantized = b_fmt is not None
    weight = None if quantized else _param_behind(op.operands[1])
    return {
        "layer": _s(op, "layer") if "layer" in op.attributes else _s(op, "mxq.layer"),
        "op": "matmul" if op.name == "mxq.matmul" else "scaled_matmul",
        "status": "quantized (unfused QDQ)" if quantized else "high precision",
        "input_shape": _shape(op.operands[0]),
        "weight_shape": _shape(op.operands[1]),
        **_formats(b_fmt, a_fmt),
        "bits_per_weight": 32.0 if not quantized else None,
        **({k: v for k, v in _stored(weight).items() if k != "weight_shape"} if weight else {}),
        "decision": decision,
    }


def _kept_entry(op) -> dict:
    """A torch op left in high precision with an `mxq.reason`; an embedding lookup also names its table."""
    row = {
        "layer": _s(op, "mxq.layer"),
        "op": op.name.removeprefix("torch.aten."),
        "status": "high precision",
        **_formats(None, None),
        "bits_per_weight": 32.0,
        "decision": _s(op, "mxq.reason"),
    }
    if "mxq.op" in op.attributes and _s(op, "mxq.op") == "embedding":
        table = _param_behind(op.operands[0])
        row.update(op="embedding", **(_stored(table) if table is not None else {}))
    return row



def layer_table(module: ir.Module) -> list[dict]:
    """One entry per matmul-like op and per op left unquantized with a reason, in IR order."""
    rows = []

    def visit(op):
        if op.name == "mxq.fused_matmul":
            rows.append(_fused_entry(op))
        elif op.name in _MATMULS:
            rows.append(_matmul_entry(op))
        elif "mxq.reason" in op.attributes:
            rows.append(_kept_entry(op))
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return _mark_shared_sources(_mark_shared(rows))


def _mark_shared(rows: list[dict]) -> list[dict]:
    """A row whose weight param an earlier row already uses says so (the weight is stored once)."""
    first: dict[str, str] = {}
    for r in rows:
        name = r.get("weight_param")
        if name and name in first:
            r["shares_weight_with"] = first[name]
        elif name:
            first[name] = r["layer"]
    return rows


def _mark_shared_sources(rows: list[dict]) -> list[dict]:
    """Rows that read one parameter but store different data say so (`shares_source_with`): a tied
    embedding kept in high precision and an lm_head quantized from the same tensor each store their
    own copy, since the quantized codes are not the table."""
    readers: dict[str, list[dict]] = {}
    for r in rows:
        source = r.get("source_param") or r.get("weight_param")
        if source:
            readers.setdefault(source, []).append(r)
    for group in readers.values():
        for r in group:
            others = [o["layer"] for o in group if o.get("weight_param") != r.get("weight_param")]
            if others:
                r["shares_source_with"] = list(dict.fromkeys(others))
    return rows


def tool_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("mxc", "torch", "torch-mlir", "iree-base-compiler", "iree-base-runtime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out
