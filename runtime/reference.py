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
from mxc.numerics import NONE, fake_quantize

aten = torch.ops.aten
_MATMULS = {aten.linear.default, aten.mm.default, aten.matmul.default, aten.addmm.default, aten.bmm.default}
_CONVS = {aten.conv2d.default}


def _fq(t: torch.Tensor, fmt: str, axis: int) -> torch.Tensor:
    return t if fmt == NONE else fake_quantize(t.to(torch.float32), fmt, axis=axis)


_ARG_POSITIONS = {  # target -> (activation arg, weight arg, weight block axis)
    aten.linear.default: (0, 1, -1),
    aten.addmm.default: (1, 2, -2),
}


def _insert_fq(gm, node, index: int, fmt: str, axis: int) -> None:
    """Replace node.args[index] by _fq(arg): a constant is quantized once, now; a value at run time."""
    arg = node.args[index]
    if arg.op == "get_attr":
        name = f"_mxc_fq_{len([n for n in gm.graph.nodes if n.op == 'get_attr'])}"
        gm.register_buffer(name, _fq(operator.attrgetter(arg.target)(gm), fmt, axis))
        with gm.graph.inserting_before(node):
            new = gm.graph.get_attr(name)
    else:
        with gm.graph.inserting_before(node):
            new = gm.graph.call_function(_fq, (arg, fmt, axis))
    node.update_arg(index, new)


def _fq_conv2d(x, w, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
               act: str = NONE, wfmt: str = NONE):
    """conv2d as mxc compiles it: unfold -> fake-quant patches and flattened weight along K -> GEMM -> NCHW."""
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    pair = torch.nn.modules.utils._pair
    stride, padding, dilation = pair(stride), pair(padding), pair(dilation)
    ho, wo = ((size + 2 * p - d * (k - 1) - 1) // s + 1
              for size, p, d, k, s in zip((h, wd), padding, dilation, (kh, kw), stride))
    cols = torch.nn.functional.unfold(x, (kh, kw), dilation, padding, stride).transpose(1, 2)  # [N, L, K]
    y = _fq(cols, act, -1) @ _fq(w.reshape(o, -1), wfmt, -1).T
    if bias is not None:
        y = y + bias
    return y.transpose(1, 2).reshape(n, o, ho, wo).contiguous()


def _replace_conv(gm, node, act: str, wfmt: str) -> None:
    with gm.graph.inserting_before(node):
        new = gm.graph.call_function(_fq_conv2d, node.args, {**node.kwargs, "act": act, "wfmt": wfmt})
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
        act, wfmt = formats.get(name, (NONE, NONE))
        if (act, wfmt) == (NONE, NONE):
            continue
        if node.target in _CONVS:
            _replace_conv(gm, node, act, wfmt)
            applied += 1
            continue
        a_i, w_i, w_axis = _ARG_POSITIONS.get(node.target, (0, 1, -2))
        if wfmt != NONE:
            _insert_fq(gm, node, w_i, wfmt, w_axis)
        if act != NONE:
            _insert_fq(gm, node, a_i, act, -1)
        applied += 1
    if applied != len(formats):
        raise RuntimeError(
            f"fake-quant reference matched {applied} of {len(formats)} quantized layers; "
            "the model changed since compilation? recompile"
        )
    gm.recompile()
    return gm


def layer_formats(manifest: dict) -> dict[str, tuple[str, str]]:
    """layer -> (activation format, weight format) for every quantized layer of a manifest."""
    return {
        row["layer"]: (row.get("activation_format", NONE), row.get("weight_format", NONE))
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
