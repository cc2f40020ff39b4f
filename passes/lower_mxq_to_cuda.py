"""lower-mxq-to-cuda: fused layers become launches of mxc's own kernels in an IREE CUDA program.

Reads each `mxq.fused_matmul`'s kernels from `mxq.kernels` (mxq-legalize-cuda chose them; the
pass checks that they fit the op's formats, bias and the target's architecture and refuses stale
ones), assembles them (nvcc / ptxas, `mxc.kernels.build`) and declares them in one
`hal.executable.source` whose object is the cubin (the empty-config target key
`#hal.executable.target<"cuda", "cuda-nvptx-fb">` matches any CUDA variant). Each export's
layout, workgroup size and shared memory come from its kernel class, and its workgroup-count
region is built from the same `Kernel.grid` the GPU runner uses, with arith ops over the workload
[M, N, K]. Each layer becomes one `flow.dispatch` per launch of `mxc.kernels.layer_launches`:
i32 constants, then the buffers in binding order. Weights are the stored i8 bytes; the block-scaled
skeleton's GEMMs (bsmma, bsdec) read them re-packed into 128 x 128 tiles with 128x4 scale chunks
(new weight-store entries `<name>.t<units>`). Hadamard rotations of the activations stay linalg;
the rest of mxq is left to lower-mxq-to-linalg, the next phase. Layers of one `mxq.launch_group`
(mxq-legalize-cuda) become one `dec` launch over their weights concatenated along N (weight-store
entries `<first>+<second>+....<layout suffix>`, packed from the layers' stored codes side by side) with
a tensor scale of 1, then each layer's columns of the result times its own NV tensor scale, plus its bias,
through its epilogue (lower-mxq-to-linalg's formulas: the kernel's own).

The IREE ops are built in generic form with `ir.Operation.create`: their dialects are not
registered in torch-mlir's context, and IREE parses the printed module.
"""

from __future__ import annotations

import dataclasses

import torch
from torch_mlir import ir
from torch_mlir.dialects import arith, scf

from mxc.dialects.mxq import ParamOp, format_attr
from mxc.dialects.mxq_kernels import KERNELS_ATTR, LAUNCH_GROUP_ATTR, buckets_of, kernels_of
from mxc.errors import MxcError
from mxc.kernels import Built, Kernel, build, layer_launches
from mxc.kernels.launches import gemm_kernel, weight_layout
from mxc.kernels.operands import WeightLayout, layout_recipe
from mxc.numerics.formats import NONE, get_format
from mxc.numerics.quantize import unpack_fp6, unpack_nibbles
from mxc.weights import WeightStore

from . import _quant as Q
from ._linalg import DYN, I8, collapse_leading, dynamic_sizes, expand_leading, filled, shape_of, slice_last, ttype
from .base import Pass, walk_ops, weights_field
from .lower_mxq_to_linalg import epilogue
from .mxq_legalize_cuda import cuda_target, gemm_layer, groupable, input_source

EXECUTABLE = "mxc_kernels"
CUDA_KEY = '#hal.executable.target<"cuda", "cuda-nvptx-fb">'
DTYPES = {"f32": ir.F32Type.get, "bf16": ir.BF16Type.get, "i8": I8}


def _s(op, key: str) -> str:
    return ir.StringAttr(op.attributes[key]).value


def _index(v) -> ir.Value:
    return v if isinstance(v, ir.Value) else arith.ConstantOp(ir.IndexType.get(), v).result


