"""convert-torch-to-mxq: quantizable torch ops become `mxq.matmul`.

Matches `aten.linear`, `aten.mm`, `aten.matmul`, `aten.addmm` (beta = alpha = 1),
`aten.bmm` and `aten.conv2d` on f32, bf16 or f16 tensors. Each becomes

    torch_c.to_builtin_tensor -> mxq.matmul {layer = "<module path>"} -> torch_c.from_builtin_tensor

A bf16/f16 matmul gets `arith.extf` to f32 on every operand and `arith.truncf`
back to its dtype on the result, so `mxq` ops, the lowering, the kernels and
the CPU bit-exactness stay f32-only. This quantizes the half-precision values
themselves: bf16 -> f32 and f16 -> f32 are exact, and `mxc.numerics.quantize`
upcasts any input to f32 first, so the codes and scales are those the numerics
compute for the bf16/f16 tensor. The GEMM accumulates in f32 (as torch's CPU
and CUDA half GEMMs do) and rounds once to the model's dtype; the rest of the
model keeps its compute dtype.

with the right-hand side in [N, K] (weights as stored by nn.Linear); a [K, N]
operand gets an `aten.transpose.int` first, which `mxq-quantize-weights` folds
for constant weights. A conv2d (groups = 1) becomes im2col -> `mxq.matmul`
over K = C_in * kh * kw (the weight flattened to [C_out, K], so the block axis
runs over the convolution's reduction) -> NCHW (`_conv.py`), marked
`mxq.op = "conv2d"`. The layer name comes from the NameLoc the frontend put
on every op. Ops mxc recognizes but cannot quantize yet (attention, grouped or
transposed convolutions) and matmuls it cannot take (integer or mixed dtypes, a dynamic K or
right operand, a conv2d of dynamic shape) stay in torch and get an `mxq.reason` attribute, which the manifest and `mxc
inspect` list. mxc's own graph ops of a KV cache held as codes (`mxc.generation`) become mxq ops:
`torch.operator "torch.mxc.kv_store"` (f32 keys/values -> int8 rows of bytes) `mxq.quantize -> mxq.pack`
along the last axis, `"torch.mxc.kv_load"` (the bytes -> f32) `mxq.unpack -> mxq.dequantize`. An
attention op is named `<module path>.sdpa`, since its module also names the projections' matmuls. Embedding lookups (`aten.embedding`) get
`mxq.reason` and `mxq.op = "embedding"`: their tables stay in high precision,
and the manifest lists them with their bytes, as rows of their own kind.

Dynamic token dimensions (model.py's `get_dynamic_shapes()`) pass through: a
`[?, K]` or `[?, ?, K]` activation against a static weight becomes an `mxq.matmul`
with the same dynamic leading sizes (the dialect allows them there only).
"""

from __future__ import annotations

import dataclasses

from torch_mlir import ir
from torch_mlir.dialects import arith

from mxc.dialects.torch_c import builtin_type_of, from_builtin, to_builtin
from mxc.dialects.mxq import MatmulOp
from mxc.errors import MxcError
from mxc.layers import unique_layer_names
from mxc.numerics.options import FormatSpec

from . import _conv
from ._conv import Conv2dGeometry
from ._mxq_builders import dequantize, pack, quantize, unpack
from ._linalg import DYN, shape_of
from .base import Pass, layer_name, walk_ops

MATMUL_OPS = ("torch.aten.linear", "torch.aten.mm", "torch.aten.matmul", "torch.aten.addmm", "torch.aten.bmm",
              "torch.aten.conv2d")
