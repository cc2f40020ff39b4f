"""Frontend: model.py -> torch.export -> torch dialect (torch-mlir fx importer).

* Every parameter and buffer is kept out of the IR: the importer's
  `resolve_literal` hook stores it in the WeightStore and emits `mxq.param`.
* Every op's location is a NameLoc with its module path (e.g.
  `layers.3.mlp.down_proj`) taken from the node's `nn_module_stack`, so passes
  can name layers in policies, reports and errors.
* Non-persistent buffers (transformers' rotary `inv_freq`) are made persistent
  before export; the importer cannot map them otherwise.
* For the CPU target, an sdpa whose boolean mask is computed from constants
  and equals is_causal's mask gets `is_causal=True` instead (`causal_masks`:
  the mask is evaluated, so the rewrite is exact), which the CPU lowering runs
  as fused causal kernels; transformers materializes that mask while tracing.

Loading model.py and exporting need only torch (`mxc run --compare` uses them on
machines without the compiler); the torch-mlir import lives in `importer.py`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from mxc.errors import ExportError, ModelFileError


@dataclass
class ModelSpec:
    """What model.py provides."""

    path: Path
    model: torch.nn.Module
    example_inputs: tuple
    calibration_inputs: Any = None
    loss: Callable | None = None  # get_loss(output, *inputs) -> scalar tensor, optional (--auto's scores)
    eval_inputs: Callable | None = None  # get_eval_inputs() -> held-out input tuples, optional (auto_check)
    tokenizer: Callable | None = None  # get_tokenizer() -> a transformers tokenizer, optional (--generate)
    imported: Any = None  # --checkpoint: mxc.runtime.interchange.Imported, the checkpoint applied to `model`
    dynamic_shapes: Any = None  # get_dynamic_shapes(): torch.export's dynamic_shapes for the example inputs


def _call(path: Path, module, fn: str):
    try:
        return getattr(module, fn)()
    except Exception as e:
        raise ModelFileError(f"{path}: {fn}() raised {type(e).__name__}: {e}") from e


def load_model_file(path: str | Path, checkpoint: str | Path = "") -> ModelSpec:
    """Import model.py and call its get_model / get_example_inputs functions; with `checkpoint` (a
    compressed-tensors directory, `mxc compile --checkpoint`) its tensors are applied to the model."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(f"mxc_user_model_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        tb = traceback.format_exception(e)[-1].strip()
        raise ModelFileError(f"{path}: importing the file failed: {tb}") from e
    finally:
        sys.path.pop(0)
    for fn in ("get_model", "get_example_inputs"):
        if not callable(getattr(module, fn, None)):
            raise ModelFileError(
                f"{path}: missing function {fn}(); model.py must define get_model() -> torch.nn.Module "
                "and get_example_inputs() -> tuple"
            )
    model = _call(path, module, "get_model")
    if not isinstance(model, torch.nn.Module):
        raise ModelFileError(f"{path}: get_model() returned {type(model).__name__}, not a torch.nn.Module")
    inputs = _call(path, module, "get_example_inputs")
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    if not isinstance(inputs, tuple) or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise ModelFileError(f"{path}: get_example_inputs() must return a tuple of tensors")
    calib = _call(path, module, "get_calibration_inputs") if hasattr(module, "get_calibration_inputs") else None
    loss = getattr(module, "get_loss", None)
    if loss is not None and not callable(loss):
        raise ModelFileError(f"{path}: get_loss must be a function get_loss(output, *inputs) -> scalar tensor")
    tokenizer = getattr(module, "get_tokenizer", None)
    dynamic = _call(path, module, "get_dynamic_shapes") if hasattr(module, "get_dynamic_shapes") else None
    imported = None
    if checkpoint:
        from mxc.runtime.interchange import import_compressed_tensors

        imported = import_compressed_tensors(model, checkpoint)
    return ModelSpec(path, model.eval(), inputs, calib, loss, getattr(module, "get_eval_inputs", None),
                     tokenizer if callable(tokenizer) else None, imported, dynamic)


