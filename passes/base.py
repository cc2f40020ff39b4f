"""What every mxc pass shares: the Pass base class, pipeline parsing, running.

A pass is a frozen dataclass with a kebab-case `name` and typed option fields;
`pass-name{opt=v,other=1}` maps to fields (hyphens to underscores), and each
value is parsed and checked against its field's type when the pipeline is
parsed (as xDSL does): `bool`, `int`, `str`, `Literal[...]` (the error lists
the values), `FormatSpec` and `X | None` ("none" is None). Passes are
Python callables added to an upstream `PassManager` (`pm.add(p, name=...)`),
so they run inside MLIR's pass infrastructure, one at a time, which lets the
driver print or dump the IR between them.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import ClassVar, Literal

from torch_mlir import ir
from torch_mlir.passmanager import PassManager

from mxc.numerics.formats import NONE
from mxc.numerics.options import FormatSpec


class PassOptionError(ValueError):
    """A pipeline string names an unknown pass or option, or a bad value."""


@dataclasses.dataclass(frozen=True)
class Pass:
    """Base class: subclasses set `name`, declare options, implement `run(module)`."""

    name: ClassVar[str] = ""

    def run(self, module: ir.Operation) -> None:
        raise NotImplementedError

    def __call__(self, op: ir.Operation, pass_) -> None:
        """The PassManager entry point; `run_pass` wraps it to re-raise the pass's own exception."""
        self.run(op)

    @classmethod
    def option_fields(cls) -> list[dataclasses.Field]:
        """The fields set from pipeline text (not the weight store and other inputs given by the driver)."""
        return [f for f in dataclasses.fields(cls) if f.metadata.get("option", True)]

    def spec(self) -> str:
        """The pipeline text for this pass with its non-default options."""
        opts = [
            f"{f.name.replace('_', '-')}={_fmt(getattr(self, f.name))}"
            for f in self.option_fields()
            if getattr(self, f.name) != f.default
        ]
        return self.name + ("{" + " ".join(opts) + "}" if opts else "")

    @classmethod
    def from_options(cls, options: dict[str, str]) -> "Pass":
        fields = {f.name: f for f in cls.option_fields()}
        hints = typing.get_type_hints(cls)  # the annotations are strings (from __future__ import annotations)
        kwargs = {}
        for key, text in options.items():
            field = fields.get(key.replace("-", "_"))
            if field is None:
                valid = ", ".join(f.replace("_", "-") for f in fields) or "none"
                raise PassOptionError(f"pass '{cls.name}' has no option '{key}' (options: {valid})")
            kwargs[field.name] = _parse(text, hints[field.name], f"{cls.name}: option '{key}'")
        return cls(**kwargs)


def _fmt(v) -> str:
    if v is None:
        return NONE
    return str(v).lower() if isinstance(v, bool) else str(v)


def _parse(text: str, type_, where: str, optional: bool = False):
    """The value of option text for a field of type `type_`; PassOptionError names the option and the fix."""
    args = typing.get_args(type_)
    if typing.get_origin(type_) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return None if text == NONE else _parse(text, inner, where, optional=True)
    if typing.get_origin(type_) is Literal:
        for value in args:
            if _fmt(value) == text:
                return value
        valid = [*map(_fmt, args), *([NONE] if optional else [])]
        raise PassOptionError(f"{where} must be one of {', '.join(valid)}, got '{text}'")
    if type_ is bool:
        if text.lower() in ("1", "true", "on"):
            return True
        if text.lower() in ("0", "false", "off"):
            return False
        raise PassOptionError(f"{where} wants true/false, got '{text}'")
    if type_ is int:
        try:
            return int(text)
        except ValueError:
            raise PassOptionError(f"{where} wants an integer, got '{text}'") from None
    if type_ is FormatSpec:
        try:
            return FormatSpec.parse(text)
        except ValueError as e:
            raise PassOptionError(f"{where}: {e}") from None
    if type_ is str:
        return text
    raise TypeError(f"{where}: no parser for option type {type_}")


