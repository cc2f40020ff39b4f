"""mxq-calibrate-weights: weights calibrated for their format (GPTQ, MR-GPTQ) before they are quantized.

For every `mxq.quantize` of a constant weight whose matmul carries `mxq.calibrate`
(mxq-select-formats sets it from `--calibrate` or a policy's `calibrate` key), the
weight is replaced by its calibrated version W~ (`mxc.calibration`): a new `mxq.param`
in the weight store, named after the original with the method appended. The
quantize itself stays, so mxq-quantize-weights quantizes W~ with `mxc.numerics`
like any weight and the stored codes are the reference's codes of W~ by
construction. Two attributes travel on the quantize: `mxq.s_enc`, the NV tensor
scale the codes were chosen with (quantize-weights uses it instead of recomputing
it from W~'s amax), and `mxq.calibration`, the layer's record (method, tokens,
output error before and after) for the manifest. A weight-only layer that
`mr-gptq{rotate=auto}` calibrated better without its Hadamard rotation gets its
weight QDQ pair's `format` without it (the lowerings then rotate neither the
weights nor the activations), and its decision says so.

The driver runs the calibration (it needs the model and its calibration data)
and gives the pass the results. Without them (mxc-opt) the option
`hessian=identity` calibrates each weight for white inputs (H = I), which leaves
the weights as they are: enough to test the rewrite.
"""

from __future__ import annotations

import dataclasses
import json

import torch
from torch_mlir import ir

from mxc.dialects.mxq import ParamOp, format_attr, spec_attr
from mxc.numerics.options import spec_text
from mxc.weights import WeightStore

from ._weights import constant_weight, matmul_of
from .base import Pass, PassOptionError, erase_dead, walk_ops, weights_field


@dataclasses.dataclass(frozen=True)
class MxqCalibrateWeights(Pass):
    """Replace the weights of `mxq.calibrate` layers by their calibrated versions."""

    name = "mxq-calibrate-weights"
    hessian: str = ""  # "identity": calibrate without data, for white inputs (tests); "" = the driver's results
    weights: WeightStore | None = weights_field()
    calibrated: dict | None = dataclasses.field(default=None, compare=False, repr=False, metadata={"option": False})

    def __post_init__(self):
        if self.hessian not in ("", "identity"):
            raise PassOptionError(f"{self.name}: hessian must be 'identity' (or unset), got {self.hessian!r}")

    def run(self, module: ir.Operation) -> None:
        params: dict[tuple[str, str], tuple[torch.Tensor, str]] = {}  # (source, method) -> (weight, its param)
        for q in walk_ops(module, "mxq.quantize"):
            mm = matmul_of(q)
            if mm is None or "mxq.calibrate" not in mm.operation.attributes:
                continue
            ref = constant_weight(q.input, self.weights)
            if ref is None:
                continue
            layer = ir.StringAttr(mm.operation.attributes["layer"]).value
            result = self._result(q, ref, layer, ir.StringAttr(mm.operation.attributes["mxq.calibrate"]).value)
            if result is not None:
                self._replace(q, ref, result, params)
                if result.format is not None:
                    self._unrotate(q, mm, result)

    def _result(self, q, ref, layer: str, method: str):
        if self.calibrated is not None:
            return self.calibrated.get(layer)  # absent: the driver kept it round-to-nearest (and warned)
        if self.hessian != "identity":
            return None
        from mxc.calibration.gptq import gptq
        from mxc.calibration.method import CalibrateSpec
        from mxc.calibration.sequential import Calibrated

        w = ref.load().to(torch.float32)
        spec = CalibrateSpec.parse(method)
        res = gptq(w, torch.eye(w.shape[-1], dtype=torch.float64), format_attr(q, "format"),
                   damp=spec.damp, actorder=spec.actorder, scale_search=spec.scales == "mse", layer=layer)
        return Calibrated(layer, str(spec), res.weight, res.s_enc, res.err_rtn, res.err_gptq, 0, 0.0)

    @staticmethod
    def _unrotate(q, mm, result) -> None:
        """The weight QDQ pair in `result.format` (its spec without the rotation), the decision noting why."""
        old = format_attr(q, "format")
        attr = spec_attr(result.format)
        q.operation.attributes["format"] = attr
        for res in q.operation.results:
            for use in res.uses:
                if "format" in use.owner.attributes:
                    use.owner.attributes["format"] = attr
        note = (f"; {result.method} kept it unrotated (output error {result.err_after:.4g}, "
                f"{result.err_other:.4g} with hadamard={old.hadamard})")
        decision = ir.StringAttr(mm.operation.attributes["mxq.decision"]).value
        mm.operation.attributes["mxq.decision"] = ir.StringAttr.get(
            decision.replace(spec_text(old), spec_text(result.format), 1) + note)

    def _replace(self, q, ref, result, params: dict) -> None:
        old = q.input
        with q.location, ir.InsertionPoint(q.operation):
            if self.weights is not None:
                # one param per calibrated weight: the layers of several entry points (--generate's prefill and
                # decode) that read it name the same one, so mxq-quantize-weights stores its codes once
                key = (ref.describe, result.method)
                seen = params.get(key)
                if seen is not None and torch.equal(seen[0], result.weight):
                    name = seen[1]
                else:
                    name = self.weights.add(f"{ref.describe}.{result.method.split('{')[0]}", result.weight)
                    params[key] = (result.weight, name)
                new = ParamOp(name=ir.StringAttr.get(name), result=old.type).result
            else:  # mxc-opt: an inline constant
                attr = ir.DenseElementsAttr.get(result.weight.numpy(), type=old.type)
                new = ir.Operation.create("arith.constant", results=[old.type],
                                          attributes={"value": attr}).result
        q.operation.operands[0] = new
        if result.s_enc is not None:
            q.operation.attributes["mxq.s_enc"] = ir.FloatAttr.get(ir.F32Type.get(), float(result.s_enc))
        record = {**result.record(), "source": ref.describe}  # the parameter it was calibrated from
        q.operation.attributes["mxq.calibration"] = ir.StringAttr.get(json.dumps(record))
        erase_dead(old.owner)
