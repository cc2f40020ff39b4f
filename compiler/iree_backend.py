"""Hand-off to IREE: mxq.param -> util.global parameters, then iree-compile in-process.

Each `mxq.param` becomes a module-level `util.global` whose initial value is
`#stream.parameter.named<"model"::"<name>">`, loaded where the param was. 4-bit
(f4E2M1FN, i4) and 8-bit float weights are stored as i8 bytes (4-bit codes two
per byte, low nibble first, IREE's own packing) and `flow.tensor.bitcast` back
to their MLIR type, as IREE's own MX tests do. (FP6 weights arrive here as i8
params of their packed bytes: lower-mxq-to-linalg unpacks them.) The util/flow ops are built in
generic form (those dialects are not in torch-mlir's context); IREE parses them.
"""

from __future__ import annotations

import re

from torch_mlir import ir

from mxc.passes.base import walk_ops
from mxc.targets import get_target

from mxc.weights import PARAMETER_SCOPE

def _storage_type(t: ir.RankedTensorType) -> ir.RankedTensorType:
    """The byte layout a parameter of logical type `t` is stored with."""
    elem = str(t.element_type)
    width = 4 if elem in ("f4E2M1FN", "i4") else 8 if elem.startswith("f8") else None
    if width is None:
        return t
    shape = list(t.shape)
    if width == 4:
        shape[-1] //= 2
    return ir.RankedTensorType.get(shape, ir.IntegerType.get_signless(8))


def _symbol(name: str) -> str:
    return "__param_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def params_to_globals(module: ir.Module) -> list[str]:
    """Rewrite every mxq.param into util.global + util.global.load; return the parameter names used."""
    params = [op.operation for op in walk_ops(module.operation, "mxq.param")]
    used: dict[str, ir.RankedTensorType] = {}
    for p in params:
        name = ir.StringAttr(p.attributes["name"]).value
        logical = ir.RankedTensorType(p.results[0].type)
        storage = _storage_type(logical)
        if name not in used:
            used[name] = storage
            with ir.InsertionPoint.at_block_begin(module.body), p.location:
                ir.Operation.create(
                    "util.global",
                    attributes={
                        "sym_name": ir.StringAttr.get(_symbol(name)),
                        "sym_visibility": ir.StringAttr.get("private"),
                        "type": ir.TypeAttr.get(storage),
                        "initial_value": ir.Attribute.parse(
                            f'#stream.parameter.named<"{PARAMETER_SCOPE}"::"{name}"> : {storage}'
                        ),
                    },
                )
        with ir.InsertionPoint(p), p.location:
            v = ir.Operation.create(
                "util.global.load",
                results=[storage],
                attributes={"global": ir.FlatSymbolRefAttr.get(_symbol(name))},
            ).result
            if storage != logical:
                v = ir.Operation.create(
                    "flow.tensor.bitcast",
                    results=[logical],
                    operands=[v],
                    attributes={"operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 0, 0])},
                ).result
        p.results[0].replace_all_uses_with(v)
        p.erase()
    return list(used)


_DIAGNOSTIC = re.compile(r"^<stdin>:(\d+):\d+: error: (.*)$", re.M)
_ILLEGAL = re.compile(r"failed to legalize operation '([\w.]+)'")
_LOC_DEF = re.compile(r'^(#loc\d*) = loc\((.*)\)$', re.M)


def failing_op(diagnostic: str, text: str, located: str) -> tuple[str, str, str] | None:
    """(op name, module path, IREE's one-line message) of the op IREE's first error names, or None.

    IREE reads `text` (no locations, to keep its input small) and names a line of it; the same
    op's line in `located` (the module printed with debug info) ends in `loc(#locN)`, whose
    chain of aliases holds the NameLoc the importer gave it (the module path, e.g. `bag`)."""
    m = _DIAGNOSTIC.search(diagnostic)
    lines = text.splitlines()
    if not m or not 0 < int(m.group(1)) <= len(lines):
        return None
    message, line = m.group(2), lines[int(m.group(1)) - 1].rstrip()
    illegal = _ILLEGAL.search(message)
    op = illegal.group(1) if illegal else line.split("=", 1)[-1].split()[0]
    at = next((x for x in located.splitlines() if x.rstrip().startswith(line) and "loc(" in x[len(line):]), None)
    alias = re.search(r"loc\((#loc\d*)\)\s*$", at or "")
    return op, _module_path(alias.group(1), dict(_LOC_DEF.findall(located))) if alias else "", message


def _module_path(alias: str, defs: dict[str, str]) -> str:
    """The first NameLoc name on the chain of location aliases from `alias` ("" when none)."""
    for _ in range(16):  # a chain is a few aliases long; guard against a cycle
        body = defs.get(alias, "")
        name = re.match(r'^"([^"]+)"\(', body)
        if name and not name.group(1).startswith("/"):
            return name.group(1)
        inner = re.search(r"(#loc\d*)", body)
        if not inner:
            return ""
        alias = inner.group(1)
    return ""


def compile_to_vmfb(module_text: str, target: str = "cpu") -> bytes:
    """iree-compile the hand-off module with the target's flags."""
    import iree.compiler as ic

    return ic.compile_str(module_text, input_type="torch", extra_args=list(get_target(target).iree_flags))