def _split(text: str, separators: str) -> list[str]:
    """`text` split at `separators` outside braces (a spec option holds braces: format=mxfp4{hadamard=32})."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            raise PassOptionError(f"cannot parse pipeline at: '{text[i:]}'")
        if depth == 0 and ch in separators:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise PassOptionError(f"cannot parse pipeline: unbalanced braces in '{text}'")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


_ITEM = re.compile(r"([\w-]+)(?:\{(.*)\})?$", re.DOTALL)


def parse_pipeline(text: str, registry: dict[str, type[Pass]]) -> list[Pass]:
    """'a,b{opt=v other=1}' -> pass instances (options separated by spaces or commas inside braces)."""
    passes = []
    for item in _split(text, ","):
        m = _ITEM.match(item)
        if not m:
            raise PassOptionError(f"cannot parse pipeline at: '{item}'")
        name, opts = m.group(1), m.group(2) or ""
        if name not in registry:
            raise PassOptionError(f"unknown pass '{name}' (passes: {', '.join(sorted(registry))})")
        options = {}
        for opt in _split(opts, " \t\n,"):
            key, eq, value = opt.partition("=")
            options[key] = value if eq else "true"
        passes.append(registry[name].from_options(options))
    return passes


def weights_field():
    """A pass field for the compilation's WeightStore: given by the driver, not an option (mxc-opt has none)."""
    return dataclasses.field(default=None, compare=False, repr=False, metadata={"option": False})


def run_pass(p: Pass, module: ir.Module) -> None:
    """Run one pass through MLIR's PassManager; re-raise the pass's own exception on failure."""
    raised: list[Exception] = []

    def call(op: ir.Operation, pass_) -> None:
        try:
            p(op, pass_)
        except Exception as e:  # MLIR sees a failed pass; the caller gets the exception itself
            raised.append(e)
            pass_.signal_pass_failure()

    pm = PassManager(context=module.context)
    pm.add(call, name=p.name, argument=p.name)
    try:
        pm.run(module.operation)
    except ir.MLIRError as e:
        if raised:
            raise raised[0] from None
        raise


# ---- small IR helpers shared by passes -------------------------------------------------


def walk_ops(module: ir.Operation, names: str | tuple[str, ...]) -> list:
    """All ops with one of `names` under `module`, in IR order, collected before any rewrite."""
    names = (names,) if isinstance(names, str) else names
    found = []

    def visit(op):
        if op.name in names:
            found.append(op.opview)
        return ir.WalkResult.ADVANCE

    module.walk(visit)
    return found


_NAME_LOC = re.compile(r'^loc\("([^"]*)"(?:\(|\)$)')


def layer_name(op) -> str:
    """The module path in an op's NameLoc, as the frontend wrote it ('' when none)."""
    m = _NAME_LOC.match(str(op.location))
    return m.group(1) if m else ""


_PURE_PREFIXES = ("mxq.", "torch_c.", "torch.constant.")
_PURE_OPS = ("torch.aten.t", "torch.aten.transpose.int", "arith.constant", "arith.extf", "tensor.collapse_shape")


def _is_pure(op) -> bool:
    return op.name.startswith(_PURE_PREFIXES) or op.name in _PURE_OPS


def erase_dead(op) -> None:
    """Erase `op` if none of its results is used, then its operands' producers that became dead.

    Only ops known to be free of side effects (mxq, torch_c casts, torch
    constants and transposes, `arith.extf`, `tensor.collapse_shape`) are erased:
    a dead chain left by folding a weight (a bf16/f16 weight's extension, a conv
    weight's flattening) would otherwise keep its original in model.irpa.
    """
    op = getattr(op, "operation", op)
    if isinstance(op, ir.Block) or not _is_pure(op) or any(len(list(r.uses)) for r in op.results):
        return
    producers = []
    for v in op.operands:
        owner = v.owner
        if not isinstance(owner, ir.Block) and all(owner.operation != p for p in producers):
            producers.append(owner.operation)
    op.erase()
    for p in producers:
        erase_dead(p)
