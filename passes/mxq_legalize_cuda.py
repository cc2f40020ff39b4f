"""mxq-legalize-cuda: choose each fused layer's kernels for a CUDA target.

The target (`mxc.targets`, option `target`: cuda-sm90 for Hopper, cuda-sm100 for Blackwell) picks
the kernels of every `mxq.fused_matmul` from its shape and formats; they are recorded on the op as
structured data, one dictionary per kernel in launch order (`mxq.kernels = [{kind = "gemv",
name = "mxc_gemv_nvfp4_m4_bias", w_format = "nvfp4", mt = 4, bias = true, arch = "sm_90a"}]`), with
the layer's path in words (`mxq.path`), so the manifest records which kernel each layer got and
lower-mxq-to-cuda reads them back without choosing again. Where the target has no kernel for a
layer's activation format (no block-scaled tensor-core kind for the pair, or quantizer options its
kernels do not implement), the layer keeps its quantized weights and its activations stay in high
precision, with a warning that names the layers and the reason. Quantize / dequantize pairs left on
activation x activation matmuls are removed the same way (those matmuls run in float32 through
IREE's codegen).

A layer with a dynamic row count M (a dynamic token dimension, model.py's get_dynamic_shapes()) gets kernels
by buckets of M (`mxq.buckets`, the target's `buckets`): at each row count where the target's choice changes
(cuda-sm90: dec's 1, 8 and 16 rows, rdec's 16-256 and buckets of 2, 4 and 8 of its 256-row tiles (its K
split changes with M); cuda-sm100: gemv's 1, 4, 16) up to the largest M (option `max-rows`, which the compile driver takes from torch.export's ranges), the
kernels chosen there; lower-mxq-to-cuda branches on M at run time. Every kernel guards its rows, so a bucket's
kernels are correct for any M below its top.

Decode launches are grouped (option `group`, on by default): layers of a function that read the same
activation at M = 1 (the decode step's q/k/v and gate/up projections) with the same weight format and the
single kernel `dec` or `dec1b` each get `mxq.launch_group` = the group's first layer (and the kernel they
share, without a bias), and lower-mxq-to-cuda runs them as one launch over their weights concatenated along N
(each layer's NV tensor scale, bias and epilogue applied to its columns after): on the H200 a 2048-wide
projection's `dec` takes 3-4 us, most of it the launch and the ramp, whatever its N.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

from torch_mlir import ir

from mxc.dialects.mxq import format_attr
from mxc.dialects.mxq_kernels import (BUCKETS_ATTR, KERNELS_ATTR, LAUNCH_GROUP_ATTR, PATH_ATTR, buckets_attr,
                                      kernels_attr, kernels_of)
from mxc.errors import MxcError, MxcWarning
from mxc.kernels.launches import layer_path
from mxc.numerics.formats import NONE
from mxc.targets import GemmLayer, get_target
from mxc.targets.cuda import CudaTarget

from ._linalg import shape_of
from .base import Pass, walk_ops

CUDA_TARGETS = ("cuda-sm90", "cuda-sm100")


def _s(op, key: str) -> str:
    return ir.StringAttr(op.attributes[key]).value


def cuda_target(name: str) -> CudaTarget:
    """The CUDA target `name` (MxcError naming the valid ones otherwise)."""
    target = get_target(name) if name in CUDA_TARGETS else None
    if not isinstance(target, CudaTarget):
        raise MxcError(f"unknown CUDA target '{name}' (valid: {', '.join(CUDA_TARGETS)})")
    return target


def input_source(x: ir.Value) -> ir.Value:
    """The value a layer's input is a builtin-tensor view of (the importer casts a torch tensor once per use)."""
    owner = x.owner
    if not isinstance(owner, ir.Block) and owner.operation.name == "torch_c.to_builtin_tensor":
        return owner.operation.operands[0]
    return x


def groupable(op, ks: list) -> bool:
    """Whether a layer with kernels `ks` may share a launch: weight-only, M = 1 (static), the single kernel `dec`
    (mt = 1) or `dec1b`."""
    return (len(ks) == 1 and (ks[0].kind == "dec1b" or ks[0].kind == "dec" and ks[0].mt == 1)
            and format_attr(op, "act_format") is None
            and ir.RankedTensorType(op.x.type).has_static_shape)


def gemm_layer(op) -> GemmLayer:
    """What kernel selection sees of a `mxq.fused_matmul`; m = 0 for a dynamic row count (a dynamic token
    dimension)."""
    x = ir.RankedTensorType(op.x.type)
    m = math.prod(x.shape[:-1]) if x.has_static_shape else 0
    return GemmLayer(_s(op, "layer"), m, format_attr(op, "w_format", allow_none=False),
                     format_attr(op, "act_format"), op.bias is not None, shape_of(op.w)[0], x.shape[-1])