NOT_YET = {
    "torch.aten.convolution": "convolution (transposed or not 2-D) is not quantized: stays in high precision",
    "torch.aten.scaled_dot_product_attention": "attention is not quantized yet: stays in high precision",
}
# What an op of NOT_YET is called after its module path: an attention module (`blocks.0.attn`)
# also names its projections' matmuls, so its attention is `blocks.0.attn.sdpa`.
DISPLAY_SUFFIX = {"torch.aten.scaled_dot_product_attention": "sdpa"}
# Lookups into a parameter: embedding tables stay in high precision; the manifest lists them with their bytes.
TABLE_OPS = ("torch.aten.embedding",)
TABLE_REASON = "embedding table: a lookup, not a matmul; stays in high precision"
KV_STORE_OP, KV_LOAD_OP = "torch.mxc.kv_store", "torch.mxc.kv_load"  # mxc.generation's, as the fx importer names them


FLOAT_TYPES = ("f32", "bf16", "f16")  # bf16/f16 are extended to f32 at the mxq boundary


def _dtype(v: ir.Value) -> str | None:
    """Element type of a !torch.vtensor<[..],dtype> ("f32", "bf16", ...), or None for other types."""
    text = str(v.type)
    return text.rsplit(",", 1)[-1][:-1] if text.startswith("!torch.vtensor<[") else None


def _shape(v: ir.Value) -> list[int] | None:
    """Shape of a !torch.vtensor<[..],f32|bf16|f16> (a dynamic size as DYN), or None when not one of those."""
    dtype = _dtype(v)
    if dtype not in FLOAT_TYPES:
        return None
    dims = str(v.type)[len("!torch.vtensor<[") : -len(f"],{dtype}>")]
    return [DYN if d == "?" else int(d) for d in dims.split(",")] if dims else []


def _to_f32(v: ir.Value) -> ir.Value:
    """A vtensor as a builtin f32 tensor; bf16/f16 extended with arith.extf (exact)."""
    t = to_builtin(v, builtin_type_of(v.type))
    if _dtype(v) == "f32":
        return t
    return arith.ExtFOp(ir.RankedTensorType.get(_shape(v), ir.F32Type.get()), t).result


def _from_f32(y: ir.Value, vtensor_type: ir.Type) -> ir.Value:
    """An f32 result as a vtensor of the op's dtype; bf16/f16 by arith.truncf (round to nearest even, as torch)."""
    target = builtin_type_of(vtensor_type)
    if target.element_type != y.type.element_type:
        y = arith.TruncFOp(target, y).result
    return from_builtin(y, vtensor_type)


def _is_none(v: ir.Value) -> bool:
    return str(v.type) == "!torch.none"


def _constant(v: ir.Value, kind: str):
    """The value of a `kind` constant op (torch.constant.str/int), None for anything else."""
    owner = v.owner
    if isinstance(owner, ir.Block) or owner.operation.name != kind:
        return None
    a = owner.attributes["value"]
    return ir.StringAttr(a).value if kind == "torch.constant.str" else ir.IntegerAttr(a).value


def _int_constant(v: ir.Value):
    owner = v.owner
    if isinstance(owner, ir.Block):
        return None
    if owner.operation.name in ("torch.constant.int", "torch.constant.float"):
        return owner.attributes["value"].value
    return None


def _transpose_last2(v: ir.Value, shape: list[int]) -> ir.Value:
    """aten.transpose.int(v, -2, -1) in the torch dialect."""
    r = len(shape)
    out_shape = [*shape[:-2], shape[-1], shape[-2]]
    ints = [
        ir.Operation.create(
            "torch.constant.int",
            results=[ir.Type.parse("!torch.int")],
            attributes={"value": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), d)},
        ).result
        for d in (r - 2, r - 1)
    ]
    vt = ir.Type.parse(f"!torch.vtensor<[{','.join(map(str, out_shape))}],{_dtype(v)}>")
    return ir.Operation.create("torch.aten.transpose.int", results=[vt], operands=[v, *ints]).result



def _keep(op, reason: str, layer: str) -> None:
    """Mark a torch op that stays in high precision: why, and its display name."""
    op.operation.attributes["mxq.reason"] = ir.StringAttr.get(reason)
    op.operation.attributes["mxq.layer"] = ir.StringAttr.get(layer)


