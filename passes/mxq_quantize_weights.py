"""mxq-quantize-weights: quantize constant weights offline with `mxc.numerics`.

Every `mxq.quantize` whose input is a constant weight (see `_weights.py`) is
evaluated at compile time by the numerics reference, so the codes in the
artifact are the reference's codes by construction. Its results become
`mxq.param` ops naming new entries in the weight store: packed elements
(4-bit codes two per byte, low nibble first), scale codes, and the FP32 tensor
scale for the NVFP4 family (the one mxq-calibrate-weights fixed, `mxq.s_enc`,
when it calibrated the weight). The elements param carries the weight's
quantization SQNR, its count of NaN/Inf blocks and the parameter it was
quantized from (`mxq.sqnr_db`, `mxq.nonfinite_blocks`, `mxq.source`) for the
manifest; NaN/Inf blocks follow FORMATS.md
(they decode to NaN) and are reported as a warning naming the layer.

A weight that several quantizes read (an unrolled `nn.LSTM` uses its recurrent
weight once per time step, tied embeddings and `lm_head` share one tensor) is
quantized once per format and every use names the same params: a 16-step LSTM
stored its recurrent weight 16 times before (model.irpa 1.65x the f32 model).

A weight imported from a compressed-tensors checkpoint (`mxc compile --checkpoint`;
the driver gives the pass `imported`: parameter name -> the checkpoint's codes) is
not quantized: its codes, scales and tensor scale are stored as the checkpoint has
them, and the elements param carries `mxq.imported` (where they came from) for the
manifest. Every imported weight must reach a quantize of its own format, along K,
or the pass fails naming the layer: codes are never silently re-derived.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import torch
from torch_mlir import ir

from mxc.errors import MxcError, MxcWarning
from mxc.layers import split_layer
from mxc.weights import WeightStore
from mxc.dialects.mxq import ParamOp, format_attr
from mxc.numerics import quantize

from ._weights import constant_weight, matmul_of
from .base import Pass, erase_dead, walk_ops, weights_field


def _users_layer(q) -> str:
    """The layer of the matmul a quantize feeds (through its dequantize)."""
    mm = matmul_of(q)
    return "" if mm is None else ir.StringAttr(mm.attributes["layer"]).value


def sqnr_db(x: torch.Tensor, xq: torch.Tensor) -> float:
    """10 log10(|x|^2 / |x - xq|^2) over finite entries (inf when exact)."""
    ok = torch.isfinite(x)
    x64, e64 = x[ok].double(), (x[ok] - xq[ok]).double()
    noise = float((e64 * e64).sum())
    return math.inf if noise == 0 else 10 * math.log10(float((x64 * x64).sum()) / noise)


@dataclasses.dataclass(frozen=True)
class _Folded:
    """A weight quantized once: its f32 data, the store names of its params, the elements' attributes."""

    weight: torch.Tensor
    names: list[str]
    attrs: dict


