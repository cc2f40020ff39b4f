"""The CUDA targets: fused layers become calls of mxc's own kernels, the rest goes to IREE.

Two passes, each with a `target` option (cuda-sm90: Hopper, sm_90a kernels;
cuda-sm100: Blackwell, sm_100a kernels):

* `mxq-legalize-cuda` picks the kernels of every `mxq.fused_matmul`
  (`mxc.kernels.select`) and writes them on the op (`mxq.kernel`, and the path in
  words, `mxq.path`), so the manifest records which kernel each layer got. Where
  the target has no kernel for a layer's activation format (no block-scaled
  tensor-core kind for the pair), the layer keeps its quantized weights and its
  activations stay in high precision, with a warning that names the layer and
  the reason. Quantize / dequantize pairs left on activation x activation
  matmuls are removed the same way (those matmuls run in float32 through IREE's
  codegen).
* `lower-mxq-to-cuda` assembles the kernels (nvcc/ptxas), declares them in one
  `hal.executable.source` whose object is the cubin (the empty-config target key
  `#hal.executable.target<"cuda", "cuda-nvptx-fb">` matches any CUDA variant),
  and replaces each fused layer by `flow.dispatch`es of its kernels: buffers in
  binding order, then the i32 constants M, N, K, epilogue; the workload [M, N, K]
  sizes the grid. Weights are the stored i8 bytes; the block-scaled skeleton's
  kernels (bsmma, bsdec) read them re-packed into 128 x 128 tiles with 128x4
  scale chunks (new weight-store entries `<name>.t<units>`). Hadamard rotations
  of the activations stay linalg. What is left of mxq is lowered by
  `lower-mxq-to-linalg` (float32 ops IREE's CUDA codegen compiles).

The IREE ops are built in generic form: those dialects are not registered in
torch-mlir's context, IREE parses them.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch
from torch_mlir import ir
from torch_mlir.dialects import arith

from mxc.errors import MxcError, MxcWarning
from mxc.weights import WeightStore
from mxc.dialects.mxq import ParamOp
from mxc.kernels import AMAX_CTAS, EPILOGUES, Kernel, bf16_width, build, layer_path, select, tile_weights, tiled_sizes
from mxc.numerics.formats import NONE, get_format
from mxc.numerics.options import parse_spec
from mxc.numerics.quantize import unpack_fp6, unpack_nibbles

from . import _quant as Q
from ._linalg import I8, collapse_leading, expand_leading, shape_of, ttype
from .base import Pass, walk_ops, weights_field
from .lower_mxq_to_linalg import LowerMxqToLinalg

EXECUTABLE = "mxc_kernels"
CUDA_KEY = '#hal.executable.target<"cuda", "cuda-nvptx-fb">'
KERNEL_ATTR = "mxq.kernel"
PATH_ATTR = "mxq.path"
CUDA_TARGETS = ("cuda-sm90", "cuda-sm100")
LIBRARY_ATTR = "mxc.kernel_library"  # on the module: the cubin (its .ptx and .cu beside it)


def _s(op, key: str) -> str:
    return ir.StringAttr(op.attributes[key]).value


def _m(x: ir.Value) -> int:
    m = 1
    for d in shape_of(x)[:-1]:
        m *= d
    return m


def _check_target(target: str) -> None:
    if target not in CUDA_TARGETS:
        raise MxcError(f"unknown CUDA target '{target}' (valid: {', '.join(CUDA_TARGETS)})")


def _act_supported(spec: str, target: str) -> str | None:
    """Why the activation quantizer cannot take `spec`, or None."""
    fmt, opts = parse_spec(spec)
    if opts.scale_rule != "floor" or opts.rounding != "rne":
        return f"the {target} activation quantizer implements scale_rule=floor, rounding=rne (not {spec})"
    if fmt.choice == "4over6" and opts.error_metric != "mse":
        return f"the {target} Four Over Six activation quantizer implements error_metric=mse (not {spec})"
    return None


def _kernels(op, target: str) -> list[Kernel] | str:
    act = _s(op, "act_format")
    has_bias = op.bias is not None
    fw = parse_spec(_s(op, "w_format"))[0].name
    if act != NONE:
        why = _act_supported(act, target)
        if why:
            return why
        act = parse_spec(act)[0].name
    return select(_m(op.x), fw, act, has_bias, target)


@dataclasses.dataclass(frozen=True)
class MxqLegalizeCuda(Pass):
    """Pick each fused layer's kernels for `target`; keep activations high precision where none exists."""

    name = "mxq-legalize-cuda"
    target: str = "cuda-sm90"

    def run(self, module: ir.Operation) -> None:
        _check_target(self.target)
        kept: dict[str, list[str]] = {}  # reason -> layers whose activations stay high precision
        for op in walk_ops(module, "mxq.fused_matmul"):
            layer = _s(op, "layer")
            ks = _kernels(op, self.target)
            if isinstance(ks, str) and _s(op, "act_format") != NONE:
                reason = ks
                op.operation.attributes["act_format"] = ir.StringAttr.get(NONE)
                ks = _kernels(op, self.target)
                decision = _s(op, "mxq.decision") + f"; activations high precision on {self.target}: {reason}"
                op.operation.attributes["mxq.decision"] = ir.StringAttr.get(decision)
                kept.setdefault(reason, []).append(layer)
            if isinstance(ks, str):
                raise MxcError(f"layer {layer}: {ks}; choose another format for it (--policy) or --target cpu")
            op.operation.attributes[KERNEL_ATTR] = ir.StringAttr.get(" + ".join(k.name for k in ks))
            op.operation.attributes[PATH_ATTR] = ir.StringAttr.get(layer_path(ks))
        for reason, layers in kept.items():
            shown = ", ".join(layers[:4]) + (f" and {len(layers) - 4} more" if len(layers) > 4 else "")
            warnings.warn(f"{len(layers)} layer(s) ({shown}): {reason}; their activations stay in high precision "
                          f"and their weights stay quantized", MxcWarning, stacklevel=2)
        for deq in walk_ops(module, "mxq.dequantize"):
            src = deq.elements.owner
            if isinstance(src, ir.Block) or src.operation.name != "mxq.quantize":
                continue
            users = [u.owner for u in deq.result.uses]
            layer = next((_s(u, "layer") for u in users if "layer" in u.attributes), "an activation matmul")
            warnings.warn(f"layer {layer}: activation x activation matmuls have no {self.target} kernel; "
                          f"its operands stay in high precision", MxcWarning, stacklevel=2)
            deq.result.replace_all_uses_with(src.operation.operands[0])
            deq.operation.erase()
        for q in walk_ops(module, "mxq.quantize"):
            if all(not list(r.uses) for r in q.results):
                q.operation.erase()