def entry_points(spec: ModelSpec, opts) -> dict[str, tuple[torch.nn.Module, tuple]]:
    """{function name: (module, example inputs)} of a compile with `opts` (mxc.options.Options): `main`
    (model.py's model), or with --generate the causal LM's `prefill` and `decode` (mxc.generation)."""
    if not opts.generate:
        return {"main": (spec.model, spec.example_inputs)}
    from mxc import generation

    if spec.tokenizer is None:
        raise generation.GenerateError(f"{spec.path}: --generate needs get_tokenizer() in model.py (returning the "
                                       "model's transformers tokenizer, which the artifact keeps for mxc generate)")
    # the prefill takes the prompt at its length (1..S-1) on every target (the CUDA targets choose their kernels
    # by its row count at run time); artifacts of earlier versions padded it to S, which the runtime still runs
    return generation.programs(generation.causal_lm(spec.model, str(spec.path)), opts.max_seq_len, opts.kv_cache,
                               dynamic_prefill=True)


def make_buffers_persistent(model: torch.nn.Module) -> None:
    """Re-register non-persistent buffers as persistent (same tensors, same values)."""
    for module in model.modules():
        for name in list(getattr(module, "_non_persistent_buffers_set", ())):
            module._non_persistent_buffers_set.discard(name)


_SDPA = torch.ops.aten.scaled_dot_product_attention.default


def causal_masks(prog: torch.export.ExportedProgram) -> int:
    """Give `is_causal=True` (and no mask) to every sdpa whose boolean mask is computed from constants alone
    and equals torch's is_causal mask (key j <= query i, top-left): transformers materializes that mask
    while tracing (arange comparisons, a packed-sequence check on the position ids) where eager runs
    `is_causal`. The mask is evaluated here, so the rewrite holds exactly; masks that read an input, a
    parameter or a buffer are left alone. Returns how many sdpa ops changed."""
    graph = prog.graph_module.graph
    changed = 0
    for node in list(graph.nodes):
        if node.target is not _SDPA or len(node.args) < 4 or not isinstance(node.args[3], torch.fx.Node):
            continue
        if node.args[5:6] not in ((), (False,)) or node.kwargs.get("is_causal", False):
            continue
        mask = _constant_value(node.args[3])
        if mask is None or mask.dtype != torch.bool or mask.dim() < 2:
            continue
        l_, s_ = mask.shape[-2:]
        if not bool((mask == torch.ones(l_, s_, dtype=torch.bool).tril()).all()):
            continue
        args = list(node.args) + [0.0, False][len(node.args) - 4:]  # dropout_p, is_causal present
        args[3], args[5] = None, True
        node.args = tuple(args)
        changed += 1
    if changed:
        graph.eliminate_dead_code()
        prog.graph_module.recompile()
    return changed


def _constant_value(node: torch.fx.Node) -> torch.Tensor | None:
    """The value of `node` when every node it depends on is an op on constants (no placeholder), else None."""
    needed, stack = set(), [node]
    while stack:  # the ancestors
        n = stack.pop()
        if n in needed:
            continue
        if n.op != "call_function":
            return None
        needed.add(n)
        stack.extend(n.all_input_nodes)
    values: dict = {}
    try:
        with torch.no_grad():
            for n in node.graph.nodes:  # graph order is topological
                if n in needed:
                    values[n] = n.target(*torch.fx.node.map_arg(n.args, values.__getitem__),
                                         **torch.fx.node.map_arg(n.kwargs, values.__getitem__))
    except Exception:  # an op that cannot run here: leave the mask as it is
        return None
    v = values[node]
    return v if isinstance(v, torch.Tensor) else None