@dataclasses.dataclass(frozen=True)
class ConvertTorchToMxq(Pass):
    """Rewrite quantizable torch matmuls into `mxq.matmul`; mark the rest with `mxq.reason`."""

    name = "convert-torch-to-mxq"

    def run(self, module: ir.Operation) -> None:
        for name, reason in NOT_YET.items():
            ops = walk_ops(module, name)
            suffix = DISPLAY_SUFFIX.get(name)
            paths = [".".join(filter(None, (layer_name(op), suffix))) or name for op in ops]
            for op, layer in zip(ops, unique_layer_names(paths)):
                _keep(op, reason, layer)
        tables = walk_ops(module, TABLE_OPS)
        for op, layer in zip(tables, unique_layer_names([layer_name(op) or "embedding" for op in tables])):
            _keep(op, TABLE_REASON, layer)
            op.operation.attributes["mxq.op"] = ir.StringAttr.get("embedding")
        ops = walk_ops(module, MATMUL_OPS)  # IR order = fx graph order, which the reference follows
        for op, layer in zip(ops, unique_layer_names([layer_name(op) or op.operation.name for op in ops])):
            self._convert(op, layer)
        for op in walk_ops(module, "torch.operator"):
            name = ir.StringAttr(op.operation.attributes["name"]).value
            if name in (KV_STORE_OP, KV_LOAD_OP):
                self._kv(op, name)

    def _kv(self, op, name: str) -> None:
        """mxc.kv_store -> mxq.quantize -> mxq.pack; mxc.kv_load -> mxq.unpack -> mxq.dequantize."""
        x, spec_value, *rest = op.operands
        where = layer_name(op) or "the graph"
        spec = _constant(spec_value, "torch.constant.str")
        k = _constant(rest[0], "torch.constant.int") if rest else 0
        shape, out = list(builtin_type_of(x.type).shape), op.results[0].type
        if spec is None or not shape or shape[-1] == DYN or (rest and k is None):
            raise MxcError(f"{where}: {name.removeprefix('torch.')} needs a tensor with a static last dimension and "
                           "constant arguments (as mxc.generation writes it)")
        spec = FormatSpec.parse(spec)
        with op.location, ir.InsertionPoint(op):
            if name == KV_STORE_OP:
                q = quantize(_to_f32(x), spec)
                y = from_builtin(pack(q, spec, shape[-1]), out)
            else:
                u = unpack(to_builtin(x, builtin_type_of(x.type)), spec, k)
                y = from_builtin(dequantize(u.elements, u.scales, u.tensor_scale, spec, k), out)
        op.results[0].replace_all_uses_with(y)
        op.erase()

    def _convert_conv(self, op, layer: str) -> None:
        """aten.conv2d -> im2col -> mxq.matmul -> NCHW, or an mxq.reason."""
        g = _conv_geometry(op)
        if isinstance(g, str):
            _keep(op, g, layer)
            return
        x, w, bias = list(op.operands)[:3]
        with op.location, ir.InsertionPoint(op):
            patches = _conv.im2col(_to_f32(x), g)
            w2 = _conv.flatten_weight(_to_f32(w), g)
            b = None if _is_none(bias) else _to_f32(bias)
            res_type = ir.RankedTensorType.get([shape_of(patches)[0], g.o], ir.F32Type.get())
            mm = MatmulOp(patches, w2, layer=ir.StringAttr.get(layer), result=res_type, bias=b)
            mm.operation.attributes["mxq.op"] = ir.StringAttr.get("conv2d")
            out = _from_f32(_conv.to_nchw(mm.result, g), op.result.type)
        op.result.replace_all_uses_with(out)
        op.erase()

    def _operands(self, op):
        """(lhs, rhs, bias, rhs_is_kn) per op kind, or a reason string."""
        ops = list(op.operands)
        name = op.name
        if name == "torch.aten.linear":
            return ops[0], ops[1], (None if _is_none(ops[2]) else ops[2]), False
        if name == "torch.aten.addmm":
            if _int_constant(ops[3]) != 1 or _int_constant(ops[4]) != 1:
                return "addmm with beta or alpha other than 1"
            return ops[1], ops[2], ops[0], True
        return ops[0], ops[1], None, True  # mm, matmul, bmm: rhs is [.., K, N]

    def _convert(self, op, layer: str) -> None:
        if op.name == "torch.aten.conv2d":
            return self._convert_conv(op, layer)
        got = self._operands(op)
        lhs, rhs, bias, rhs_kn = got if not isinstance(got, str) else (None, None, None, None)
        shapes = [_shape(v) for v in (lhs, rhs, op.result)] if lhs is not None else [None]
        reason = got if isinstance(got, str) else None
        if reason is None and any(s is None for s in shapes):
            reason = "only f32/bf16/f16 matmuls are quantized"
        elif reason is None and (DYN in shapes[1] or shapes[0][-1] == DYN):
            reason = ("a matmul with a dynamic contraction size or a dynamic right operand stays in high precision "
                      "(only the leading, token dimensions of the left operand may be dynamic)")
        elif reason is None and len({_dtype(v) for v in (lhs, rhs, op.result)}) != 1:
            reason = "matmul of mixed dtypes is not quantized"
        elif reason is None and not (len(shapes[1]) == 2 or (len(shapes[0]) == 3 and len(shapes[1]) == 3)):
            reason = f"matmul of ranks {len(shapes[0])} x {len(shapes[1])} is not supported"
        elif reason is None and bias is not None and _shape(bias) != [shapes[1][-1 if rhs_kn else -2]]:
            reason = "bias must be a vector over N"
        if reason:
            _keep(op, reason, layer)
            return
        lhs_shape, rhs_shape = shapes[0], shapes[1]
        with op.location, ir.InsertionPoint(op):
            if rhs_kn:
                rhs = _transpose_last2(rhs, rhs_shape)
                rhs_shape = [*rhs_shape[:-2], rhs_shape[-1], rhs_shape[-2]]
            b_lhs, b_rhs = _to_f32(lhs), _to_f32(rhs)
            b_bias = _to_f32(bias) if bias is not None else None
            res_type = ir.RankedTensorType.get([*lhs_shape[:-1], rhs_shape[-2]], ir.F32Type.get())
            mm = MatmulOp(b_lhs, b_rhs, layer=ir.StringAttr.get(layer), result=res_type, bias=b_bias)
            out = _from_f32(mm.result, op.result.type)
        op.result.replace_all_uses_with(out)
        op.erase()


