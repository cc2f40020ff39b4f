"""mxq-select-formats: give every `mxq.matmul` its formats, as quantize/dequantize pairs.

Per layer (by module path) the policy picks a weight format and whether
activations are quantized too (`weights-only` keeps them in high precision).
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

Options: `format` (a spec, or "none"), `weights-only`, `act_format` (the
activations' format when it differs from the weights', same block size),
`policy` (a TOML file; the other options fill in what it omits), and the
quantization options of `mxc.numerics.options` (`scale_rule`, `rounding`,
`seed`, `error_metric`, `hadamard`), which a spec's own braces override, and
`calibrate` (how the weights' codes are chosen: rtn, gptq, mr-gptq; recorded as
`mxq.calibrate` on the matmul for mxq-calibrate-weights; mr-gptq also gives the
layer a Hadamard rotation, the largest of 128/32/16 dividing K, unless its format
names one).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import warnings
from typing import TYPE_CHECKING

from torch_mlir import ir

from mxc.numerics.formats import FORMATS
from mxc.numerics.options import (
    ErrorMetric,
    FormatSpec,
    HadamardSize,
    QuantOptions,
    Rounding,
    ScaleRule,
)
from mxc.calibration.method import rotation_for
from mxc.errors import MxcWarning
from mxc.policy import Choice, Policy
from mxc.weights import WeightStore

from ._mxq_builders import quantize_dequantize
from ._weights import constant_weight
from .base import Pass, walk_ops, weights_field

if TYPE_CHECKING:
    from mxc.options import Options


@dataclasses.dataclass(frozen=True)
class MxqSelectFormats(Pass):
    """Choose formats per layer: a uniform `format` (with options), or a TOML `policy` file."""

    name = "mxq-select-formats"
    format: FormatSpec | None = FormatSpec(FORMATS["mxfp4"])
    weights_only: bool = False
    policy: str = ""
    act_format: FormatSpec | None = None  # None: the weights' format
    scale_rule: ScaleRule = "floor"
    rounding: Rounding = "rne"
    seed: int = 0
    error_metric: ErrorMetric = "mse"
    hadamard: HadamardSize | None = None
    calibrate: str = ""  # how weights get their codes (mxc.calibration.method): "" / rtn, gptq, mr-gptq
    weights: WeightStore | None = weights_field()

    @classmethod
    def from_compile_options(cls, opts: Options, weights: WeightStore | None = None) -> "MxqSelectFormats":
        """The pass for `mxc compile` options (the option names are the same)."""
        return cls(**{f.name: getattr(opts, f.name) for f in cls.option_fields()}, weights=weights)

    def options(self) -> QuantOptions:
        return QuantOptions.of(self)

    def make_policy(self) -> Policy:
        args = (self.format, self.weights_only, self.act_format, self.options(), self.calibrate)
        return Policy.from_file(self.policy, *args) if self.policy else Policy.uniform(*args)

    def run(self, module: ir.Operation) -> None:
        policy = self.make_policy()
        layers: list[str] = []
        for mm in walk_ops(module, "mxq.matmul"):
            if "mxq.decision" in mm.operation.attributes:
                continue
            layer = ir.StringAttr(mm.layer).value
            layers.append(layer)
            choice, source = policy.choose(layer)
            note = ""
            k = ir.RankedTensorType(mm.lhs.type).shape[-1]
            hadamard = choice.weight and choice.weight.hadamard
            if hadamard and k % hadamard:
                note = f"; hadamard={hadamard} skipped: K={k} is not a multiple"
                choice = choice.without_hadamard()
            rhs_is_weight = constant_weight(mm.rhs, self.weights) is not None
            if choice.calibrate and not rhs_is_weight:  # nothing to calibrate: both operands are activations
                choice = dataclasses.replace(choice, calibrate="")
            if choice.calibrate.startswith("mr-gptq") and choice.weight and not choice.weight.hadamard:
                size = rotation_for(k, choice.weight.block_size)
                if size:
                    choice = choice.with_hadamard(size)
                else:
                    note += f"; mr-gptq without its rotation: no Hadamard size divides K={k}"
            if choice.weight is None:
                decision = f"none: kept in high precision ({source})"
            elif not rhs_is_weight and choice.act is None:
                decision = "none: weights-only, and both operands are activations"
            else:
                decision = f"{choice.decision()} ({source}{note})"
                self._materialize(mm, choice)
                if choice.calibrate:
                    mm.operation.attributes["mxq.calibrate"] = ir.StringAttr.get(choice.calibrate)
            mm.operation.attributes["mxq.decision"] = ir.StringAttr.get(decision)
        _warn_unused_rules(policy, layers)

    @staticmethod
    def _materialize(mm, choice: Choice) -> None:
        with mm.location, ir.InsertionPoint(mm.operation):
            mm.operation.operands[1] = quantize_dequantize(mm.rhs, choice.weight)
            if choice.act is not None:
                mm.operation.operands[0] = quantize_dequantize(mm.lhs, choice.act)


def searchable_layers(module: ir.Operation, weights: WeightStore | None) -> list:
    """Every `mxq.matmul` still without formats, as `--auto`'s search sees it (`LayerInfo`)."""
    from mxc.selection.candidates import LayerInfo

    layers = []
    for mm in walk_ops(module, "mxq.matmul"):
        if "mxq.decision" in mm.operation.attributes:
            continue
        x, w = (ir.RankedTensorType(v.type).shape for v in (mm.lhs, mm.rhs))
        layers.append(LayerInfo(ir.StringAttr(mm.layer).value, math.prod(x[:-1]), x[-1], w[-2] if len(w) > 1 else 1,
                                constant_weight(mm.rhs, weights) is not None, 32))
    return layers


def _warn_unused_rules(policy: Policy, layers: list[str]) -> None:
    """A policy rule no layer took is most likely a typo in its pattern: say so, naming it."""
    taken = {policy.choose(layer)[1] for layer in layers}
    for pattern, _ in policy.rules:
        if pattern in taken:
            continue
        shadow = next((p for layer in layers if fnmatch.fnmatchcase(layer, pattern)
                       for p in [policy.choose(layer)[1]]), None)
        why = f"every layer it matches takes the earlier rule '{shadow}'" if shadow else "it matches no layer"
        some = ", ".join(layers[:6]) + (", ..." if len(layers) > 6 else "")
        warnings.warn(f"policy rule '{pattern}' is not used: {why} (layers: {some})", MxcWarning, stacklevel=2)
