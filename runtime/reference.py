"""The torch references `mxc run --compare` measures against.

* eager: the model as the user wrote it, in its own dtype.
* fake-quant: the exported graph, rewritten with FX so that it applies
  `mxc.numerics.fake_quantize` to exactly the operands mxc quantized, layer by
  layer as the manifest records (layer names are matched in graph order, as
  convert-torch-to-mxq assigns them). This is the numerics reference applied to
  the same layers, so compiled-vs-reference differences are float32
  accumulation order only. A bf16/f16 matmul that mxc compiled runs here as mxc
  runs it: operands extended to f32 (exact, so fake-quantizing the extension
  is fake-quantizing the bf16/f16 values, which is also what
  `mxc.numerics.quantize` does with a bf16/f16 tensor), an f32 GEMM, one
  rounding of the result back to the model's dtype.
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


class ActNoise:
    """Float32-sized noise at every run-time activation rounding: x -> x (1 + sigma n), n ~ N(0, 1).

    What `mxc run --compare` perturbs the reference with to measure how far float32 noise alone (the
    compiled program's other summation order) moves a model's outputs (runtime/compare.py). Off (sigma
    0) until `reseed` sets it; one generator for the whole forward, so a seed fixes every draw.
    """

    def __init__(self):
        self.sigma, self.gen = 0.0, torch.Generator()

    def reseed(self, sigma: float, seed: int) -> None:
        self.sigma = sigma
        self.gen.manual_seed(seed)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        if not self.sigma:
            return t
        return t * (1 + self.sigma * torch.randn(t.shape, generator=self.gen, dtype=t.dtype).to(t.device))


class _Noise(torch.nn.Module):
    """An ActNoise as a graph module (before a KV-cache write's quantize)."""

    def __init__(self, noise: ActNoise):
        super().__init__()
        self.noise = noise

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.noise(t)


class _RoundBf16(torch.nn.Module):
    """A weight-only layer's activations rounded to bf16 (RNE), in float32: `--act-dtype bf16`."""

    def __init__(self, noise: ActNoise | None = None):
        super().__init__()
        self.noise = noise or ActNoise()  # off unless the caller's is reseeded

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(torch.float32)
        return self.noise(t).to(torch.bfloat16).to(torch.float32)


class _FakeQuant(torch.nn.Module):
    """A graph node's fake quantization: the spec is held here, parsed once (FX code holds no specs)."""

    def __init__(self, spec: FormatSpec, axis: int, noise: ActNoise | None = None):
        super().__init__()
        self.spec, self.axis, self.noise = spec, axis, noise or ActNoise()

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(torch.float32)
        return _fq(self.noise(t), self.spec, self.axis)


_ARG_POSITIONS = {  # target -> (activation arg, weight arg, weight block axis)
    aten.linear.default: (0, 1, -1),
    aten.addmm.default: (1, 2, -2),
}


def _insert_fq(gm, node, index: int, spec: FormatSpec | None, axis: int, noise: ActNoise | None = None) -> None:
    """Replace node.args[index] by _fq(arg): a constant is quantized once, now; a value at run time
    (after `noise`, when given). `spec` None: the value rounded to bf16 (`--act-dtype bf16`)."""
    arg = node.args[index]
    if spec is None:
        name = f"_mxc_bf16_act_{len([n for n in gm.graph.nodes if n.op == 'call_module'])}"
        gm.add_submodule(name, _RoundBf16(noise))
        with gm.graph.inserting_before(node):
            new = gm.graph.call_module(name, (arg,))
    elif arg.op == "get_attr":
        name = f"_mxc_fq_{len([n for n in gm.graph.nodes if n.op == 'get_attr'])}"
        gm.register_buffer(name, _fq(operator.attrgetter(arg.target)(gm), spec, axis))
        with gm.graph.inserting_before(node):
            new = gm.graph.get_attr(name)
    else:
        name = f"_mxc_fq_act_{len([n for n in gm.graph.nodes if n.op == 'call_module'])}"
        gm.add_submodule(name, _FakeQuant(spec, axis, noise))
        with gm.graph.inserting_before(node):
            new = gm.graph.call_module(name, (arg,))
    node.update_arg(index, new)


class _InF32(torch.nn.Module):
    """A bf16/f16 matmul as mxc compiles it: tensor operands extended to f32 (exact), the op in f32, the
    result rounded once to `dtype` (convert-torch-to-mxq's arith.extf / arith.truncf)."""

    def __init__(self, target, dtype: torch.dtype):
        super().__init__()
        self.target, self.dtype = target, dtype

    def forward(self, *args, **kwargs):
        up = [a.to(torch.float32) if isinstance(a, torch.Tensor) else a for a in args]
        return self.target(*up, **kwargs).to(self.dtype)


def _compute_in_f32(gm, node, dtype: torch.dtype) -> None:
    name = f"_mxc_in_f32_{len([n for n in gm.graph.nodes if n.op == 'call_module'])}"
    gm.add_submodule(name, _InF32(node.target, dtype))
    with gm.graph.inserting_before(node):
        new = gm.graph.call_module(name, node.args, dict(node.kwargs))
    node.replace_all_uses_with(new)
    gm.graph.erase_node(node)


def _half_dtype(node) -> torch.dtype | None:
    """The node's result dtype when it is bf16/f16 (mxc computes such a matmul in f32), else None."""
    val = node.meta.get("val")
    dtype = getattr(val, "dtype", None)
    return dtype if dtype in (torch.bfloat16, torch.float16) else None


class _FakeQuantConv2d(torch.nn.Module):
    """conv2d as mxc compiles it: unfold -> fake-quant patches and flattened weight along K -> GEMM -> NCHW."""

    def __init__(self, act: FormatSpec | None, wfmt: FormatSpec | None, round_bf16: bool = False,
                 noise: ActNoise | None = None):
        super().__init__()
        self.act, self.wfmt, self.round_bf16, self.noise = act, wfmt, round_bf16, noise or ActNoise()

    def forward(self, x, w, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        dtype = x.dtype  # bf16/f16: computed in f32 from the exact extension, rounded back once
        x, w, bias = x.to(torch.float32), w.to(torch.float32), None if bias is None else bias.to(torch.float32)
        n, _, h, wd = x.shape
        o, _, kh, kw = w.shape
        pair = torch.nn.modules.utils._pair
        stride, padding, dilation = pair(stride), pair(padding), pair(dilation)
        ho, wo = ((size + 2 * p - d * (k - 1) - 1) // s + 1
                  for size, p, d, k, s in zip((h, wd), padding, dilation, (kh, kw), stride))
        cols = torch.nn.functional.unfold(x, (kh, kw), dilation, padding, stride).transpose(1, 2)  # [N, L, K]
        if self.act is not None or self.round_bf16:
            cols = self.noise(cols)
        if self.round_bf16:
            cols = cols.to(torch.bfloat16).to(torch.float32)
        y = _fq(cols, self.act, -1) @ _fq(w.reshape(o, -1), self.wfmt, -1).T
        if bias is not None:
            y = y + bias
        return y.transpose(1, 2).reshape(n, o, ho, wo).contiguous().to(dtype)


def _replace_conv(gm, node, act: FormatSpec | None, wfmt: FormatSpec | None, round_bf16: bool = False,
                  noise: ActNoise | None = None) -> None:
    name = f"_mxc_fq_conv_{len([n for n in gm.graph.nodes if n.op == 'call_module'])}"
    gm.add_submodule(name, _FakeQuantConv2d(act, wfmt, round_bf16, noise))
    with gm.graph.inserting_before(node):
        new = gm.graph.call_module(name, node.args, dict(node.kwargs))
    node.replace_all_uses_with(new)
    gm.graph.erase_node(node)


def fake_quant_module(model: torch.nn.Module, inputs: tuple, manifest: dict,
                      noise: ActNoise | None = None, stored: dict | None = None) -> torch.fx.GraphModule:
    """The exported graph with mxc.numerics fake quantization on exactly the manifest's layers.

    Constant weights are fake-quantized once (as a deployed fake-quant model
    would hold them); activations are quantized at run time. With the option
    `act_dtype` "bf16", or for a layer whose kernels read bf16 activations (the
    manifest's `run_time_rounding`: cuda-sm90's dec and wgmma kernels), the
    activations of weight-only layers without a Hadamard rotation are rounded to
    bf16, as the program rounds them (with one, the program rounds the rotated
    activations, which this reference does not form).

    A calibrated layer (`--calibrate`: its codes were chosen from calibration data, not from the
    model's weight) or an imported one (`--checkpoint`: the checkpoint's codes) takes its weights from
    `stored`: layer -> the dequantized stored codes (`calibrated_weights`), which equal `fake_quantize`
    of its calibrated weight.
    """
    formats = layer_formats(manifest)
    calibrated = {row["layer"] for row in manifest["layers"] if stored_params(row)}
    if calibrated and (stored is None or calibrated - set(stored)):
        raise RuntimeError(f"layers {sorted(calibrated)[:3]} were calibrated (--calibrate): the fake-quant reference "
                           "needs their stored weights (mxc.runtime.reference.calibrated_weights)")
    converted = {row["layer"] for row in manifest["layers"] if "input_shape" in row}  # mxq ops, not mxq.reason
    gm = export(model, inputs, dynamic_shapes=getattr(model, "dynamic_shapes", None)).module()  # (a dynamic prefill)
    nodes = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in _MATMULS | _CONVS]
    names = unique_layer_names([module_path(n) or f"torch.aten.{n.target._opname}" for n in nodes])
    act_bf16 = manifest.get("options", {}).get("act_dtype") == "bf16"
    # layers whose kernels read their activations as bf16 (cuda-sm90's dec and wgmma kernels): rounded here too
    bf16_layers = {row["layer"] for row in manifest["layers"]
                   if "bf16 activations" in row.get("run_time_rounding", ())}
    applied = 0
    for node, name in zip(nodes, names):
        act, wfmt = formats.get(name, (None, None))
        half = _half_dtype(node) if name in converted else None
        if (act, wfmt) == (None, None) and half is None:
            continue
        applied += (act, wfmt) != (None, None)
        round_bf16 = (act_bf16 or name in bf16_layers) and act is None and wfmt is not None and not wfmt.hadamard
        if node.target in _CONVS:
            _replace_conv(gm, node, act, wfmt, round_bf16, noise)
            continue
        a_i, w_i, w_axis = _ARG_POSITIONS.get(node.target, (0, 1, -2))
        if name in calibrated:
            _insert_stored(gm, node, w_i, stored[name] if w_axis == -1 else stored[name].transpose(-1, -2))
        elif wfmt is not None:
            _insert_fq(gm, node, w_i, wfmt, w_axis)
        if act is not None or round_bf16:
            _insert_fq(gm, node, a_i, act, -1, noise)
        if half is not None:
            _compute_in_f32(gm, node, half)
    if noise is not None:  # a KV cache of codes (mxc.generation's kv_store) is a run-time rounding as well
        for i, node in enumerate(n for n in list(gm.graph.nodes) if str(n.target) == "mxc.kv_store.default"):
            gm.add_submodule(f"_mxc_kv_noise_{i}", _Noise(noise))
            with gm.graph.inserting_before(node):
                noisy = gm.graph.call_module(f"_mxc_kv_noise_{i}", (node.args[0],))
            node.replace_input_with(node.args[0], noisy)
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


def _insert_stored(gm, node, index: int, value: torch.Tensor) -> None:
    """Replace the constant node.args[index] by `value` (a calibrated layer's dequantized stored weight)."""
    name = f"_mxc_stored_{len([n for n in gm.graph.nodes if n.op == 'get_attr'])}"
    gm.register_buffer(name, value.to(torch.float32))
    with gm.graph.inserting_before(node):
        node.update_arg(index, gm.graph.get_attr(name))


def stored_params(row: dict) -> list[str] | None:
    """The params holding a layer's codes when the reference must decode them (calibrated or imported codes,
    not the model's weight's), else None."""
    record = row.get("calibration") or row.get("imported")
    return record and record["params"]


def stored_weight(row: dict, read) -> torch.Tensor:
    """A quantized layer's weight as stored, dequantized ([N, K], in the weight's basis): `read(name)` gives a
    parameter's bytes (uint8) for the names `stored_params(row)` lists."""
    from mxc.numerics import QTensor, unpack_fp6, unpack_nibbles

    spec = parse_optional(row["weight_format"])
    fmt = spec.format
    n, k = row["weight_shape"]
    nb = -(-k // fmt.block_size)
    names = stored_params(row)
    el = read(names[0]).reshape(n, -1)
    codes = {4: unpack_nibbles, 6: unpack_fp6}.get(fmt.element.bits, lambda t: t)(el)
    scales = read(names[1]).reshape(n, nb)
    ts = read(names[2]).view(torch.float32).reshape(()) if fmt.tensor_scale else None
    return QTensor(fmt, codes, scales, ts, (n, k), 1, spec.options).dequantize()


def calibrated_weights(path, manifest: dict) -> dict[str, torch.Tensor]:
    """layer -> dequantized stored weight for every calibrated or imported layer of the artifact at `path` (its
    .irpa)."""
    rows = [row for row in manifest["layers"] if stored_params(row)]
    if not rows:
        return {}
    from .artifact import parameter_reader

    entries, read = parameter_reader(path, manifest)
    for row in rows:
        missing = [n for n in stored_params(row) if n not in entries]
        if missing:
            from mxc.errors import ArtifactError

            raise ArtifactError(f"{path}: layer '{row['layer']}' (calibrated or imported): its codes are stored "
                                f"only in the {manifest.get('target')} kernels' layout ({missing[0]} is not in the "
                                ".irpa), so "
                                "the fake-quant reference cannot be rebuilt from the artifact; the reference "
                                "computed at compile time (reference.pt) is what --compare uses")
    return {row["layer"]: stored_weight(row, read) for row in rows}


def fake_quant_forward(model: torch.nn.Module, inputs: tuple, manifest: dict,
                       stored: dict | None = None) -> list[torch.Tensor]:
    """Run `model` with mxc.numerics fake quantization on the manifest's layers."""
    with torch.no_grad():
        return _flatten(fake_quant_module(model, inputs, manifest, stored=stored)(*inputs))


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