def _int_list(v: ir.Value) -> list[int] | None:
    owner = v.owner
    if isinstance(owner, ir.Block) or owner.operation.name != "torch.prim.ListConstruct":
        return None
    vals = [_int_constant(o) for o in owner.operands]
    return None if any(x is None for x in vals) else vals


def _conv_geometry(op) -> Conv2dGeometry | str:
    """The conv's geometry, or why it stays in high precision."""
    x, w, bias, stride, padding, dilation, groups = list(op.operands)
    xs, ws, ys = _shape(x), _shape(w), _shape(op.result)
    if xs is None or ws is None or ys is None or len(xs) != 4 or DYN in [*xs, *ws, *ys]:
        return "only static-shaped f32/bf16/f16 NCHW conv2d is quantized"
    if _int_constant(groups) != 1:
        return "grouped/depthwise conv2d (groups != 1) is not quantized: stays in high precision"
    lists = [_int_list(v) for v in (stride, padding, dilation)]
    if any(lst is None or len(lst) != 2 for lst in lists):
        return "conv2d with non-constant stride/padding/dilation (or padding='same') stays in high precision"
    if not _is_none(bias) and _shape(bias) != [ws[0]]:
        return "conv2d bias must be a vector over C_out"
    g = Conv2dGeometry(xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], *(tuple(v) for v in lists))
    if [g.n, g.o, *g.out_hw] != ys:
        return f"conv2d result shape {ys} does not match its geometry"
    return g
