"""mxq-select-formats: give every `mxq.matmul` its formats, as quantize/dequantize pairs.

Per layer (by module path) the policy picks a weight format and whether
activations are quantized too (`--weights-only` keeps them in high precision).
The choice is materialized in the standard QDQ form that PT2E and ONNX use:

    %w_q = mxq.dequantize(mxq.quantize(%w))      -- weights, offline in mxq-quantize-weights
    %x_q = mxq.dequantize(mxq.quantize(%x))      -- activations, at run time
    mxq.matmul(%x_q, %w_q)

so the semantics are explicit in the IR and `mxq-fuse` can pattern-match them.
Format "none" keeps the layer in high precision; the decision and its source
(policy rule or default) are recorded in an `mxq.decision` attribute.
"""

from __future__ import annotations

import dataclasses

from torch_mlir import ir

from mxc.compiler.policy import Policy
from mxc.numerics.formats import NONE, get_format

from ._mxq_builders import quantize_dequantize
from ._weights import constant_weight
from .base import Pass, walk_ops


@dataclasses.dataclass(frozen=True)
class MxqSelectFormats(Pass):
    """Choose formats per layer: a uniform `format`, or a TOML `policy` file."""

    name = "mxq-select-formats"
    format: str = "mxfp4"
    weights_only: bool = False
    policy: str = ""

    def make_policy(self) -> Policy:
        if self.policy:
            return Policy.from_file(self.policy, self.format, self.weights_only)
        return Policy.uniform(self.format, self.weights_only)

    def run(self, module: ir.Operation) -> None:
        policy = self.make_policy()
        for mm in walk_ops(module, "mxq.matmul"):
            if "mxq.decision" in mm.operation.attributes:
                continue
            layer = ir.StringAttr(mm.layer).value
            choice, source = policy.choose(layer)
            decision = f"{choice.format}{' weights-only' if choice.weights_only else ''} ({source})"
            rhs_is_weight = constant_weight(mm.rhs) is not None
            if choice.format == NONE:
                decision = f"none: kept in high precision ({source})"
            elif not rhs_is_weight and choice.weights_only:
                decision = "none: weights-only, and both operands are activations"
            else:
                self._materialize(mm, choice.format, choice.act_format)
            mm.operation.attributes["mxq.decision"] = ir.StringAttr.get(decision)

    @staticmethod
    def _materialize(mm, w_format: str, act_format: str) -> None:
        with mm.location, ir.InsertionPoint(mm.operation):
            mm.operation.operands[1] = quantize_dequantize(mm.rhs, get_format(w_format))
            if act_format != NONE:
                mm.operation.operands[0] = quantize_dequantize(mm.lhs, get_format(act_format))
