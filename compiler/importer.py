"""The torch-mlir fx import: named locations, weights kept out of the IR as `mxq.param`."""

from __future__ import annotations

import torch
from torch_mlir import ir
from torch_mlir.extras.fx_importer import ContextCache, FxImporter, FxImporterHooks

from mxc.dialects.mxq import ParamOp

from mxc.errors import ExportError
from mxc.layers import ENTRY_SEP, module_path
from mxc.dialects.torch_c import builtin_type_of, from_builtin
from mxc.weights import WeightStore

INLINE_LITERAL_BYTES = 64  # smaller anonymous constants stay inline in the IR


class _NamedLocationCache(ContextCache):
    """Locations wrapped in a NameLoc carrying the node's module path (after `entry`: and the entry point's
    name when a module has several, see mxc.layers.layer_of)."""

    __slots__ = ("entry",)

    def get_node_location(self, node):
        loc = super().get_node_location(node) or ir.Location.unknown(self._c)
        path = module_path(node)
        if path and self.entry:
            path = f"{self.entry}{ENTRY_SEP}{path}"
        return ir.Location.name(path, childLoc=loc, context=self._c) if path else loc


class _Hooks(FxImporterHooks):
    """Keeps weights out of the IR: each literal becomes `mxq.param` + from_builtin_tensor."""

    def __init__(self, weights: WeightStore, names: dict[int, str]):
        self.weights = weights
        self.names = names  # id(tensor) -> state_dict / constants name
        self.stored: dict[int, str] = {}  # id(tensor) -> its name in the store: a shared parameter is stored once

    def resolve_literal(self, gni, literal, info):
        if not isinstance(literal, torch.Tensor):
            return None
        if id(literal) not in self.names and literal.numel() * literal.element_size() <= INLINE_LITERAL_BYTES:
            return None
        named = self.names.get(id(literal))
        name = self.stored.get(id(literal)) or self.weights.add(named or "constant", literal,
                                                                {"op": "param", "name": named} if named else None)
        if id(literal) in self.names:  # named tensors live as long as the program; anonymous ids may be reused
            self.stored[id(literal)] = name
        vtensor = gni._cc.tensor_to_vtensor_type(literal)
        builtin = builtin_type_of(vtensor)
        param = ParamOp(name=ir.StringAttr.get(name), result=builtin).result
        return from_builtin(param, vtensor)


def import_program(prog: torch.export.ExportedProgram | dict[str, torch.export.ExportedProgram], ctx: ir.Context,
                   weights: WeightStore) -> ir.Module:
    """ExportedProgram -> torch-dialect module (function `main`) with named locations and weights as mxq.param.

    Several programs ({function name: program}, e.g. --generate's prefill and decode) become one function
    each in one module; a parameter they share (the same tensor) is one `mxq.param`, stored once, and
    their layers are named `<function>:<module path>`."""
    progs = prog if isinstance(prog, dict) else {"main": prog}
    names: dict[int, str] = {}  # a tied tensor keeps its first name (emb.weight, not lm_head.weight)
    for p in progs.values():
        for n, t in [*p.state_dict.items(), *p.constants.items()]:
            names.setdefault(id(t), n)
    importer = FxImporter(context=ctx, hooks=_Hooks(weights, names))
    importer._cc = _NamedLocationCache(ctx, py_attr_tracker=importer._py_attr_tracker)
    for func, p in progs.items():
        importer._cc.entry = func if len(progs) > 1 else ""
        try:
            importer.import_frozen_program(p, func_name=func)
        except Exception as e:
            raise ExportError(f"torch-mlir could not import the exported graph{'' if len(progs) == 1 else ' ' + func}: "
                              f"{type(e).__name__}: {e}") from e
    return importer.module