class _IndexOps:
    """Kernel.grid's and Kernel.outputs' arithmetic as `arith` ops on index values (the Python twin is kernels'
    IntOps), folded where both sides are ints; one constant op per value."""

    def __init__(self):
        self.consts: dict[int, ir.Value] = {}

    def value(self, v) -> ir.Value:
        if isinstance(v, ir.Value):
            return v
        if v not in self.consts:
            self.consts[v] = _index(v)
        return self.consts[v]

    def cdiv(self, a, b):
        if isinstance(a, int) and isinstance(b, int):
            return -(-a // b)
        return arith.CeilDivUIOp(self.value(a), self.value(b)).result

    def div(self, a, b):
        if isinstance(a, int) and isinstance(b, int):
            return a // b
        return arith.DivUIOp(self.value(a), self.value(b)).result

    def mul(self, a, b):
        if isinstance(a, int) and isinstance(b, int):
            return a * b
        if b == 1 or a == 1:
            return a if b == 1 else b
        return arith.MulIOp(self.value(a), self.value(b)).result

    def max(self, a, b):
        if isinstance(a, int) and isinstance(b, int):
            return max(a, b)
        return arith.MaxUIOp(self.value(a), self.value(b)).result

    def min(self, a, b):
        if isinstance(a, int) and isinstance(b, int):
            return min(a, b)
        return arith.MinUIOp(self.value(a), self.value(b)).result


def _layout(k: Kernel) -> ir.Attribute:
    binds = ", ".join("#hal.pipeline.binding<storage_buffer>" if b.writes
                      else "#hal.pipeline.binding<storage_buffer, ReadOnly>" for b in k.bindings())
    return ir.Attribute.parse(f"#hal.pipeline.layout<constants = {len(k.constants())}, bindings = [{binds}]>")


def _export(k: Kernel, ordinal: int) -> None:
    """hal.executable.export of `k` at the insertion point, its workgroup count from `k.grid`."""
    index = ir.IndexType.get()
    attrs = {
        "layout": _layout(k),
        "ordinal": ir.IntegerAttr.get(index, ordinal),
        "sym_name": ir.StringAttr.get(k.name),
        "sym_visibility": ir.StringAttr.get("public"),
        "workgroup_size": ir.ArrayAttr.get([ir.IntegerAttr.get(index, v) for v in (k.threads, 1, 1)]),
    }
    if k.smem:
        attrs["workgroup_local_memory"] = ir.IntegerAttr.get(index, k.smem)
    export = ir.Operation.create("hal.executable.export", attributes=attrs, regions=2)
    body = export.regions[0].blocks.append(ir.Type.parse("!hal.device"), index, index, index)
    with ir.InsertionPoint(body):
        _, m, n, kk = body.arguments
        ops = _IndexOps()
        counts = [ops.value(v) for v in k.grid(m, n, kk, ops)]
        ir.Operation.create("hal.return", operands=counts)


def _executable(kernels: list[Kernel], cubin: str) -> None:
    """hal.executable.source holding every kernel's export, its object the cubin, at the insertion point."""
    objects = ir.Attribute.parse(
        f'#hal.executable.objects<{{{CUDA_KEY} = [#hal.executable.object<{{path = "{cubin}"}}>]}}>')
    exe = ir.Operation.create("hal.executable.source", regions=1, attributes={
        "objects": objects, "sym_name": ir.StringAttr.get(EXECUTABLE), "sym_visibility": ir.StringAttr.get("private")})
    with ir.InsertionPoint(exe.regions[0].blocks.append()):
        for i, k in enumerate(kernels):
            _export(k, i)
        ir.Operation.create("hal.executable.source_end")


def _i32(v) -> ir.Value:
    i32 = ir.IntegerType.get_signless(32)
    return arith.IndexCastOp(i32, v).result if isinstance(v, ir.Value) else arith.ConstantOp(i32, v).result


def _dispatch(k: Kernel, args: list[ir.Value], consts: tuple, results: list[tuple[list, ir.Type]],
              mnk) -> list[ir.Value]:
    """A flow.dispatch of `k`: its workload [M, N, K], i32 constants then buffers; results as (shape, element
    type), a size of either an int or an index value (a dynamic row count), passed as the dispatch's dims."""
    workload = [_index(v) for v in mnk]
    operands = [_i32(c) for c in consts] + args
    arg_dims = [d for a in args if not ir.RankedTensorType(a.type).has_static_shape for d in dynamic_sizes(shape_of(a))]
    result_dims = [_index(d) for shape, _ in results for d in dynamic_sizes(shape)]
    op = ir.Operation.create(
        "flow.dispatch",
        results=[ttype(shape, elem) for shape, elem in results],
        operands=workload + operands + arg_dims + result_dims,
        attributes={
            "entry_points": ir.ArrayAttr.get([ir.SymbolRefAttr.get([EXECUTABLE, k.name])]),
            "operandSegmentSizes": ir.DenseI32ArrayAttr.get([len(workload), len(operands), len(arg_dims),
                                                             len(result_dims)]),
            "tied_operands": ir.ArrayAttr.get([ir.IntegerAttr.get(ir.IndexType.get(), -1)] * len(results)),
        },
    )
    return list(op.results)


def _param_like(owner, name: str, t: ir.Type) -> ir.Value:
    """A new mxq.param `name` of type `t` before `owner`, carrying owner's mxq.* attributes."""
    with owner.location, ir.InsertionPoint(owner.operation):
        p = ParamOp(name=ir.StringAttr.get(name), result=t)
        for a in owner.attributes:
            key = a if isinstance(a, str) else a.name
            if key.startswith("mxq."):
                p.operation.attributes[key] = owner.attributes[key]
    return p.result


def _function_of(op) -> str:
    """The name of the function holding `op`."""
    parent = op.operation.parent
    while parent is not None and parent.name != "func.func":
        parent = parent.parent
    return "" if parent is None else ir.StringAttr(parent.attributes["sym_name"]).value


def _storage(v: ir.Value, cache: dict) -> ir.Value:
    """The stored bytes of a weight param (4-bit two per byte, FP6 four per three, FP8 as i8)."""
    t = ir.RankedTensorType(v.type)
    elem = t.element_type
    bits = elem.width if isinstance(elem, (ir.IntegerType, ir.FloatType)) else 8
    if isinstance(elem, ir.F32Type) or (isinstance(elem, ir.IntegerType) and bits == 8):
        return v
    name = _s(v.owner, "name")
    if name not in cache:
        shape = list(t.shape)
        shape[-1] = shape[-1] * bits // 8
        cache[name] = _param_like(v.owner, name, ttype(shape, I8()))
    return cache[name]


def _tiled(ws: list[ir.Value], scales: list[ir.Value], fmt: str, layout: WeightLayout, k: int, cache: dict,
           store: WeightStore | None) -> tuple[ir.Value, ir.Value]:
    """The weights re-packed into the layout the layer's GEMM reads (the bsmma / bsdec tiles, the dec
    kernel's fragments). New weight-store entries `<name>.<layout suffix>`, written from the stored
    bytes (mxc-opt, which has no weight store, names them only). Several weights (a launch group's layers)
    are packed side by side along N, as `<first>+<second>+....<layout suffix>`."""
    wnames = [_s(w.owner, "name") for w in ws]
    snames = [_s(sc.owner, "name") for sc in scales]
    key = (tuple(wnames), layout)
    if key not in cache:
        f = get_format(fmt)
        ns = [shape_of(w)[0] for w in ws]
        n, kb = sum(ns), -(-k // f.block_size)
        nbytes = layout.sizes(fmt, n, k)
        names = (f"{'+'.join(wnames)}.{layout.suffix}", f"{'+'.join(snames)}.{layout.suffix}")
        if store is not None and names[0] in store and names[1] in store:
            pass  # re-packed already for another function of the module (--generate's prefill and decode)
        elif store is not None and all(w in store for w in wnames):
            unpack = {4: unpack_nibbles, 6: unpack_fp6}.get(f.element.bits, lambda c: c)
            codes = torch.cat([unpack(store[w].view(torch.uint8)).reshape(ni, -1) for w, ni in zip(wnames, ns)])
            sc = torch.cat([store[sn].view(torch.uint8).reshape(ni, kb) for sn, ni in zip(snames, ns)])
            tw, ts = layout.pack(codes, sc, fmt, k)
            if (tw.numel(), ts.numel()) != nbytes:  # the IR's types and the stored bytes disagree
                raise MxcError(f"weight '{'+'.join(wnames)}': re-packed to {tw.numel()} + {ts.numel()} bytes, the IR "
                               f"expects {nbytes[0]} + {nbytes[1]}; recompile from model.py")
            of = [[store.recipes.get(x) for x in xs] for xs in (wnames, snames)]
            parts = [r[0] if len(r) == 1 else {"op": "concat", "rows": ns, "parts": r} for r in of]
            recipe = None if any(r is None for rs in of for r in rs) else {
                "op": "pack", "layout": layout_recipe(layout), "fmt": fmt, "k": k, "n": n, "kb": kb,
                "elements": parts[0], "scales": parts[1]}
            names = (store.add(names[0], tw, recipe and {**recipe, "part": 0}),
                     store.add(names[1], ts, recipe and {**recipe, "part": 1}))
        cache[key] = (_param_like(ws[0].owner, names[0], ttype([nbytes[0]], I8())),
                      _param_like(scales[0].owner, names[1], ttype([nbytes[1]], I8())))
    return cache[key]


def _input(x: ir.Value, w_spec) -> tuple[ir.Value, list[int]]:
    """A layer's input as [M, K] (rotated where its weights were rotated offline) and its leading dims."""
    x2 = collapse_leading(x)
    if w_spec.hadamard:
        x2 = Q.rotate(x2, w_spec.hadamard)
    return x2, shape_of(x)[:-1]


def _launch(ks: list[Kernel], buffers: dict, m, n: int, k: int, epi: str) -> ir.Value:
    """The flow.dispatch of each launch of `ks` over `buffers` (by binding name; outputs added); the output y.
    `m` an int, or an index value for a dynamic row count."""
    buffers = dict(buffers)
    for launch in layer_launches(ks, m, n, k, epi, _IndexOps()):
        results = [(list(o.shape), DTYPES[o.dtype]()) for o in launch.writes]
        outs = _dispatch(launch.kernel, [buffers[r] for r in launch.reads], launch.constants, results, (m, n, k))
        buffers.update({o.name: v for o, v in zip(launch.writes, outs)})
    return buffers["y"]


def _by_rows(buckets: list, m: ir.Value, n: int, build) -> ir.Value:
    """`build(kernels)` of the first bucket with m <= its m_max (the last: every larger m), as nested scf.if
    on the run-time row count `m`; the result [m, n] float32."""
    top, ks = buckets[0]
    if len(buckets) == 1:
        return build(ks)
    index = ir.IndexType.get()
    fits = arith.CmpIOp(arith.CmpIPredicate.ule, m, arith.ConstantOp(index, top).result).result
    branch = scf.IfOp(fits, [ttype([DYN, n], ir.F32Type.get())], has_else=True)
    with ir.InsertionPoint(branch.then_block):
        scf.YieldOp([build(ks)])
    with ir.InsertionPoint(branch.else_block):
        scf.YieldOp([_by_rows(buckets[1:], m, n, build)])
    return branch.result


def _launch_groups(plan: list, target) -> dict[int, list]:
    """Per function and mxq.launch_group: the (op, kernels) of its layers in IR order (keyed by the position of
    the first in `plan`), refused when stale (kernels, format or input no longer shared)."""
    groups: dict[tuple[str, str], list] = {}
    for op, ks in plan:
        if LAUNCH_GROUP_ATTR in op.attributes:
            groups.setdefault((_function_of(op), _s(op, LAUNCH_GROUP_ATTR)), []).append((op, ks))
    out = {}
    for (_, name), members in groups.items():
        first_op, first_ks = members[0]
        for op, ks in members:
            if (not groupable(op, ks) or ks[0] != first_ks[0] or _s(op, "w_format") != _s(first_op, "w_format")
                    or input_source(op.x) != input_source(first_op.x)):
                raise MxcError(f"layer {_s(op, 'layer')}: {LAUNCH_GROUP_ATTR} '{name}' joins layers that do not share "
                               f"their input, weight format and M = 1 dec kernel; run "
                               f"mxq-legalize-cuda{{target={target.name}}} again")
        if len(members) > 1:
            out[next(i for i, (op, _) in enumerate(plan) if op == first_op)] = members
    return out


def _checked_kernels(op, target) -> list[tuple[int | None, list[Kernel]]]:
    """The op's recorded kernels by row count ([(m_max, kernels)]: one bucket for a static M, mxq.buckets for a
    dynamic one), refused when they do not fit its formats, bias or the target."""
    layer = gemm_layer(op)
    if KERNELS_ATTR not in op.attributes:
        raise MxcError(f"layer {layer.layer}: no kernels chosen (run mxq-legalize-cuda{{target={target.name}}} first)")
    try:
        buckets = ([(layer.m, kernels_of(op))] if layer.m  # (a static M: mxq.kernels, whatever else is there)
                   else buckets_of(op) or [(None, kernels_of(op))])
    except (TypeError, ValueError) as e:
        raise MxcError(f"layer {layer.layer}: malformed {KERNELS_ATTR}: {e}") from e
    for _, ks in buckets:
        _check_fits(op, layer, ks, target)
    return buckets


def _check_fits(op, layer, ks: list[Kernel], target) -> None:
    """MxcError when the kernels `ks` do not compute the layer's formats and bias on the target."""
    main = gemm_kernel(ks)
    grouped = LAUNCH_GROUP_ATTR in op.attributes  # (its bias is added after the group's launch)
    wanted = {"w_format": layer.w_format, "bias": layer.bias and not grouped, "arch": target.arch}
    got = {"w_format": getattr(main, "w_format", None), "arch": getattr(main, "arch", None),
           "bias": any(b.name == "bias" for k in ks for b in k.bindings())}
    act = getattr(main, "a_format", None)
    if got != wanted or (act not in (None, "bf16") and act != layer.a_format) or any(k.arch != target.arch for k in ks):
        names = ", ".join(k.name for k in ks)
        raise MxcError(f"layer {layer.layer}: {KERNELS_ATTR} names [{names}], which does not compute "
                       f"{layer.w_format} weights x {layer.a_format or NONE} activations"
                       f"{' with bias' if layer.bias else ''} on {target.name} ({target.arch}); run "
                       f"mxq-legalize-cuda{{target={target.name}}} again")


@dataclasses.dataclass(frozen=True)
class LowerMxqToCuda(Pass):
    """Fused layers -> flow.dispatch of mxc's kernels for `target`, all in one embedded cubin."""

    name = "lower-mxq-to-cuda"
    target: str = "cuda-sm90"
    weights: WeightStore | None = weights_field()
    # The assembled kernel library is appended here for the driver to copy beside the artifact.
    libraries: list[Built] | None = dataclasses.field(default=None, compare=False, repr=False,
                                                       metadata={"option": False})

    def run(self, module: ir.Operation) -> None:
        target = cuda_target(self.target)
        by_rows = [(op, _checked_kernels(op, target)) for op in walk_ops(module, "mxq.fused_matmul")]
        plan = [(op, buckets[-1][1]) for op, buckets in by_rows]  # (a static M: the one bucket)
        groups = _launch_groups(plan, target)
        grouped = {id(op) for members in groups.values() for op, _ in members}
        kernels = list(dict.fromkeys(k for _, buckets in by_rows for _, ks in buckets for k in ks))
        if kernels:
            built = build(kernels)
            if self.libraries is not None:
                self.libraries.append(built)
            with ir.InsertionPoint.at_block_begin(module.regions[0].blocks[0]), ir.Location.unknown():
                _executable(kernels, str(built.cubin_path))
        storage: dict = {}  # function -> the params made in it (a value is used in its own function only)
        tiled: dict = {}
        for i, (op, buckets) in enumerate(by_rows):
            if i in groups:
                members = [o for o, _ in groups[i]]
                self._lower_group(members, buckets[0][1][0], tiled.setdefault(_function_of(op), {}))
            if id(op) in grouped:  # (lowered with its group's first, and erased)
                continue
            func = _function_of(op)
            with op.location, ir.InsertionPoint(op.operation):
                y = self._lower(op, buckets, storage.setdefault(func, {}), tiled.setdefault(func, {}))
            op.result.replace_all_uses_with(y)
            op.operation.erase()
        for p in walk_ops(module, "mxq.param"):
            if not list(p.result.uses):
                p.operation.erase()

    def _lower_group(self, ops: list, kernel: Kernel, tiled: dict) -> None:
        """One launch of `kernel` for the layers `ops` (IR order; one input, one format), at the first; each
        layer's columns scaled, biased and activated where the layer was."""
        first = ops[0]
        w_spec = format_attr(first, "w_format", allow_none=False)
        ns = [shape_of(op.w)[0] for op in ops]
        with first.location, ir.InsertionPoint(first.operation):
            x2, lead = _input(first.x, w_spec)
            m, k = shape_of(x2)
            w, ws = _tiled([op.w for op in ops], [op.w_scales for op in ops], w_spec.name, kernel.weight_layout(), k,
                           tiled, self.weights)
            one = filled([], 1.0) if first.w_tensor_scale is not None else None  # each layer's scale after
            buffers = {"x": x2, "w": w, "w_scales": ws, "w_tensor_scale": one, "bias": None}
            y = _launch([kernel], buffers, m, sum(ns), k, "none")
        offset = 0
        for op, n in zip(ops, ns):
            with op.location, ir.InsertionPoint(op.operation):
                y_op = epilogue(slice_last(y, n, offset), op.bias, _s(op, "epilogue"), op.w_tensor_scale)
                y_op = expand_leading(y_op, lead)
            offset += n
            op.result.replace_all_uses_with(y_op)
            op.operation.erase()

    def _lower(self, op, buckets: list, storage: dict, tiled: dict) -> ir.Value:
        """The layer's launches (a dynamic M: each bucket's, in the branch of its row counts)."""
        w_spec = format_attr(op, "w_format", allow_none=False)
        x2, lead = _input(op.x, w_spec)
        m, k = shape_of(x2)
        n = shape_of(op.w)[0]

        def launches(ks: list[Kernel]) -> ir.Value:
            layout = weight_layout(ks)
            if layout is not None:
                w, ws = _tiled([op.w], [op.w_scales], w_spec.name, layout, k, tiled, self.weights)
            else:
                w, ws = _storage(op.w, storage), _storage(op.w_scales, storage)
            buffers = {"x": x2, "w": w, "w_scales": ws, "w_tensor_scale": op.w_tensor_scale, "bias": op.bias}
            return _launch(ks, buffers, m, n, k, _s(op, "epilogue"))

        y = launches(buckets[0][1]) if isinstance(m, int) else _by_rows(buckets, m, n, launches)
        return expand_leading(y, lead)
