"""mxq-select-formats: give every `mxq.matmul` its formats, as quantize/dequantize pairs.

Per layer (by module path) the policy picks a weight format and whether
activations are quantized too (`--weights-only` keeps them in high precision).
The choice is materialized in the standard QDQ form that PT2E and ONNX use:

    %w_q = mxq.dequantize(mxq.quantize(%w))      -- weights, offline in mxq-quantize-weights
    %x_q = mxq.dequantize(mxq.quantize(%x))      -- activations, at run time
    mxq.matmul(%x_q, %w_q)

so the semantics are explicit in the IR and `mxq-fuse` can pattern-match them.
Formats are format specs (`"mxfp4{scale_rule=rceil}"`): the options travel
with the format through every later pass. Format "none" keeps the layer in high
precision; the decision and its source (policy rule or default) are recorded
in an `mxq.decision` attribute. A Hadamard rotation needs K divisible by its
size: a layer where it is not gets the format without the rotation, and the
decision says so.
"""

from __future__ import annotations

import dataclasses

from torch_mlir import ir

from mxc.policy import Policy
from mxc.numerics.formats import NONE
from mxc.numerics.options import QuantOptions
from mxc.weights import WeightStore

from ._mxq_builders import quantize_dequantize
from ._weights import constant_weight
from .base import Pass, walk_ops, weights_field


@dataclasses.dataclass(frozen=True)
class MxqSelectFormats(Pass):
    """Choose formats per layer: a uniform `format` (with options), or a TOML `policy` file."""

    name = "mxq-select-formats"
    format: str = "mxfp4"
    weights_only: bool = False
    policy: str = ""
    act_format: str = ""
    scale_rule: str = "floor"
    rounding: str = "rne"
    seed: int = 0
    error_metric: str = "mse"
    hadamard: int = 0
    weights: WeightStore | None = weights_field()

    def options(self) -> QuantOptions:
        return QuantOptions(self.scale_rule, self.rounding, self.seed, self.error_metric, self.hadamard or None)

    def make_policy(self) -> Policy:
        act = self.act_format or None
        if self.policy:
            return Policy.from_file(self.policy, self.format, self.weights_only, act, self.options())
        return Policy.uniform(self.format, self.weights_only, act, self.options())

    def run(self, module: ir.Operation) -> None:
        policy = self.make_policy()
        for mm in walk_ops(module, "mxq.matmul"):
            if "mxq.decision" in mm.operation.attributes:
                continue
            layer = ir.StringAttr(mm.layer).value
            choice, source = policy.choose(layer)
            note = ""
            k = ir.RankedTensorType(mm.lhs.type).shape[-1]
            if choice.options.hadamard and k % choice.options.hadamard:
                note = f"; hadamard={choice.options.hadamard} skipped: K={k} is not a multiple"
                choice = choice.without_hadamard()
            act = choice.act_spec
            decision = f"{choice.weight_spec}{' weights-only' if act == NONE else ''}" + (
                f" x {act} activations" if act not in (NONE, choice.weight_spec) else "") + f" ({source}{note})"
            rhs_is_weight = constant_weight(mm.rhs, self.weights) is not None
            if choice.format == NONE:
                decision = f"none: kept in high precision ({source})"
            elif not rhs_is_weight and act == NONE:
                decision = "none: weights-only, and both operands are activations"
            else:
                self._materialize(mm, choice.weight_spec, act)
            mm.operation.attributes["mxq.decision"] = ir.StringAttr.get(decision)

    @staticmethod
    def _materialize(mm, w_spec: str, act_spec: str) -> None:
        with mm.location, ir.InsertionPoint(mm.operation):
            mm.operation.operands[1] = quantize_dequantize(mm.rhs, w_spec)
            if act_spec != NONE:
                mm.operation.operands[0] = quantize_dequantize(mm.lhs, act_spec)