# ---------------------------------------------------------------- IREE ops (generic form)
def _storage(v: ir.Value, cache: dict) -> ir.Value:
    """The stored bytes of a weight param (4-bit two per byte, FP6 four per three, FP8 as i8)."""
    owner = v.owner
    t = ir.RankedTensorType(v.type)
    elem = str(t.element_type)
    if elem in ("f32", "i8"):
        return v
    name = _s(owner, "name")
    if name not in cache:
        shape = list(t.shape)
        bits = 4 if elem in ("f4E2M1FN", "i4") else 6 if elem.startswith("f6") else 8
        shape[-1] = shape[-1] * bits // 8
        cache[name] = _param_like(owner, name, ttype(shape, I8()))
    return cache[name]


def _param_like(owner, name: str, t: ir.Type) -> ir.Value:
    """A new mxq.param `name` of type `t` before `owner`, carrying owner's mxq.* attributes."""
    with owner.location, ir.InsertionPoint(owner.operation):
        p = ParamOp(name=ir.StringAttr.get(name), result=t)
        for a in owner.attributes:
            key = a if isinstance(a, str) else a.name
            if key.startswith("mxq."):
                p.operation.attributes[key] = owner.attributes[key]
    return p.result


def _i32(v: int) -> ir.Value:
    return arith.ConstantOp(ir.IntegerType.get_signless(32), v).result