def bucket_path(buckets: list) -> str:
    """A dynamic layer's path in words: each bucket's row range and path."""
    ranges: list = []  # [lo, top, path], buckets of one path together
    for top, ks in buckets:
        path = layer_path(ks)
        if ranges and ranges[-1][2] == path:
            ranges[-1][1] = top
        else:
            ranges.append([ranges[-1][1] + 1 if ranges else 1, top, path])
    rows = [f"M {lo}-{top}" if top is not None and top > lo else f"M = {lo}" if top == lo else f"M >= {lo}"
            for lo, top, _ in ranges]
    return (f"dynamic M, {len(buckets)} kernel choices by M at run time; "
            + "; ".join(f"{r}: {path}" for r, (_, _, path) in zip(rows, ranges)))


@dataclasses.dataclass(frozen=True)
class MxqLegalizeCuda(Pass):
    """Pick each fused layer's kernels for `target`; keep activations high precision where none exists."""

    name = "mxq-legalize-cuda"
    target: str = "cuda-sm90"
    group: bool = True  # one launch for the M = 1 layers that read the same input (mxq.launch_group)
    # The largest row count of a layer with a dynamic one (0: unknown; the compile driver gives torch.export's bound).
    max_rows: int = 0

    def run(self, module: ir.Operation) -> None:
        target = cuda_target(self.target)
        kept: dict[str, list[str]] = {}  # reason -> layers whose activations stay high precision

        def select(layer: GemmLayer):  # [(m_max, kernels)]: one bucket for a static M
            if layer.m:
                ks = target.select(layer)
                return ks if isinstance(ks, str) else [(layer.m, ks)]
            return target.buckets(layer, self.max_rows or None)

        for op in walk_ops(module, "mxq.fused_matmul"):
            layer = gemm_layer(op)
            buckets = select(layer)
            if isinstance(buckets, str) and layer.a_format is not None:
                reason = buckets
                op.operation.attributes["act_format"] = ir.StringAttr.get(NONE)
                buckets = select(dataclasses.replace(layer, acts=None))
                decision = _s(op, "mxq.decision") + f"; activations high precision on {self.target}: {reason}"
                op.operation.attributes["mxq.decision"] = ir.StringAttr.get(decision)
                kept.setdefault(reason, []).append(layer.layer)
            if isinstance(buckets, str):
                raise MxcError(f"layer {layer.layer}: {buckets}; choose another format for it (--policy) or "
                               "--target cpu")
            op.operation.attributes[KERNELS_ATTR] = kernels_attr(buckets[-1][1])
            if layer.m:
                op.operation.attributes[PATH_ATTR] = ir.StringAttr.get(layer_path(buckets[0][1]))
                if BUCKETS_ATTR in op.attributes:  # (from an earlier run on a dynamic layer)
                    del op.operation.attributes[BUCKETS_ATTR]
            else:
                op.operation.attributes[PATH_ATTR] = ir.StringAttr.get(bucket_path(buckets))
                op.operation.attributes[BUCKETS_ATTR] = buckets_attr(buckets[:-1])
        for reason, layers in kept.items():
            shown = ", ".join(layers[:4]) + (f" and {len(layers) - 4} more" if len(layers) > 4 else "")
            warnings.warn(f"{len(layers)} layer(s) ({shown}): {reason}; their activations stay in high precision "
                          f"and their weights stay quantized", MxcWarning, stacklevel=2)
        self._drop_activation_qdq(module)
        self._group_launches(module)

    def _group_launches(self, module: ir.Operation) -> None:
        """mxq.launch_group on the weight-only M = 1 layers (`dec` with mt = 1, or `dec1b`) that share their
        input and format (a group chosen before, by an earlier run of the pass, is chosen again)."""
        groups: list[tuple[ir.Value, str, list]] = []
        for op in walk_ops(module, "mxq.fused_matmul"):
            if LAUNCH_GROUP_ATTR in op.attributes:
                del op.operation.attributes[LAUNCH_GROUP_ATTR]
            if not self.group or not groupable(op, kernels_of(op)):
                continue
            w, x = _s(op, "w_format"), input_source(op.x)
            group = next((g for g in groups if g[0] == x and g[1] == w), None)
            if group is None:
                groups.append((x, w, [op]))
            else:
                group[2].append(op)
        for _, _, ops in groups:
            if len(ops) < 2:
                continue
            first = _s(ops[0], "layer")
            for op in ops:  # the launched kernel has no bias: each layer's is added to its columns after
                op.operation.attributes[LAUNCH_GROUP_ATTR] = ir.StringAttr.get(first)
                op.operation.attributes[KERNELS_ATTR] = kernels_attr([dataclasses.replace(kernels_of(op)[0], bias=False)])
                path = _s(op, PATH_ATTR) + f"; one launch for the {len(ops)} layers reading this input"
                op.operation.attributes[PATH_ATTR] = ir.StringAttr.get(path)

    def _drop_activation_qdq(self, module: ir.Operation) -> None:
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
