"""The MLIR context mxc works in: torch-mlir's upstream bindings, torch + mxq loaded."""

from __future__ import annotations

from torch_mlir import ir
from torch_mlir.dialects import torch as torch_d

from mxc.dialects import mxq


def make_context() -> ir.Context:
    """A context with the torch, torch_c and mxq dialects.

    Unregistered dialects are allowed so that the IREE hand-off can spell
    `util.global` / `flow.tensor.bitcast` in generic form; IREE parses them.
    """
    ctx = ir.Context()
    torch_d.register_dialect(ctx)
    ctx.allow_unregistered_dialects = True
    mxq.load(ctx)
    return ctx
