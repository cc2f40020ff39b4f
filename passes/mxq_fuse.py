"""mxq-fuse: QDQ + matmul + epilogue -> one `mxq.fused_matmul` (or `mxq.scaled_matmul`).

Matches, per `mxq.matmul`:

    %xq = mxq.dequantize(mxq.quantize(%x))          (absent when weight-only)
    %wq = mxq.dequantize(%w_elements, %w_scales[, %w_tensor_scale])   (offline weights)
    %y  = mxq.matmul(%xq, %wq[, %bias])
    %t  = torch.aten.relu | gelu (exact) | silu (torch_c.from_builtin_tensor(%y))   (optional)

and replaces it with `mxq.fused_matmul(%x, %w_elements, %w_scales, ...) {epilogue}`:
the activation is quantized inside the op, so a backend can do it in the GEMM
prologue, and bias and activation run on the accumulator. Two run-time
operands both quantized in one MX format become `mxq.scaled_matmul`. Mixed
block sizes are left unfused (the QDQ form stays correct).
"""

from __future__ import annotations

import dataclasses

from torch_mlir import ir

from mxc.dialects.torch_c import from_builtin
from mxc.dialects.mxq import FusedMatmulOp, ScaledMatmulOp, format_attr, spec_attr

from .base import Pass, erase_dead, walk_ops

EPILOGUE_OPS = {"torch.aten.relu": "relu", "torch.aten.silu": "silu", "torch.aten.gelu": "gelu"}


def _producer(v: ir.Value, name: str):
    owner = v.owner
    return None if isinstance(owner, ir.Block) or owner.operation.name != name else owner.opview


def _single_user(v: ir.Value):
    uses = list(v.uses)
    return uses[0].owner if len(uses) == 1 else None


def _epilogue(mm):
    """(torch activation op, epilogue name) that consumes mm's result alone, else (None, 'none')."""
    cast = _single_user(mm.result)
    if cast is None or cast.operation.name != "torch_c.from_builtin_tensor":
        return None, "none"
    act = _single_user(cast.results[0])
    if act is None or act.operation.name not in EPILOGUE_OPS:
        return None, "none"
    if act.operation.name == "torch.aten.gelu":
        approx = act.operands[1].owner
        if isinstance(approx, ir.Block) or ir.StringAttr(approx.attributes["value"]).value != "none":
            return None, "none"
    return act, EPILOGUE_OPS[act.operation.name]


@dataclasses.dataclass(frozen=True)
class MxqFuse(Pass):
    """Fuse activation quantize -> scaled matmul -> dequantize -> bias/activation."""

    name = "mxq-fuse"

    def run(self, module: ir.Operation) -> None:
        for mm in walk_ops(module, "mxq.matmul"):
            w_dq = _producer(mm.rhs, "mxq.dequantize")
            if w_dq is None:
                continue
            if _producer(w_dq.elements, "mxq.param") is not None:
                self._fuse_weight(mm, w_dq)
            else:
                self._fuse_scaled(mm, w_dq)

    @staticmethod
    def _fuse_weight(mm, w_dq) -> None:
        w_spec = format_attr(w_dq, "format")
        x, act_spec = mm.lhs, None
        x_dq = _producer(mm.lhs, "mxq.dequantize")
        x_q = x_dq and _producer(x_dq.elements, "mxq.quantize")
        if x_q is not None:
            act_spec = format_attr(x_q, "format")
            if act_spec.block_size != w_spec.block_size or act_spec.hadamard != w_spec.hadamard:
                return
            x = x_q.input
        act, epilogue = _epilogue(mm)
        with mm.location, ir.InsertionPoint(mm.operation):
            fused = FusedMatmulOp(
                x,
                w_dq.elements,
                w_dq.scales,
                layer=mm.layer,
                act_format=spec_attr(act_spec),
                w_format=spec_attr(w_spec),
                block_size=ir.IntegerAttr.get(ir.IntegerType.get_signless(64), w_spec.block_size),
                epilogue=ir.StringAttr.get(epilogue),
                result=mm.result.type,
                w_tensor_scale=w_dq.tensor_scale,
                bias=mm.bias,
            )
            for key in ("mxq.decision", "mxq.op"):
                if key in mm.operation.attributes:
                    fused.operation.attributes[key] = mm.operation.attributes[key]
        if act is None:
            mm.result.replace_all_uses_with(fused.result)
        else:
            with act.location, ir.InsertionPoint(act):
                out = from_builtin(fused.result, act.results[0].type)
            act.results[0].replace_all_uses_with(out)
            cast, extra = act.operands[0].owner, [v.owner for v in list(act.operands)[1:]]
            act.erase()
            cast.erase()
            for op in extra:
                erase_dead(op)
        erase_dead(mm.operation)

    @staticmethod
    def _fuse_scaled(mm, b_dq) -> None:
        a_dq = _producer(mm.lhs, "mxq.dequantize")
        if a_dq is None or mm.bias is not None:
            return
        fa, fb = format_attr(a_dq, "format"), format_attr(b_dq, "format")
        if fa.format.tensor_scale or fb.format.tensor_scale or fa.hadamard != fb.hadamard:
            return
        a, b = ir.RankedTensorType(a_dq.elements.type), ir.RankedTensorType(b_dq.elements.type)
        if a.rank != 2 or b.rank != 2 or fa.block_size != fb.block_size:
            return
        with mm.location, ir.InsertionPoint(mm.operation):
            sm = ScaledMatmulOp(
                a_dq.elements,
                a_dq.scales,
                b_dq.elements,
                b_dq.scales,
                a_format=a_dq.format,
                b_format=b_dq.format,
                block_size=a_dq.block_size,
                result=mm.result.type,
            )
            if "mxq.decision" in mm.operation.attributes:
                sm.operation.attributes["mxq.decision"] = mm.operation.attributes["mxq.decision"]
            sm.operation.attributes["mxq.layer"] = mm.layer
        mm.result.replace_all_uses_with(sm.result)
        erase_dead(mm.operation)
