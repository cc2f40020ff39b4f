"""The discardable attributes that record a layer's kernels on `mxq.fused_matmul` (CUDA targets).

    mxq.kernels = [{arch = "sm_90a", bias = true, kind = "gemv", mt = 4 : i64,
                    name = "mxc_gemv_nvfp4_m4_bias", w_format = "nvfp4"}]   -- launch order
    mxq.path = "decode: weights in registers, f32 FMA (M <= 16)"
    mxq.launch_group = "lm.model.layers.0.self_attn.q_proj"   -- decode layers launched as one (below)
    mxq.buckets = [{m_max = 1 : i64, kernels = [...]}, {m_max = 16 : i64, kernels = [...]}]
                                                             -- a dynamic row count's smaller buckets (below)

`mxq.buckets`: a layer whose row count M is dynamic (a dynamic token dimension) runs, for each M, the kernels
of the first bucket with M <= m_max, and `mxq.kernels` for an M past them all; lower-mxq-to-cuda branches on
M at run time (scf.if). Each bucket's kernels are what the target chooses at its m_max.

`mxq.launch_group`: layers of one function that read the same activation at M = 1 with the same weight
format (q/k/v, gate/up) run as one `dec` launch over their weights concatenated along N; each names the
group's first layer.

One dictionary per kernel, the fields of its `mxc.kernels` class (`Kernel.to_dict`) plus its name
for the reader; `kernels_of` turns them back into Kernel objects.
"""

from __future__ import annotations

from torch_mlir import ir

KERNELS_ATTR = "mxq.kernels"
PATH_ATTR = "mxq.path"
LAUNCH_GROUP_ATTR = "mxq.launch_group"
BUCKETS_ATTR = "mxq.buckets"


def _attr(v) -> ir.Attribute:
    if isinstance(v, bool):
        return ir.BoolAttr.get(v)
    if isinstance(v, int):
        return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), v)
    return ir.StringAttr.get(str(v))


def _value(a: ir.Attribute):
    if isinstance(a, (ir.BoolAttr, ir.IntegerAttr, ir.StringAttr)):  # the bindings give the concrete class
        return a.value
    raise ValueError(f"unexpected attribute {a} in {KERNELS_ATTR}")


def kernels_attr(kernels) -> ir.ArrayAttr:
    """The `mxq.kernels` attribute of a layer's kernels (mxc.kernels.Kernel objects)."""
    return ir.ArrayAttr.get([ir.DictAttr.get({k: _attr(v) for k, v in kern.to_dict().items()}) for kern in kernels])


def buckets_attr(buckets) -> ir.ArrayAttr:
    """The `mxq.buckets` attribute of [(m_max, kernels)]."""
    return ir.ArrayAttr.get([ir.DictAttr.get({"m_max": _attr(m), "kernels": kernels_attr(ks)}) for m, ks in buckets])


def _dicts(array: ir.Attribute) -> list[dict]:
    out = []
    for d in ir.ArrayAttr(array):
        d = ir.DictAttr(d)
        out.append({d[i].name: _value(d[i].attr) for i in range(len(d))})
    return out


def kernel_dicts(op) -> list[dict] | None:
    """The `mxq.kernels` of an op as plain dictionaries, or None when it has none."""
    return _dicts(op.attributes[KERNELS_ATTR]) if KERNELS_ATTR in op.attributes else None


def buckets_of(op) -> list[tuple[int | None, list]] | None:
    """A dynamic layer's kernels by row count, [(m_max, Kernel objects)], the last `mxq.kernels` with m_max
    None (every larger M); None when the op has no `mxq.buckets` (ValueError when one is malformed)."""
    from mxc.kernels import Kernel

    if BUCKETS_ATTR not in op.attributes:
        return None
    out = []
    for b in ir.ArrayAttr(op.attributes[BUCKETS_ATTR]):
        b = ir.DictAttr(b)
        if "m_max" not in b or "kernels" not in b:
            raise ValueError(f"{BUCKETS_ATTR} entry {b} needs m_max and kernels")
        out.append((ir.IntegerAttr(b["m_max"]).value, [Kernel.from_dict(d) for d in _dicts(b["kernels"])]))
    return out + [(None, kernels_of(op))]


def kernels_of(op) -> list | None:
    """The `mxq.kernels` of an op as mxc.kernels.Kernel objects (ValueError when one is malformed)."""
    from mxc.kernels import Kernel

    dicts = kernel_dicts(op)
    return None if dicts is None else [Kernel.from_dict(d) for d in dicts]
