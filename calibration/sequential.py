"""Calibrate every layer of a model in execution order, as GPTQ does, in one pass over the data.

The exported graph (the same graph and the same layer names as the fake-quant reference) is
interpreted node by node for all calibration batches in lockstep. Every quantized layer runs as
the compiled program computes it: weights and activations fake-quantized in their formats by
`mxc.numerics`. When the walk reaches a layer to calibrate, its inputs of every batch (fake-quantized
when the layer quantizes its activations: what the deployed layer reads) are at hand: they give
the Hessian X^T X; `gptq` chooses the codes; the layer then runs with its calibrated weights, so each
later layer is calibrated on the outputs of the already-quantized layers before it. The cost is one
forward pass over the calibration set plus one GPTQ per layer; the memory, the values the graph
still needs (as a forward pass) and one layer's Hessian.
"""

from __future__ import annotations

import operator
import time
import warnings
from dataclasses import dataclass

import torch

from mxc.compiler.frontend import export
from mxc.errors import MxcWarning
from mxc.layers import module_path, unique_layer_names
from mxc.numerics import FormatSpec, fake_quantize
from mxc.runtime.reference import _ARG_POSITIONS, _CONVS, _MATMULS, _fq

from .gptq import CalibrationError, SingularHessian, gptq
from .method import CalibrateSpec


@dataclass(frozen=True)
class Calibrated:
    """One layer's result: the calibrated weight in the layout `mxq.quantize` reads ([N, K], K last,
    float32), the NV encode-side tensor scale its codes were chosen with, the layer's relative output
    error on the calibration set with round-to-nearest and with the method, the tokens seen, seconds."""

    layer: str
    method: str
    weight: torch.Tensor
    s_enc: torch.Tensor | None
    err_rtn: float
    err_after: float
    tokens: int
    seconds: float
    format: FormatSpec | None = None  # rotate=auto: the weights' spec it chose when it dropped the rotation
    err_other: float | None = None  # rotate=auto: the output error of the alternative it did not take

    def record(self) -> dict:
        extra = {} if self.err_other is None else {
            "rotation": "none" if self.format is not None else "kept", "output_error_other": round(self.err_other, 6)}
        return {"method": self.method, "tokens": self.tokens, "output_error_rtn": round(self.err_rtn, 6),
                "output_error": round(self.err_after, 6), "seconds": round(self.seconds, 3), **extra}


def calibrate_model(model: torch.nn.Module, batches: list[tuple], formats: dict, methods: dict[str, str],
                    progress=None) -> tuple[dict[str, Calibrated], dict[str, str]]:
    """(layer -> Calibrated, layer -> why it stays round-to-nearest) for the layers `methods` names.

    `formats`: layer -> (activation spec, weight spec) of every quantized layer (the compiled program's);
    `methods`: layer -> calibration spec text. A layer that cannot be calibrated (a convolution, a weight
    several layers share, a Hessian singular even after dampening) keeps round-to-nearest, with a warning.
    """
    gm = export(model, batches[0]).module()
    nodes = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in _MATMULS | _CONVS]
    names = dict(zip(nodes, unique_layer_names([module_path(n) or f"torch.aten.{n.target._opname}" for n in nodes])))
    missing = set(methods) - set(names.values())
    if missing:
        raise CalibrationError(f"the exported graph has no layer {sorted(missing)[:3]} that convert-torch-to-mxq "
                               "named; the model changed between exports?")
    uses: dict[str, int] = {}
    for n in nodes:
        w = n.args[_ARG_POSITIONS.get(n.target, (0, 1, -2))[1]]
        if isinstance(w, torch.fx.Node) and w.op == "get_attr":
            uses[w.target] = uses.get(w.target, 0) + 1
    interps = [torch.fx.Interpreter(gm, garbage_collect_values=True) for _ in batches]
    for it, batch in zip(interps, batches):
        it.env, it.args_iter = {}, iter(gm.graph.process_inputs(*batch))
    done: dict[str, Calibrated] = {}
    kept: dict[str, str] = {}
    weights: dict[str, torch.Tensor] = {}  # the fake-quantized (calibrated or not) weight of each layer
    hessians: dict = {}  # (activation node, its format) -> (X^T X, tokens), the latest only
    with torch.no_grad():
        for node in gm.graph.nodes:
            if node.op == "output":
                break
            name = names.get(node)
            act, wfmt = formats.get(name, (None, None)) if name else (None, None)
            if name is None or wfmt is None or node.target in _CONVS:
                if name in methods and node.target in _CONVS:
                    kept[name] = "convolutions are not calibrated (round-to-nearest)"
                vals = [it.run_node(node) for it in interps]
            else:
                vals = _run_layer(node, name, act, wfmt, interps, methods.get(name), uses, done, kept, weights,
                                  hessians)
                if progress and name in methods:
                    progress()
            for it, v in zip(interps, vals):
                it.env[node] = v
                for dead in it.user_to_last_uses.get(node, []):
                    del it.env[dead]
    for layer, why in kept.items():
        warnings.warn(f"--calibrate: layer '{layer}' keeps round-to-nearest codes: {why}", MxcWarning, stacklevel=2)
    return done, kept