def _index(v: int) -> ir.Value:
    return arith.ConstantOp(ir.IndexType.get(), v).result


def _count_region(k: Kernel) -> str:
    """The export's workgroup-count body, from the workload (M, N, K); mirrors Kernel.grid."""
    lines = ["%c1 = \"arith.constant\"() <{value = 1 : index}> : () -> index"]

    def const(name, v):
        lines.append(f'%{name} = "arith.constant"() <{{value = {v} : index}}> : () -> index')

    def op(res, name, a, b):
        lines.append(f'%{res} = "arith.{name}"(%{a}, %{b}) : (index, index) -> index')

    if k.kind == "gemv":
        const("cols", 16)
        op("x", "ceildivui", "n", "cols")
        y = "c1"
    elif k.kind == "tobf16":
        const("c64", 64)
        const("c256", 256)
        op("kb", "ceildivui", "k", "c64")
        op("ka", "muli", "kb", "c64")
        op("elems", "muli", "m", "ka")
        op("x", "ceildivui", "elems", "c256")
        y = "c1"
    elif k.kind == "amax":
        const("x", AMAX_CTAS)
        y = "c1"
    elif k.kind == "bsq":
        per = 8 if k.a_format == "bf16" else get_format(k.a_format).block_size
        const("tile", 128)
        const("per", per)
        const("c256", 256)
        op("mt", "ceildivui", "m", "tile")
        op("mp", "muli", "mt", "tile")
        op("kt", "ceildivui", "k", "tile")
        op("kp", "muli", "kt", "tile")
        op("row", "divui", "kp", "per")
        op("items", "muli", "mp", "row")
        op("x", "ceildivui", "items", "c256")
        y = "c1"
    elif k.kind == "actq":
        const("c32", 32)
        const("c256", 256)
        op("nb", "ceildivui", "k", "c32")
        op("blocks", "muli", "m", "nb")
        op("x", "ceildivui", "blocks", "c256")
        y = "c1"
    else:
        const("tile", 128)
        op("x", "ceildivui", "n", "tile")
        op("y", "ceildivui", "m", "tile")
        y = "y"
    lines.append(f'"hal.return"(%x, %{y}, %c1) : (index, index, index) -> ()')
    return "\n".join(lines)


def _export(k: Kernel, ordinal: int) -> str:
    binds = ", ".join(
        "#hal.pipeline.binding<storage_buffer, ReadOnly>" if ro else "#hal.pipeline.binding<storage_buffer>"
        for _, ro in k.bindings())
    layout = f"#hal.pipeline.layout<constants = {len(k.constants())}, bindings = [{binds}]>"
    smem = f", workgroup_local_memory = {k.smem} : index" if k.smem else ""
    body = _count_region(k).replace("\n", "\n      ")
    return f""""hal.executable.export"() <{{layout = {layout}, ordinal = {ordinal} : index, sym_name = "{k.name}", sym_visibility = "public", workgroup_size = [{k.threads} : index, 1 : index, 1 : index]{smem}}}> ({{
    ^bb0(%device: !hal.device, %m: index, %n: index, %k: index):
      {body}
    }}, {{
    }}) : () -> ()"""


def executable_text(kernels: list[Kernel], object_path: str) -> str:
    exports = "\n    ".join(_export(k, i) for i, k in enumerate(kernels))
    return f"""module {{
  "hal.executable.source"() <{{objects = #hal.executable.objects<{{{CUDA_KEY} = [#hal.executable.object<{{path = "{object_path}"}}>]}}>, sym_name = "{EXECUTABLE}", sym_visibility = "private"}}> ({{
    {exports}
    "hal.executable.source_end"() : () -> ()
  }}) : () -> ()
}}"""