def export(model: torch.nn.Module, inputs: tuple, causal: bool = False,
           dynamic_shapes=None) -> torch.export.ExportedProgram:
    """torch.export the model; failures name the module, keep the exporter's message once and say
    what to change (see `export_hint`). `causal`: `causal_masks` on the result. `dynamic_shapes`:
    model.py's get_dynamic_shapes(), given to torch.export as it is."""
    make_buffers_persistent(model)
    try:
        with torch.no_grad(), _quiet_exporter():
            prog = torch.export.export(model, inputs, dynamic_shapes=dynamic_shapes, strict=False)
            prog = prog.run_decompositions(decomposition_table())
            if causal:
                causal_masks(prog)
            return prog
    except Exception as e:
        msg = str(e).strip().splitlines()
        where = _failing_module(model, e)
        raise ExportError(
            f"torch.export failed for {type(model).__name__}{where}: {type(e).__name__}: "
            + "\n".join(msg[:12])
            + "\n" + export_hint(e, inputs)
        ) from e


def dynamic_dims(prog: torch.export.ExportedProgram) -> list[list[dict]]:
    """Per user input of `prog`, its dynamic sizes as [{"dim": d, "min": lo, "max": hi}] (hi None when
    unbounded), from torch.export's range constraints (what model.py's get_dynamic_shapes() declared,
    narrowed by what the graph needs)."""
    users = {s.arg.name for s in prog.graph_signature.input_specs if s.kind.name == "USER_INPUT"}
    out = []
    for node in prog.graph.nodes:
        if node.op != "placeholder" or node.name not in users:
            continue
        dims = []
        for d, size in enumerate(getattr(node.meta.get("val"), "shape", ())):
            if isinstance(size, torch.SymInt):
                r = prog.range_constraints.get(size.node.expr)
                lo, hi = (r.lower, r.upper) if r is not None else (0, None)
                dims.append({"dim": d, "min": _bound(lo) or 0, "max": _bound(hi)})
        out.append(dims)
    return out


_ROW_OPS = ("aten.linear", "aten.mm", "aten.addmm", "aten.matmul", "aten.bmm")


def _largest(progs, ops: tuple[str, ...], size) -> int | None:
    """The largest value of `size(shape)` (a product of sizes) over the call_function nodes of `ops` in the
    torch.export programs `progs` whose activation (first tensor operand; addmm's second) has a dynamic shape,
    bounded by their range constraints; None when there is none or a bound is infinite."""
    from torch.utils._sympy.value_ranges import bound_sympy

    best = None
    for prog in progs:
        for node in prog.graph.nodes:
            if node.op != "call_function" or not any(str(node.target).startswith(o) for o in ops):
                continue
            args = [a for a in node.args if isinstance(a, torch.fx.Node)]
            x = args[1] if "addmm" in str(node.target) and len(args) > 1 else args[0] if args else None
            shape = getattr(x.meta.get("val") if x is not None else None, "shape", ())
            if not shape or all(isinstance(d, int) for d in shape):
                continue
            v = size(shape)
            expr = v.node.expr if isinstance(v, torch.SymInt) else v
            try:
                hi = _bound(bound_sympy(expr, prog.range_constraints).upper)
            except Exception:  # an expression sympy cannot bound: as unbounded
                hi = None
            if hi is None:
                return None
            best = max(best or 0, hi)
    return best


def max_rows(progs) -> int | None:
    """The largest row count (the product of the leading sizes of the activation) a linear or matmul of the
    programs `progs` with a dynamic shape can see (None: none, or unbounded). The CUDA targets choose the
    kernels of their largest bucket of M there."""
    def rows(shape):
        out = 1
        for d in shape[:-1]:
            out = out * d
        return out

    return _largest(progs, _ROW_OPS, rows)


def max_queries(progs) -> int | None:
    """The largest query count (dim -2 of q) an sdpa of the programs `progs` with a dynamic shape can see (None:
    none, or unbounded): pad-attention-queries pads a dynamic query count up to a static key count this large."""
    return _largest(progs, ("aten.scaled_dot_product_attention",), lambda shape: shape[-2])


def _bound(v) -> int | None:
    """A range bound as an int; None for an infinite one (torch's int_oo)."""
    try:
        return int(v) if v is not None and bool(getattr(v, "is_finite", True)) else None
    except (TypeError, ValueError, OverflowError, AttributeError):
        return None


