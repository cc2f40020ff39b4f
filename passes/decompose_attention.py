"""decompose-attention: `torch.aten.scaled_dot_product_attention` -> matmul, scale, mask, softmax, matmul.

For the CPU target. IREE turns a whole sdpa into one `iree_linalg_ext.attention` dispatch, which
its llvm-cpu backend runs far slower than the same math as separate ops (SmolLM2-135M at [1, 512]
tokens, one thread: 179 ms per layer, 75 % of the forward pass, vs 22 ms decomposed; torch's CPU
kernel 9 ms). This pass writes torch's own math form in the torch dialect, which IREE's torch input
lowers to batch matmuls and a softmax:

    scores = (q * scale) @ k^T            scale: the op's, else 1/sqrt(E)
    scores = scores + bias                bias = where(mask, 0, -inf) for a bool mask (built once per
                                          mask the layers share), the mask itself if float;
                                          is_causal: a lower-triangular bool mask
    out    = softmax(scores, -1) @ v

bf16/f16 attention is computed in f32 (q, k, v and a float mask extended exactly, the result rounded
once), as torch's CPU kernels accumulate it. Left whole, and still correct through IREE's attention
op: dropout (p != 0), `enable_gqa`, and shapes that are not static. It runs after the manifest's layer table is taken (the attention keeps
its one row, `<module path>.sdpa`, "attention is not quantized yet").
"""

from __future__ import annotations

import math

import numpy as np
from torch_mlir import ir

from .base import Pass, walk_ops

SDPA = "torch.aten.scaled_dot_product_attention"
_FLOAT_DTYPE_CODE = 6  # torch.float32 in torch's ScalarType numbering (torch.aten.to.dtype's operand)


def _vtensor(shape: list[int], dtype: str) -> ir.Type:
    return ir.Type.parse(f"!torch.vtensor<[{','.join(map(str, shape))}],{dtype}>")


def _shape_dtype(v: ir.Value) -> tuple[list[int], str] | None:
    """Static shape and element type of a !torch.vtensor, or None."""
    text = str(v.type)
    if not text.startswith("!torch.vtensor<["):
        return None
    dims, dtype = text[len("!torch.vtensor<["):-1].rsplit("],", 1)
    if "?" in dims or not dims:
        return None
    return [int(d) for d in dims.split(",")], dtype


def _constant(v: ir.Value):
    """The Python value of a torch.constant.{float,int,bool,none} operand; `...` when not constant."""
    owner = v.owner
    if isinstance(owner, ir.Block):
        return ...
    name = owner.operation.name
    if name == "torch.constant.none":
        return None
    if name in ("torch.constant.float", "torch.constant.int", "torch.constant.bool"):
        attr = owner.operation.attributes["value"]
        return ir.BoolAttr(attr).value if name.endswith("bool") else (
            ir.FloatAttr(attr).value if name.endswith("float") else ir.IntegerAttr(attr).value)
    return ...


class _Builder:
    """Torch-dialect ops in generic form at the insertion point (the dialect has no Python builders here)."""

    def op(self, name: str, result: ir.Type, *operands: ir.Value, attrs: dict | None = None) -> ir.Value:
        return ir.Operation.create(name, results=[result], operands=list(operands), attributes=attrs or {}).result

    def const(self, kind: str, value) -> ir.Value:
        if kind == "none":
            return self.op("torch.constant.none", ir.Type.parse("!torch.none"))
        attr = {"int": lambda: ir.IntegerAttr.get(ir.IntegerType.get_signless(64), value),
                "float": lambda: ir.FloatAttr.get(ir.F64Type.get(), value),
                "bool": lambda: ir.BoolAttr.get(value)}[kind]()
        return self.op(f"torch.constant.{kind}", ir.Type.parse(f"!torch.{kind}"), attrs={"value": attr})

    def to_f32(self, v: ir.Value, shape: list[int]) -> ir.Value:
        none, false = self.const("none", None), self.const("bool", False)
        return self.op("torch.aten.to.dtype", _vtensor(shape, "f32"), v, self.const("int", _FLOAT_DTYPE_CODE),
                       false, false, none)


class DecomposeAttention(Pass):
    name = "decompose-attention"

    def run(self, module: ir.Operation) -> None:
        biases: dict = {}  # a boolean mask's additive bias, built once for the layers that share the mask
        for op in walk_ops(module, (SDPA,)):
            self._decompose(op.operation, biases)

    def _decompose(self, op: ir.Operation, biases: dict) -> None:
        q, k, v, mask, dropout, causal, scale, gqa = list(op.operands)
        shapes = [_shape_dtype(x) for x in (q, k, v, op.result)]
        if any(s is None for s in shapes) or _constant(dropout) not in (0.0, None) or _constant(gqa) is not False:
            return
        (qs, dtype), (ks, _), (vs, _), (os_, _) = shapes
        if len(qs) != 4 or qs[:2] != ks[:2] or ks[:3] != vs[:3]:
            return
        is_causal, scale_v = _constant(causal), _constant(scale)
        if is_causal is ... or scale_v is ...:
            return
        mask_sd = None if _constant(mask) is None else _shape_dtype(mask)
        if _constant(mask) is not None and mask_sd is None:
            return
        b = _Builder()
        with op.location, ir.InsertionPoint(op):
            half = dtype != "f32"
            if half:
                q, k, v = b.to_f32(q, qs), b.to_f32(k, ks), b.to_f32(v, vs)
            l_, s_ = qs[2], ks[2]
            scores_t = _vtensor([*qs[:2], l_, s_], "f32")
            factor = 1.0 / math.sqrt(qs[3]) if scale_v is None else scale_v
            q = b.op("torch.aten.mul.Scalar", _vtensor(qs, "f32"), q, b.const("float", factor))  # L x E, not L x S
            kt = b.op("torch.aten.transpose.int", _vtensor([*ks[:2], ks[3], ks[2]], "f32"), k,
                      b.const("int", -2), b.const("int", -1))
            scores = b.op("torch.aten.matmul", scores_t, q, kt)
            if is_causal:
                tril = np.tril(np.ones((l_, s_), dtype=bool))
                lit = ir.DenseElementsAttr.get(tril, type=ir.IntegerType.get_signless(1))
                mask = b.op("torch.vtensor.literal", _vtensor([l_, s_], "i1"), attrs={"value": lit})
                mask_sd = ([l_, s_], "i1")
            if mask_sd is not None:
                mshape, mdtype = mask_sd
                if mdtype == "i1":  # where(mask, 0, -inf), once per mask value, then added like a float mask
                    cached = biases.get(mask)
                    if cached is None or cached.owner.operation.block != op.block:
                        cached = b.op("torch.aten.where.Scalar", _vtensor(mshape, "f32"), mask,
                                      b.const("float", 0.0), b.const("float", -math.inf))
                        biases[mask] = cached
                    bias = cached
                else:
                    bias = b.to_f32(mask, mshape) if mdtype != "f32" else mask
                scores = b.op("torch.aten.add.Tensor", scores_t, scores, bias, b.const("int", 1))
            probs = b.op("torch.aten.softmax.int", scores_t, scores, b.const("int", -1), b.const("none", None))
            out = b.op("torch.aten.matmul", _vtensor(os_, "f32"), probs, v)
            if half:
                none, false = b.const("none", None), b.const("bool", False)
                code = {"bf16": 15, "f16": 5}[dtype]
                out = b.op("torch.aten.to.dtype", op.result.type, out, b.const("int", code), false, false, none)
        op.result.replace_all_uses_with(out)
        op.erase()