def _dispatch(k: Kernel, args: list[ir.Value], consts: list[int], results: list[ir.Type], mnk) -> list[ir.Value]:
    workload = [_index(v) for v in mnk]
    operands = [_i32(c) for c in consts] + args
    op = ir.Operation.create(
        "flow.dispatch",
        results=results,
        operands=workload + operands,
        attributes={
            "entry_points": ir.ArrayAttr.get([ir.SymbolRefAttr.get([EXECUTABLE, k.name])]),
            "operandSegmentSizes": ir.DenseI32ArrayAttr.get([len(workload), len(operands), 0, 0]),
            "tied_operands": ir.ArrayAttr.get([ir.IntegerAttr.get(ir.IndexType.get(), -1)] * len(results)),
        },
    )
    return list(op.results)


def _tiled(w: ir.Value, scales: ir.Value, fmt: str, ue: int, k: int, cache: dict,
           store: WeightStore | None) -> tuple[ir.Value, ir.Value]:
    """The bsmma / bsdec weights: codes in 128 x 128 tiles of 16-byte units of `ue`, scales in 128x4
    chunks. New weight-store entries `<name>.t<ue>`, written from the stored bytes (mxc-opt, which
    has no weight store, names them only)."""
    wname, sname = _s(w.owner, "name"), _s(scales.owner, "name")
    key = (wname, ue)
    if key not in cache:
        f = get_format(fmt)
        n = shape_of(w)[0]
        kb = -(-k // f.block_size)
        nbytes = tiled_sizes(fmt, ue, n, k)
        names = (f"{wname}.t{ue}", f"{sname}.t{ue}")
        if store is not None and wname in store:
            packed = store[wname]
            codes = {4: unpack_nibbles, 6: unpack_fp6}.get(f.element.bits, lambda c: c)(packed.view(torch.uint8))
            tw, ts = tile_weights(codes.reshape(n, -1), store[sname].view(torch.uint8).reshape(n, kb), fmt, ue, k)
            if (tw.numel(), ts.numel()) != nbytes:  # the IR's types and the stored bytes disagree
                raise MxcError(f"weight '{wname}': tiled to {tw.numel()} + {ts.numel()} bytes, the IR expects "
                               f"{nbytes[0]} + {nbytes[1]}; recompile from model.py")
            names = (store.add(names[0], tw), store.add(names[1], ts))
        cache[key] = (_param_like(w.owner, names[0], ttype([nbytes[0]], I8())),
                      _param_like(scales.owner, names[1], ttype([nbytes[1]], I8())))
    return cache[key]


@dataclasses.dataclass(frozen=True)
class LowerMxqToCuda(Pass):
    """Fused layers -> flow.dispatch of mxc's kernels for `target` (one embedded cubin); the rest -> linalg."""

    name = "lower-mxq-to-cuda"
    target: str = "cuda-sm90"
    weights: WeightStore | None = weights_field()

    def run(self, module: ir.Operation) -> None:
        _check_target(self.target)
        fused = walk_ops(module, "mxq.fused_matmul")
        plan = []
        for op in fused:
            layer = _s(op, "layer")
            if KERNEL_ATTR not in op.attributes:
                raise MxcError(f"layer {layer}: no kernel chosen (run mxq-legalize-cuda first)")
            ks = _kernels(op, self.target)
            names = ks if isinstance(ks, str) else " + ".join(k.name for k in ks)
            if names != _s(op, KERNEL_ATTR):
                raise MxcError(f"layer {layer}: mxq.kernel says '{_s(op, KERNEL_ATTR)}' but its formats and "
                               f"shape take '{names}' on {self.target} (run mxq-legalize-cuda{{target={self.target}}} "
                               f"again)")
            plan.append((op, ks))
        kernels = list(dict.fromkeys(k for _, ks in plan for k in ks))
        if kernels:
            built = build(kernels)
            text = executable_text(kernels, str(built.cubin_path))
            parsed = ir.Module.parse(text, module.context)  # keep it alive while its op moves
            exe = parsed.body.operations[0]
            exe.move_before(module.regions[0].blocks[0].operations[0])
            del parsed
            module.attributes[LIBRARY_ATTR] = ir.StringAttr.get(str(built.cubin_path))
        storage: dict = {}
        tiled: dict = {}
        for op, ks in plan:
            with op.location, ir.InsertionPoint(op.operation):
                y = self._lower(op, ks, storage, tiled, self.weights)
            op.result.replace_all_uses_with(y)
            op.operation.erase()
        for p in walk_ops(module, "mxq.param"):
            if not list(p.result.uses):
                p.operation.erase()
        LowerMxqToLinalg().run(module)

    @staticmethod
    def _lower(op, ks: list[Kernel], storage: dict, tiled: dict, store: WeightStore | None) -> ir.Value:
        _, w_opts = parse_spec(_s(op, "w_format"))
        x = op.x
        lead = shape_of(x)[:-1]
        x2 = collapse_leading(x)
        if w_opts.hadamard:  # weights were rotated offline; the activations are rotated here
            x2 = Q.rotate(x2, w_opts.hadamard)
        m, k = shape_of(x2)
        n = shape_of(op.w)[0]
        epi = EPILOGUES[_s(op, "epilogue")]
        ts = [op.w_tensor_scale] if op.w_tensor_scale is not None else []
        bias = [op.bias] if op.bias is not None else []
        f32 = ir.F32Type.get()
        out = ttype([m, n], f32)
        main = ks[-1]
        if main.kind in ("bsmma", "bsdec"):
            ua, uw = main.units()
            w_fmt = parse_spec(_s(op, "w_format"))[0].name
            wt, wst = _tiled(op.w, op.w_scales, w_fmt, uw, k, tiled, store)
            a_fmt = "bf16" if main.kind == "bsdec" else main.a_format
            nc, ns = tiled_sizes(a_fmt, ua, m, k)
            ats, a_in = [], []
            for kern in ks[:-1]:
                if kern.kind == "amax":
                    ats = _dispatch(kern, [x2], [m, k], [ttype([AMAX_CTAS], f32)], (m, n, k))
                else:
                    outs = [ttype([nc], I8())] + ([ttype([ns], I8())] if ns else [])
                    a_in = _dispatch(kern, [x2, *ats], [m, k], outs, (m, n, k))
            y = _dispatch(main, [*a_in, *ats, wt, wst, *ts, *bias], [m, n, k, epi], [out], (m, n, k))[0]
            return expand_leading(y, lead)
        w, ws = _storage(op.w, storage), _storage(op.w_scales, storage)
        if ks[0].kind == "actq":
            nb = -(-k // 32)
            codes, scales = _dispatch(ks[0], [x2], [m, k], [ttype([m, nb * 32], I8()), ttype([m, nb], I8())],
                                      (m, n, k))
            y = _dispatch(ks[1], [codes, scales, w, ws, *bias], [m, n, k, epi], [out], (m, n, k))[0]
        elif ks[0].kind == "tobf16":
            xb = _dispatch(ks[0], [x2], [m, k], [ttype([m, bf16_width(k)], ir.BF16Type.get())], (m, n, k))[0]
            y = _dispatch(ks[1], [xb, w, ws, *ts, *bias], [m, n, k, epi], [out], (m, n, k))[0]
        else:
            y = _dispatch(ks[0], [x2, w, ws, *ts, *bias], [m, n, k, epi], [out], (m, n, k))[0]
        return expand_leading(y, lead)