_SHAPE_ERRORS = ("shapes cannot be multiplied", "must have same reduction dim", "size mismatch",
                 "must match the size of tensor", "is invalid for input of size", "expected input",
                 "Expected input", "to have", "but got")


def export_hint(e: Exception, inputs: tuple) -> str:
    """What to change, from the export error's cause: a transformers Cache output, example inputs of
    the wrong shape, data-dependent control flow, or (otherwise) a pointer to the message above."""
    text = f"{type(e).__name__}: {e}"
    if "Cache" in text and ("not a known type" in text or "pytree" in text):
        return ("mxc: hint: the model returns a transformers Cache (DynamicCache), which torch.export cannot "
                "output: in get_model() set `model.config.use_cache = False` (or load it with use_cache=False), "
                "or wrap it in a module whose forward returns only the logits.")
    if "Constraints violated" in text and "specialized it to be a constant" in text:
        one = "constant (1)" in text
        return ("mxc: hint: a size get_dynamic_shapes() declares dynamic is fixed by the model or by the example "
                + ("inputs: torch.export specializes an example size of 1, so give that dimension an example size "
                   "of 2 or more (its range may still start at 1)." if one else
                   "inputs: declare only the sizes the model lets vary (tokens, batch), or drop them from "
                   "get_dynamic_shapes()."))
    if "data-dependent" in text or "DataDependent" in text or "GuardOnDataDependentSymNode" in text:
        return ("mxc: hint: the model branches on tensor values (data-dependent control flow): make control "
                "flow static or use torch.cond.")
    if isinstance(e, (RuntimeError, ValueError, IndexError)) and any(k in text for k in _SHAPE_ERRORS):
        shapes = ", ".join(str(list(t.shape)) for t in inputs)
        return (f"mxc: hint: a shape mismatch: get_example_inputs() returns shape(s) {shapes}; "
                "make them the shapes the model expects.")
    return "mxc: hint: mxc needs a graph torch.export can capture; change what the message above names."


def _failing_module(model: torch.nn.Module, e: Exception) -> str:
    """' in module <path> (<class>) at <file>:<line>': the innermost submodule of `model` and the
    innermost line of user code (not torch's, not a library's) that the error passed through."""
    names = {id(m): n for n, m in model.named_modules() if n}
    tb, module, line = e.__traceback__, "", ""
    while tb is not None:
        frame = tb.tb_frame
        owner = frame.f_locals.get("self")
        if id(owner) in names:
            module = f" in module '{names[id(owner)]}' ({type(owner).__name__})"
        file = frame.f_code.co_filename
        ours = str(frame.f_globals.get("__name__", "")).startswith("mxc.")
        if not ours and not file.startswith("<") and "site-packages" not in file and "/torch/" not in file:
            line = f" at {file}:{tb.tb_lineno}"
        tb = tb.tb_next
    return module + line


@contextlib.contextmanager
def _quiet_exporter():
    """torch.export prints a failing graph to stderr once per wrapper (twice) and logs the meta
    kernel's traceback; the error it raises says it all, so both are held back during export."""
    held = io.StringIO()
    logging.disable(logging.ERROR)
    try:
        with contextlib.redirect_stderr(held):
            yield
    finally:
        logging.disable(logging.NOTSET)


_PRESERVED = ("linear", "mm", "matmul", "addmm", "bmm", "conv2d", "scaled_dot_product_attention")


def decomposition_table() -> dict:
    """torch-mlir's decompositions (what IREE's torch input needs) minus the ops mxc rewrites. Where torch-mlir
    is absent (a GPU host running artifacts: `mxc generate --compare`'s torch reference), torch's core ATen
    decompositions minus the same ops: the matmuls and attention the reference matches stay whole either way."""
    try:
        from torch_mlir.extras.fx_decomp_util import get_decomposition_table
    except ImportError:
        from torch._decomp import core_aten_decompositions

        get_decomposition_table = core_aten_decompositions
    keep = {getattr(torch.ops.aten, name).default for name in _PRESERVED}
    return {op: fn for op, fn in get_decomposition_table().items() if op not in keep}


