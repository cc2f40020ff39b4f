"""The torch references `mxc run --compare` measures against.

* float32 eager: the model as the user wrote it.
* fake-quant: the exported graph run by an FX interpreter that applies
  `mxc.numerics.fake_quantize` to exactly the operands mxc quantized, layer by
  layer as the manifest records (layer names are matched in graph order, as
  convert-torch-to-mxq assigns them). This is the numerics reference applied to
  the same layers, so compiled-vs-reference differences are float32
  accumulation order only.
"""

from __future__ import annotations

import torch

from mxc.compiler.frontend import export, module_path
from mxc.numerics import NONE, fake_quantize
from mxc.passes.convert_torch_to_mxq import unique_layer_names

aten = torch.ops.aten
_RHS_KN = {aten.mm.default, aten.matmul.default, aten.addmm.default, aten.bmm.default}
_MATMULS = {aten.linear.default, *_RHS_KN}


def _fq(t: torch.Tensor, fmt: str, axis: int) -> torch.Tensor:
    return t if fmt == NONE else fake_quantize(t.to(torch.float32), fmt, axis=axis)


class _FakeQuantInterpreter(torch.fx.Interpreter):
    def __init__(self, gm, formats: dict[str, tuple[str, str]]):
        super().__init__(gm)
        nodes = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in _MATMULS]
        names = unique_layer_names([module_path(n) or f"torch.aten.{n.target._opname}" for n in nodes])
        self.plan = {n: formats.get(name, (NONE, NONE)) for n, name in zip(nodes, names)}
        self.applied = 0

    def run_node(self, n):
        self._node = n
        return super().run_node(n)

    def call_function(self, target, args, kwargs):
        node = self._node
        if node not in self.plan or self.plan[node] == (NONE, NONE):
            return super().call_function(target, args, kwargs)
        act, wfmt = self.plan[node]
        self.applied += 1
        args = list(args)
        if target is aten.linear.default:
            args[0], args[1] = _fq(args[0], act, -1), _fq(args[1], wfmt, -1)
        elif target is aten.addmm.default:
            args[1], args[2] = _fq(args[1], act, -1), _fq(args[2], wfmt, -2)
        else:
            args[0], args[1] = _fq(args[0], act, -1), _fq(args[1], wfmt, -2)
        return super().call_function(target, tuple(args), kwargs)


def layer_formats(manifest: dict) -> dict[str, tuple[str, str]]:
    """layer -> (activation format, weight format) for every quantized layer of a manifest."""
    return {
        row["layer"]: (row.get("activation_format", NONE), row.get("weight_format", NONE))
        for row in manifest["layers"]
        if row.get("weight_format", NONE) != NONE
    }


def fake_quant_forward(model: torch.nn.Module, inputs: tuple, manifest: dict) -> list[torch.Tensor]:
    """Run `model` with mxc.numerics fake quantization on the manifest's layers."""
    formats = layer_formats(manifest)
    prog = export(model, inputs)
    interp = _FakeQuantInterpreter(prog.module(), formats)
    with torch.no_grad():
        out = interp.run(*inputs)
    if interp.applied != len(formats):
        raise RuntimeError(
            f"fake-quant reference matched {interp.applied} of {len(formats)} quantized layers; "
            "the graph changed since compilation? recompile"
        )
    return _flatten(out)


def eager_forward(model: torch.nn.Module, inputs: tuple) -> list[torch.Tensor]:
    with torch.no_grad():
        return _flatten(model(*inputs))


def _flatten(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _flatten(o)]
    if isinstance(out, dict) or hasattr(out, "values"):
        return [t for o in out.values() for t in _flatten(o)]
    return []
