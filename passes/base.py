"""What every mxc pass shares: the Pass base class, pipeline parsing, running.

A pass is a frozen dataclass with a kebab-case `name` and typed option fields;
`pass-name{opt=v,other=1}` maps to fields (hyphens to underscores). Passes are
Python callables added to an upstream `PassManager` (`pm.add(p, name=...)`),
so they run inside MLIR's pass infrastructure, one at a time, which lets the
driver print or dump the IR between them.
"""

from __future__ import annotations

import dataclasses
import re
from typing import ClassVar

from torch_mlir import ir
from torch_mlir.passmanager import PassManager


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
        kwargs = {}
        for key, text in options.items():
            field = fields.get(key.replace("-", "_"))
            if field is None:
                valid = ", ".join(f.replace("_", "-") for f in fields) or "none"
                raise PassOptionError(f"pass '{cls.name}' has no option '{key}' (options: {valid})")
            kwargs[field.name] = _parse(text, field.type, cls.name, key)
        return cls(**kwargs)


def _fmt(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _parse(text: str, type_: str, pass_name: str, key: str):
    if type_ in ("bool", bool):
        if text.lower() in ("1", "true", "on"):
            return True
        if text.lower() in ("0", "false", "off"):
            return False
        raise PassOptionError(f"{pass_name}: option '{key}' wants true/false, got '{text}'")
    if type_ in ("int", int):
        try:
            return int(text)
        except ValueError:
            raise PassOptionError(f"{pass_name}: option '{key}' wants an integer, got '{text}'") from None
    return text


_ITEM = re.compile(r"\s*([\w-]+)\s*(?:\{([^}]*)\})?\s*(?:,|$)")


def parse_pipeline(text: str, registry: dict[str, type[Pass]]) -> list[Pass]:
    """'a,b{opt=v other=1}' -> pass instances (options separated by spaces or commas inside braces)."""
    passes, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            raise PassOptionError(f"cannot parse pipeline at: '{text[pos:]}'")
        name, opts = m.group(1), m.group(2)
        if name not in registry:
            raise PassOptionError(f"unknown pass '{name}' (passes: {', '.join(sorted(registry))})")
        options = {}
        for item in re.split(r"[\s,]+", opts.strip()) if opts and opts.strip() else []:
            key, _, value = item.partition("=")
            options[key] = value if _ else "true"
        passes.append(registry[name].from_options(options))
        pos = m.end()
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
_PURE_OPS = ("torch.aten.t", "torch.aten.transpose.int", "arith.constant")


def _is_pure(op) -> bool:
    return op.name.startswith(_PURE_PREFIXES) or op.name in _PURE_OPS


def erase_dead(op) -> None:
    """Erase `op` if none of its results is used, then its operands' producers that became dead.

    Only ops known to be free of side effects (mxq, torch_c casts, torch
    constants and transposes) are erased.
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