@dataclasses.dataclass(frozen=True)
class MxqQuantizeWeights(Pass):
    """Fold `mxq.quantize` of constant weights into `mxq.param` elements/scales."""

    name = "mxq-quantize-weights"
    weights: WeightStore | None = weights_field()
    # parameter name -> mxc.runtime.interchange.ImportedWeight (--checkpoint): codes stored as they are
    imported: dict | None = dataclasses.field(default=None, compare=False, repr=False, metadata={"option": False})

    def run(self, module: ir.Operation) -> None:
        store = self.weights if self.weights is not None else WeightStore()  # mxc-opt: names only, data dropped
        done: dict[tuple[str, str], list[_Folded]] = {}
        for q in walk_ops(module, "mxq.quantize"):
            ref = constant_weight(q.input, self.weights)
            if ref is not None:
                self._fold(q, ref, store, done)
        unused = sorted(set(self.imported or ()) - {d for d, _ in done})
        if unused:
            w = self.imported[unused[0]]
            raise MxcError(f"layer '{w.module}': the checkpoint holds its {w.fmt} codes but no quantized GEMM of the "
                           "compiled graph reads that weight (a policy kept it in high precision, or the graph "
                           "uses it in another op); the codes cannot be compiled as they are")

    def _fold(self, q, ref, store: WeightStore, done: dict) -> None:
        spec = format_attr(q, "format")
        w = ref.load().to(torch.float32)
        # A weight used by several ops (an unrolled LSTM's recurrent weight, tied embeddings) is
        # quantized and stored once: later uses name the first one's params.
        same = done.setdefault((ref.describe, str(spec)), [])
        folded = next((f for f in same if f.weight.shape == w.shape and torch.equal(f.weight, w)), None)
        if folded is None:
            folded = self._quantize(q, ref, w, spec, store)
            same.append(folded)
        results = [q.elements, q.scales] + ([q.tensor_scale] if q.tensor_scale is not None else [])
        with q.location, ir.InsertionPoint(q.operation):
            for i, (name, result) in enumerate(zip(folded.names, results)):
                p = ParamOp(name=ir.StringAttr.get(name), result=result.type)
                if i == 0:
                    for key, value in folded.attrs.items():
                        p.operation.attributes[key] = value
                result.replace_all_uses_with(p.result)
        erase_dead(q.operation)

    def _quantize(self, q, ref, w: torch.Tensor, spec, store: WeightStore) -> _Folded:
        layer = _users_layer(q) or ref.describe
        attrs = q.operation.attributes
        s_enc = float(ir.FloatAttr(attrs["mxq.s_enc"]).value) if "mxq.s_enc" in attrs else None
        imported = (self.imported or {}).get(ref.describe)
        qt = _checked_import(imported, ref, w, spec, layer) if imported else quantize(w, spec, axis=-1, s_enc=s_enc)
        nonfinite = int((~torch.isfinite(qt.scale_values())).sum())
        if nonfinite:
            warnings.warn(
                f"layer '{layer}': {nonfinite} weight block(s) hold NaN/Inf; in {spec} they decode to NaN "
                "(FORMATS.md). Fix the checkpoint, or keep the layer in high precision with a policy rule "
                f'"{layer}" = "none".',
                MxcWarning,
                stacklevel=2,
            )
        base = f"{split_layer(layer)[1]}.{spec}"  # (a module of several entry points shares the weights)
        values = [qt.packed_elements(), qt.scales]
        if q.tensor_scale is not None:
            values.append(qt.tensor_scale.reshape(()))
        # (imported codes come from the checkpoint again: `mxc write-weights` applies it as the compile did)
        recipe = ({"op": "checkpoint", "param": ref.describe} if imported
                  else ref.recipe and {"op": "quantize", "of": ref.recipe, "spec": str(spec), "s_enc": s_enc})
        names = [store.add(f"{base}.{suffix}", v, recipe and {**recipe, "part": i})
                 for i, (suffix, v) in enumerate(zip(("elements", "scales", "tensor_scale"), values))]
        attrs_out = {
            "mxq.layer": ir.StringAttr.get(layer),
            "mxq.sqnr_db": ir.FloatAttr.get_f64(min(sqnr_db(w, qt.dequantize()), 999.0)),
            "mxq.nonfinite_blocks": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), nonfinite),
            "mxq.source": ir.StringAttr.get(ref.describe),
        }
        if "mxq.calibration" in attrs:  # calibrated: the source is the parameter it was calibrated from
            attrs_out["mxq.source"] = ir.StringAttr.get(json.loads(ir.StringAttr(attrs["mxq.calibration"]).value)
                                                        .get("source", ref.describe))
        if "mxq.calibration" in attrs:  # mxq-calibrate-weights' record of the layer
            attrs_out["mxq.calibration"] = attrs["mxq.calibration"]
        if imported:
            attrs_out["mxq.imported"] = ir.StringAttr.get(json.dumps(imported.record()))
        return _Folded(w, names, attrs_out)


def _checked_import(imported, ref, w: torch.Tensor, spec, layer: str):
    """The QTensor of a checkpoint's codes for this quantize, or an MxcError naming the layer when they do not
    apply as they are (another format, a weight transposed or reshaped on its way to the GEMM)."""
    if str(spec) != imported.fmt:
        raise MxcError(f"layer '{layer}': the checkpoint holds {imported.fmt} codes for it, the compile asks for "
                       f"{spec}; the checkpoint's codes are compiled only in their own format")
    chain, r = [], ref.recipe
    while r:
        chain.append(r["op"])
        r = r.get("of")
    if set(chain) - {"param", "f32"} or tuple(w.shape) != tuple(imported.codes.shape):
        raise MxcError(f"layer '{layer}': its weight reaches the GEMM through {' <- '.join(chain) or 'an op'} "
                       f"as {list(w.shape)}, not as the checkpoint's [N, K] = {list(imported.codes.shape)} "
                       "quantized along K; keep the layer in float in the checkpoint")
    return imported.qtensor()