def _run_layer(node, name: str, act: FormatSpec | None, wfmt: FormatSpec, interps, method: str | None,
               uses: dict, done: dict, kept: dict, weights: dict, hessians: dict) -> list:
    """Run one quantized matmul for every batch, calibrating its weights first when `method` says so."""
    a_i, w_i, w_axis = _ARG_POSITIONS.get(node.target, (0, 1, -2))
    w_node = node.args[w_i]
    const = isinstance(w_node, torch.fx.Node) and w_node.op == "get_attr"
    xs = [_fq(it.env[node.args[a_i]].float(), act, -1) for it in interps]
    if const and name not in weights:
        w = operator.attrgetter(w_node.target)(interps[0].module).detach().float()
        spec = CalibrateSpec.parse(method)
        wq = None  # round-to-nearest unless calibrated below
        if spec.active and uses.get(w_node.target, 0) > 1:
            kept[name] = f"its weight '{w_node.target}' is shared with other layers"
        elif spec.active:
            t0 = time.perf_counter()
            key = (node.args[a_i], str(act))  # q/k/v (gate/up) read one activation: one Hessian
            if key not in hessians:
                hessians.clear()  # (only the latest activation's is still needed: layers read it in a row)
                hessians[key] = (sum((x.reshape(-1, x.shape[-1]).T @ x.reshape(-1, x.shape[-1])).double()
                                     for x in xs), sum(x.numel() // x.shape[-1] for x in xs))
            h, tokens = hessians[key]
            wk = w if w_axis in (-1, w.dim() - 1) else w.transpose(-1, -2)  # [N, K]
            try:
                res = gptq(wk, h, wfmt, damp=spec.damp, actorder=spec.actorder,
                           scale_search=spec.scales == "mse", layer=name)
                chosen, other = None, None
                if spec.rotate == "auto" and wfmt.hadamard and act is None:  # the rotation only where it helps
                    flat = gptq(wk, h, wfmt.without_hadamard(), damp=spec.damp, actorder=spec.actorder,
                                scale_search=spec.scales == "mse", layer=name)
                    other = flat.err_gptq
                    if flat.err_gptq < res.err_gptq:
                        res, chosen, other = flat, wfmt.without_hadamard(), res.err_gptq
            except SingularHessian as e:
                kept[name] = e.why
            else:
                done[name] = Calibrated(name, str(spec), res.weight, res.s_enc, res.err_rtn, res.err_gptq,
                                        tokens, time.perf_counter() - t0, chosen, other)
                wfmt = chosen or wfmt
                wq_k = fake_quantize(res.weight, wfmt, axis=-1, s_enc=res.s_enc)
                wq = wq_k if w_axis in (-1, w.dim() - 1) else wq_k.transpose(-1, -2)
        weights[name] = wq if wq is not None else _fq(w, wfmt, w_axis)
    outs = []
    for it, x in zip(interps, xs):
        args = list(it.fetch_args_kwargs_from_env(node)[0])
        args[a_i] = x
        args[w_i] = weights[name] if const else _fq(args[w_i].float(), wfmt, w_axis)
        y = node.target(*args, **node.kwargs)
        val = node.meta.get("val")
        outs.append(y.to(val.dtype) if isinstance(val, torch.Tensor) else y)
    return outs
