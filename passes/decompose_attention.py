"""decompose-attention: `torch.aten.scaled_dot_product_attention` -> matmul, scale, mask, softmax, matmul.

For the CPU target (and on the CUDA targets, option `padded-only`, for a `--generate` prefill's attention
only: see pad_attention_queries.py). IREE turns a whole sdpa into one `iree_linalg_ext.attention` dispatch, which
its llvm-cpu backend runs far slower than the same math as separate ops (SmolLM2-135M at [1, 512]
tokens, one thread: 179 ms per layer, 75 % of the forward pass, vs 22 ms decomposed; torch's CPU
kernel 9 ms). This pass writes the math form in the torch dialect, which IREE's torch input lowers
to batch matmuls and a softmax:

    scores = (q * scale) @ k^T            scale: the op's, else 1/sqrt(E) (torch's math kernel scales q
                                          and k by sqrt(scale) each: the same up to rounding)
    scores = scores + bias                bool mask: bias = where(mask, 0, -inf); float mask: itself;
                                          is_causal: a top-left lower-triangular bool mask
    p      = softmax(scores, -1)          rows a mask blocks entirely: 0, as torch gives (not NaN)
    out    = p @ v

A mask's bias and its row guard are built once for all the layers that share the mask (or the
causal shape). bf16/f16 attention is computed in f32 (q, k, v and a float mask extended exactly,
the result rounded once), as torch's CPU kernels accumulate it. Left whole, and still correct
through IREE's attention op: dropout (p != 0), `enable_gqa` (transformers expands grouped k/v
itself before sdpa), a mask together with is_causal (torch refuses it), other dtypes, non-4-D or
dynamic shapes (option `max-queries`: a dynamic query count over static keys is first padded to the
keys' count, `pad-attention-queries`, and decomposed static), and a non-constant scale or is_causal. It
runs after the manifest's layer table is taken (the attention keeps its one row, `<module path>.sdpa`,
"attention is not quantized yet").

Option `amx` (the cpu target with `--contraction amx`): the two matmuls run as AMX dispatches
(`_amx.split3`, as lower-mxq-to-linalg's float32 matmuls: both operands split in three bf16 parts, the six products that
matter, float32-accurate), batched over the heads, in an executable of their own (`mxc_amx_attention`).
Option `fma` (`--contraction fma`): the two matmuls run on mxc's float32 FMA kernel (`_fma.py`), batched
over the heads likewise (`mxc_fma_attention`); with is_causal (and no more queries than keys) the whole
attention is one dispatch of that executable (`_fma.FmaCausalAttention`): per block of 8 query rows the
scores with the causal mask's -inf written in (tiles above the diagonal skipped) into a stack buffer,
mxc's softmax there (each row only up to the diagonal), and the probabilities times the values (each
row's K stopped at the diagonal); the scores never reach memory. Where a block's scores would pass
IREE's 32 KB stack limit (more than 2048 keys), the same three steps as three dispatches, the scores
in a tensor between them (the same bits).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from torch_mlir import ir
from torch_mlir.dialects import tensor

from . import _amx, _fma
from ._linalg import ttype
from .base import Pass, walk_ops

AMX_EXECUTABLE = "mxc_amx_attention"
FMA_EXECUTABLE = "mxc_fma_attention"

SDPA = "torch.aten.scaled_dot_product_attention"
_DTYPE_CODE = {"f32": 6, "bf16": 15, "f16": 5}  # torch's ScalarType numbering (torch.aten.to.dtype's operand)


def _vtensor(shape: list[int], dtype: str) -> ir.Type:
    return ir.Type.parse(f"!torch.vtensor<[{','.join(map(str, shape))}],{dtype}>")


def _shape_dtype(v: ir.Value | ir.Type) -> tuple[list[int], str] | None:
    """Static shape and element type of a !torch.vtensor value or type, or None."""
    text = str(v if isinstance(v, ir.Type) else v.type)
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

    def to_dtype(self, v: ir.Value, type_: ir.Type, dtype: str) -> ir.Value:
        none, false = self.const("none", None), self.const("bool", False)
        return self.op("torch.aten.to.dtype", type_, v, self.const("int", _DTYPE_CODE[dtype]), false, false, none)

    def to_f32(self, v: ir.Value, shape: list[int]) -> ir.Value:
        return self.to_dtype(v, _vtensor(shape, "f32"), "f32")


def _builtin(v: ir.Value, shape: list[int], bh: int) -> ir.Value:
    """!torch.vtensor [B, H, r, c] (f32) -> tensor [B*H, r, c]."""
    t = ir.Operation.create("torch_c.to_builtin_tensor", results=[ttype(shape, ir.F32Type.get())],
                            operands=[v]).result
    return tensor.CollapseShapeOp(ttype([bh, *shape[2:]], ir.F32Type.get()), t, [[0, 1], [2], [3]]).result


@dataclasses.dataclass(frozen=True)
class DecomposeAttention(Pass):
    name = "decompose-attention"
    amx: bool = False  # the two matmuls on AMX tiles (float32-accurate split)
    fma: bool = False  # the two matmuls on mxc's float32 FMA kernel (_fma.py)
    # pad-attention-queries first: a dynamic query count padded to the keys' (0: unknown, left dynamic)
    max_queries: int = 0
    # decompose only the attention max_queries padded (the CUDA targets: the rest stays IREE's attention op)
    padded_only: bool = False

    def run(self, module: ir.Operation) -> None:
        padded = None
        if self.max_queries:
            from .pad_attention_queries import PadAttentionQueries

            padded = PadAttentionQueries(max_queries=self.max_queries).pad(module)
        masks: dict = {}  # a mask's (additive bias, rows that attend to something), built once for its layers
        kernels: dict = {}  # the AMX / FMA kernels (amx, fma), one per shape
        ops = padded if self.padded_only else [op.operation for op in walk_ops(module, (SDPA,))]
        for op in ops or []:
            self._decompose(op, masks, kernels)
        if kernels:
            exe = ir.Operation.parse(_amx.executable(list(kernels.values()),
                                                     AMX_EXECUTABLE if self.amx else FMA_EXECUTABLE))
            ir.InsertionPoint.at_block_begin(module.regions[0].blocks[0]).insert(exe)

    def _matmul(self, b: "_Builder", result: ir.Type, x: ir.Value, y: ir.Value, kernels: dict,
                y_rows: bool) -> ir.Value:
        """x [B, H, M, K] @ y -> [B, H, M, N]: y is [B, H, N, K] (`y_rows`: the keys) or [B, H, K, N] (the
        values); torch's matmul, or with `amx` / `fma` one batched dispatch of mxc's kernel over B x H."""
        if not (self.amx or self.fma):
            if y_rows:
                ys, _ = _shape_dtype(y)
                y = b.op("torch.aten.transpose.int", _vtensor([*ys[:2], ys[3], ys[2]], "f32"), y,
                         b.const("int", -2), b.const("int", -1))
            return b.op("torch.aten.matmul", result, x, y)
        (xs, _), (ys, _) = _shape_dtype(x), _shape_dtype(y)
        out_s, _ = _shape_dtype(result)
        bh = xs[0] * xs[1]

        def builtin(v, shape):
            return _builtin(v, shape, bh)

        m, k = xs[2], xs[3]
        n = ys[2] if y_rows else ys[3]
        if self.fma:
            out = _fma.contract(builtin(x, xs), _fma.b_panels(builtin(y, ys), transposed=not y_rows), n, kernels,
                                FMA_EXECUTABLE)
        else:
            a = _amx.a_tiles(builtin(x, xs), _amx.pad32(m), _amx.pad32(k), 3, _amx.split3)
            yt = _amx.b_tiles(builtin(y, ys), 3, _amx.split3, transposed=not y_rows)
            out = _amx.contract(a, yt, m, n, kernels, AMX_EXECUTABLE)
        out = tensor.ExpandShapeOp(ttype(out_s, ir.F32Type.get()), out, [[0, 1], [2], [3]], [], out_s).result
        return ir.Operation.create("torch_c.from_builtin_tensor", results=[result], operands=[out]).result

    @staticmethod
    def _fma_causal(q, k, v, qs, ks, vs, os_, kernels: dict) -> ir.Value:
        """is_causal attention (L <= S) as three dispatches of mxc's FMA executable, no torch op between:
        the scores q . k^T with the causal mask's -inf written in (micro-tiles above the diagonal skipped;
        [BH, L2, S2], padding kept), their softmax (each row only as far as a causal product reads it), and
        the probabilities times the values, each row tile's K stopped at its last row."""
        bh = qs[0] * qs[1]
        out = _fma.causal_attention(_builtin(q, qs, bh), _builtin(k, ks, bh), _builtin(v, vs, bh), kernels,
                                    FMA_EXECUTABLE)
        if out is not None:  # one dispatch, the scores of each block of rows on the stack
            out = tensor.ExpandShapeOp(ttype(os_, ir.F32Type.get()), out, [[0, 1], [2], [3]], [], os_).result
            return ir.Operation.create("torch_c.from_builtin_tensor", results=[_vtensor(os_, "f32")],
                                       operands=[out]).result
        scores = _fma.contract(_builtin(q, qs, bh), _fma.b_panels(_builtin(k, ks, bh)), ks[2], kernels,
                               FMA_EXECUTABLE, "out", padded=True)
        probs = _fma.causal_softmax(scores, kernels, FMA_EXECUTABLE)
        values = _fma.b_panels(_builtin(v, vs, bh), transposed=True, k_to=ir.RankedTensorType(probs.type).shape[2])
        out = _fma.contract(probs, values, vs[3], kernels, FMA_EXECUTABLE, "lhs")  # [BH, L2, Ev]
        full = ir.RankedTensorType(out.type).shape
        if full[1] != qs[2]:
            out = tensor.ExtractSliceOp(ttype([bh, qs[2], vs[3]], ir.F32Type.get()), out, [], [], [], [0, 0, 0],
                                        [bh, qs[2], vs[3]], [1, 1, 1]).result
        out = tensor.ExpandShapeOp(ttype(os_, ir.F32Type.get()), out, [[0, 1], [2], [3]], [], os_).result
        return ir.Operation.create("torch_c.from_builtin_tensor", results=[_vtensor(os_, "f32")], operands=[out]).result

    def _decompose(self, op: ir.Operation, masks: dict, kernels: dict) -> None:
        q, k, v, mask, dropout, causal, scale, gqa = list(op.operands)
        shapes = [_shape_dtype(x) for x in (q, k, v, op.result)]
        if any(s is None for s in shapes) or _constant(dropout) not in (0.0, None) or _constant(gqa) is not False:
            return
        (qs, dtype), (ks, _), (vs, _), (os_, _) = shapes
        if dtype not in _DTYPE_CODE or len(qs) != 4 or qs[:2] != ks[:2] or ks[:3] != vs[:3]:
            return
        is_causal, scale_v, has_mask = _constant(causal), _constant(scale), _constant(mask) is not None
        mask_sd = _shape_dtype(mask) if has_mask else None
        if is_causal is ... or scale_v is ... or (has_mask and (mask_sd is None or is_causal)):
            return  # (torch refuses is_causal with a mask)
        b = _Builder()
        with op.location, ir.InsertionPoint(op):
            if dtype != "f32":
                q, k, v = b.to_f32(q, qs), b.to_f32(k, ks), b.to_f32(v, vs)
            l_, s_ = qs[2], ks[2]
            scores_t = _vtensor([*qs[:2], l_, s_], "f32")
            factor = 1.0 / math.sqrt(qs[3]) if scale_v is None else scale_v
            q = b.op("torch.aten.mul.Scalar", _vtensor(qs, "f32"), q, b.const("float", factor))  # L x E, not L x S
            if self.fma and is_causal and l_ <= s_:
                out = self._fma_causal(q, k, v, qs, ks, vs, os_, kernels)
            else:
                out = self._math(b, op, q, k, v, scores_t, os_, is_causal, mask if has_mask else None, mask_sd,
                                 masks, kernels)
            if dtype != "f32":
                out = b.to_dtype(out, op.result.type, dtype)
        op.result.replace_all_uses_with(out)
        op.erase()

    def _math(self, b: _Builder, op: ir.Operation, q, k, v, scores_t, os_, is_causal: bool, mask, mask_sd,
              masks: dict, kernels: dict) -> ir.Value:
        """The math form: scores, the mask's bias, softmax (rows masked everywhere: 0), times the values."""
        l_, s_ = _shape_dtype(scores_t)[0][-2:]
        scores = self._matmul(b, scores_t, q, k, kernels, y_rows=True)
        rows = None
        if is_causal or mask is not None:
            key = ("causal", l_, s_) if is_causal else mask
            cached = masks.get(key)
            if cached is None or cached[0].owner.operation.block != op.block:
                cached = masks[key] = self._bias(b, mask, mask_sd, l_, s_)
            bias, rows = cached
            scores = b.op("torch.aten.add.Tensor", scores_t, scores, bias, b.const("int", 1))
        probs = b.op("torch.aten.softmax.int", scores_t, scores, b.const("int", -1), b.const("none", None))
        if rows is not None:  # a row masked everywhere: 0, as torch's sdpa gives, not softmax's NaN
            probs = b.op("torch.aten.where.ScalarOther", scores_t, rows, probs, b.const("float", 0.0))
        return self._matmul(b, _vtensor(os_, "f32"), probs, v, kernels, y_rows=False)

    @staticmethod
    def _bias(b: _Builder, mask: ir.Value | None, mask_sd, l_: int, s_: int) -> tuple[ir.Value, ir.Value | None]:
        """(additive f32 bias, bool [.., L, 1] of the rows that attend to some key, or None when every row
        does) of a mask; mask None: is_causal's lower-triangular one (every row keeps key 0)."""
        if mask is None:
            tril = np.tril(np.ones((l_, s_), dtype=bool))  # top-left aligned, as torch's is_causal
            attr = ir.DenseElementsAttr.get(tril, type=ir.IntegerType.get_signless(1))
            mask = b.op("torch.vtensor.literal", _vtensor([l_, s_], "i1"), attrs={"value": attr})
            mask_sd, causal = ([l_, s_], "i1"), True
        else:
            causal = False
        shape, dtype = mask_sd
        row_t = _vtensor([*shape[:-1], 1], "i1")
        last, true = b.const("int", -1), b.const("bool", True)
        if dtype == "i1":
            bias = b.op("torch.aten.where.Scalar", _vtensor(shape, "f32"), mask, b.const("float", 0.0),
                        b.const("float", -math.inf))
            rows = None if causal else b.op("torch.aten.any.dim", row_t, mask, last, true)
            return bias, rows
        bias = b.to_f32(mask, shape) if dtype != "f32" else mask
        dims = b.op("torch.prim.ListConstruct", ir.Type.parse("!torch.list<int>"), last)
        top = b.op("torch.aten.amax", _vtensor([*shape[:-1], 1], "f32"), bias, dims, true)
        return bias, b.op("torch.aten.gt.Scalar", row_t, top, b.const("float", -math.inf))
