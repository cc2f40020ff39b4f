"""The torch references `mxc run --compare` measures against.

* float32 eager: the model as the user wrote it.
* fake-quant: the exported graph, rewritten with FX so that it applies
  `mxc.numerics.fake_quantize` to exactly the operands mxc quantized, layer by
  layer as the manifest records (layer names are matched in graph order, as
  convert-torch-to-mxq assigns them). This is the numerics reference applied to
  the same layers, so compiled-vs-reference differences are float32
  accumulation order only.
"""

from __future__ import annotations

import operator

import torch

from mxc.compiler.frontend import export
from mxc.layers import module_path, unique_layer_names
from mxc.numerics import NONE, FormatSpec, fake_quantize, parse_optional

aten = torch.ops.aten
_MATMULS = {aten.linear.default, aten.mm.default, aten.matmul.default, aten.addmm.default, aten.bmm.default}
_CONVS = {aten.conv2d.default}


def _fq(t: torch.Tensor, spec: FormatSpec | None, axis: int) -> torch.Tensor:
    return t if spec is None else fake_quantize(t.to(torch.float32), spec, axis=axis)


class _FakeQuant(torch.nn.Module):
    """A graph node's fake quantization: the spec is held here, parsed once (FX code holds no specs)."""

    def __init__(self, spec: FormatSpec, axis: int):
        super().__init__()
        self.spec, self.axis = spec, axis

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return _fq(t, self.spec, self.axis)


_ARG_POSITIONS = {  # target -> (activation arg, weight arg, weight block axis)
    aten.linear.default: (0, 1, -1),
    aten.addmm.default: (1, 2, -2),
}


def _insert_fq(gm, node, index: int, spec: FormatSpec, axis: int) -> None:
    """Replace node.args[index] by _fq(arg): a constant is quantized once, now; a value at run time."""
    arg = node.args[index]
    if arg.op == "get_attr":
        name = f"_mxc_fq_{len([n for n in gm.graph.nodes if n.op == 'get_attr'])}"
        gm.register_buffer(name, _fq(operator.attrgetter(arg.target)(gm), spec, axis))
        with gm.graph.inserting_before(node):
            new = gm.graph.get_attr(name)
    else:
        name = f"_mxc_fq_act_{len([n for n in gm.graph.nodes if n.op == 'call_module'])}"
        gm.add_submodule(name, _FakeQuant(spec, axis))
        with gm.graph.inserting_before(node):
            new = gm.graph.call_module(name, (arg,))
    node.update_arg(index, new)


class _FakeQuantConv2d(torch.nn.Module):
    """conv2d as mxc compiles it: unfold -> fake-quant patches and flattened weight along K -> GEMM -> NCHW."""

    def __init__(self, act: FormatSpec | None, wfmt: FormatSpec | None):
        super().__init__()
        self.act, self.wfmt = act, wfmt

    def forward(self, x, w, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        n, _, h, wd = x.shape
        o, _, kh, kw = w.shape
        pair = torch.nn.modules.utils._pair
        stride, padding, dilation = pair(stride), pair(padding), pair(dilation)
        ho, wo = ((size + 2 * p - d * (k - 1) - 1) // s + 1
                  for size, p, d, k, s in zip((h, wd), padding, dilation, (kh, kw), stride))
        cols = torch.nn.functional.unfold(x, (kh, kw), dilation, padding, stride).transpose(1, 2)  # [N, L, K]
        y = _fq(cols, self.act, -1) @ _fq(w.reshape(o, -1), self.wfmt, -1).T
        if bias is not None:
            y = y + bias
        return y.transpose(1, 2).reshape(n, o, ho, wo).contiguous()


def _replace_conv(gm, node, act: FormatSpec | None, wfmt: FormatSpec | None) -> None:
    name = f"_mxc_fq_conv_{len([n for n in gm.graph.nodes if n.op == 'call_module'])}"
    gm.add_submodule(name, _FakeQuantConv2d(act, wfmt))
    with gm.graph.inserting_before(node):
        new = gm.graph.call_module(name, node.args, dict(node.kwargs))
    node.replace_all_uses_with(new)
    gm.graph.erase_node(node)


def fake_quant_module(model: torch.nn.Module, inputs: tuple, manifest: dict) -> torch.fx.GraphModule:
    """The exported graph with mxc.numerics fake quantization on exactly the manifest's layers.

    Constant weights are fake-quantized once (as a deployed fake-quant model
    would hold them); activations are quantized at run time.
    """
    formats = layer_formats(manifest)
    gm = export(model, inputs).module()
    nodes = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in _MATMULS | _CONVS]
    names = unique_layer_names([module_path(n) or f"torch.aten.{n.target._opname}" for n in nodes])
    applied = 0
    for node, name in zip(nodes, names):
        act, wfmt = formats.get(name, (None, None))
        if (act, wfmt) == (None, None):
            continue
        if node.target in _CONVS:
            _replace_conv(gm, node, act, wfmt)
            applied += 1
            continue
        a_i, w_i, w_axis = _ARG_POSITIONS.get(node.target, (0, 1, -2))
        if wfmt is not None:
            _insert_fq(gm, node, w_i, wfmt, w_axis)
        if act is not None:
            _insert_fq(gm, node, a_i, act, -1)
        applied += 1
    if applied != len(formats):
        raise RuntimeError(
            f"fake-quant reference matched {applied} of {len(formats)} quantized layers; "
            "the model changed since compilation? recompile"
        )
    gm.recompile()
    return gm


def layer_formats(manifest: dict) -> dict[str, tuple[FormatSpec | None, FormatSpec | None]]:
    """layer -> (activation spec, weight spec) for every quantized layer of a manifest, parsed once here."""
    return {
        row["layer"]: (parse_optional(row.get("activation_format", NONE)),
                       parse_optional(row["weight_format"]))
        for row in manifest["layers"]
        if row.get("weight_format", NONE) != NONE
    }


def fake_quant_forward(model: torch.nn.Module, inputs: tuple, manifest: dict) -> list[torch.Tensor]:
    """Run `model` with mxc.numerics fake quantization on the manifest's layers."""
    with torch.no_grad():
        return _flatten(fake_quant_module(model, inputs, manifest)(*inputs))


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
