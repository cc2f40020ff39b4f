"""Find the constant weight behind an SSA value, through casts and transposes.

A weight is an `mxq.param` (data in the compilation's WeightStore, which the
driver gives the passes that need it), or an inline
`torch.vtensor.literal` / `arith.constant` with dense data (lit tests), seen
through torch_c casts, `aten.transpose.int` / `aten.t`, `tensor.collapse_shape` and
`arith.extf` (a bf16/f16 weight extended to f32 by convert-torch-to-mxq; exact).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch_mlir import ir

from mxc.weights import WeightStore

_CASTS = ("torch_c.to_builtin_tensor", "torch_c.from_builtin_tensor")


@dataclass(frozen=True)
class WeightRef:
    """A constant weight: a description for messages and a loader for its data."""

    describe: str
    load: Callable[[], torch.Tensor]
    recipe: dict | None = None  # how to compute it from model.py's parameters (WeightStore.recipes)


def _dense(attr: ir.Attribute) -> torch.Tensor:
    try:
        return torch.from_numpy(np.array(ir.DenseElementsAttr(attr)).copy())
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot read weight data from {str(attr)[:80]}: use dense<...> or mxq.param") from e


def _param(name: str, store: WeightStore | None) -> torch.Tensor:
    if store is None or name not in store:
        raise ValueError(f"weight '{name}' is not in the weight store (mxc-opt has none: use inline dense constants)")
    return store[name]


def _op(op: str, inner: WeightRef, **args) -> dict | None:
    return None if inner.recipe is None else {"op": op, "of": inner.recipe, **args}


def constant_weight(value: ir.Value, store: WeightStore | None = None) -> WeightRef | None:
    """The WeightRef behind `value`, or None when it is computed at run time."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    name = owner.operation.name
    if name in _CASTS:
        return constant_weight(owner.operands[0], store)
    if name == "mxq.param":
        pname = ir.StringAttr(owner.attributes["name"]).value
        return WeightRef(pname, lambda: _param(pname, store), store.recipes.get(pname) if store is not None else None)
    if name in ("torch.vtensor.literal", "arith.constant"):
        attr = owner.attributes["value"]
        return WeightRef("inline constant", lambda: _dense(attr))
    if name == "arith.extf":  # a bf16/f16 weight extended to f32 (exact) at the mxq boundary
        inner = constant_weight(owner.operands[0], store)
        return inner and WeightRef(inner.describe, lambda: inner.load().to(torch.float32), _op("f32", inner))
    if name == "tensor.collapse_shape":  # a conv weight flattened to [C_out, C_in*kh*kw]
        inner = constant_weight(owner.operands[0], store)
        shape = list(ir.RankedTensorType(value.type).shape)
        return inner and WeightRef(inner.describe, lambda: inner.load().reshape(shape),
                                   _op("reshape", inner, shape=shape))
    if name == "torch.aten.t":
        inner = constant_weight(owner.operands[0], store)
        return inner and WeightRef(inner.describe, lambda: inner.load().t(), _op("transpose", inner, dims=[0, 1]))
    if name == "torch.aten.transpose.int":
        inner = constant_weight(owner.operands[0], store)
        dims = [o.owner.attributes["value"].value for o in owner.operands[1:]]
        return inner and WeightRef(inner.describe, lambda: inner.load().transpose(*dims),
                                   _op("transpose", inner, dims=dims))
    return None


def matmul_of(q):
    """The mxq.matmul a quantize feeds through its dequantize (None: it feeds none)."""
    for use in q.results[0].uses:
        for use2 in use.owner.results[0].uses:
            if use2.owner.operation.name == "mxq.matmul":
                return use2.owner
    return None
