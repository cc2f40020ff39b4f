"""`mxc compile`: run the pipeline phase by phase, dump IR, write the artifact.

An artifact directory holds `model.vmfb`, `model.irpa` (every weight, packed,
as IREE parameters), `inputs.pt` (the example inputs) and `manifest.json`.

The directory is written whole or not at all: every file goes into a temporary
directory beside OUT, `manifest.json` last with the sha256 of each other file
(`files`), and the temporary directory is then renamed to OUT. An old OUT is
replaced only when it is empty or holds nothing but files mxc writes, so a
stale `reference.pt` or `model.vmfb` from an earlier compile never survives
into a new artifact, and Ctrl-C leaves the old OUT as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch_mlir import ir

from mxc.passes import run_pass

from . import frontend, importer, iree_backend, manifest
from .context import make_context
from mxc.errors import MxcError, MxcWarning, PipelineError
from mxc.layers import lm_path
from mxc.targets import get_target
from mxc.targets.cuda import CudaTarget

from .pipeline import Options, pass_phases, phases
from mxc.runtime.fingerprint import file_sha256, weights_fingerprint
from mxc.weights import WeightStore


@dataclass
class CompileResult:
    """What a compilation produced; `ir` maps phase name -> IR text when kept."""

    out_dir: Path | None
    manifest: dict
    ir: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    policy: str = ""  # --auto: the decided policy (TOML), also written as OUT/policy.toml


def _asm(module: ir.Module, debug_info: bool = False) -> str:
    return module.operation.get_asm(large_elements_limit=16, enable_debug_info=debug_info)


class _Progress:
    def __init__(self, enabled: bool, phase_names: tuple[str, ...]):
        self.enabled, self.t0, self.phases = enabled, time.perf_counter(), phase_names
        self.timings: dict[str, float] = {}

    def step(self, phase: str, fn):
        i = self.phases.index(phase) + 1
        if self.enabled:
            print(f"[{i}/{len(self.phases)}] {phase} ...", end="", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.timings[phase] = time.perf_counter() - t
            if self.enabled:
                print(f" {self.timings[phase]:.1f}s", file=sys.stderr, flush=True)


def compile_file(
    model_path: str | Path,
    out_dir: str | Path | None,
    opts: Options = Options(),
    *,
    dump_dir: str | Path | None = None,
    compile_to: str = "vmfb",
    print_ir_after_all: bool = False,
    progress: bool = False,
    keep_ir: bool = False,
) -> CompileResult:
    """Compile model.py into an artifact directory (see the module docstring)."""
    target = get_target(opts.target)  # UnknownTargetError names the valid ones
    PHASES = phases(opts.target)
    if compile_to not in PHASES:
        raise MxcError(f"unknown phase '{compile_to}' for --compile-to with --target {opts.target} "
                       f"(phases: {', '.join(PHASES)})")
    if out_dir is not None:
        _check_output_dir(Path(out_dir), Path(dump_dir) if dump_dir else None)  # before, not after, the compile
    if opts.policy:  # a bad policy file fails now, not after the import phase
        from mxc.passes.mxq_select_formats import MxqSelectFormats

        MxqSelectFormats.from_compile_options(opts, None).make_policy()
    spec = frontend.load_model_file(model_path, opts.checkpoint)  # --checkpoint: its tensors applied
    fingerprint = weights_fingerprint(spec.model)  # before export: nothing has touched the weights yet
    steps = _Progress(progress, PHASES)
    weights = WeightStore()
    ctx = make_context()
    result = CompileResult(Path(out_dir) if out_dir else None, {})
    dump = Path(dump_dir) if dump_dir else None
    if dump:
        dump.mkdir(parents=True, exist_ok=True)
    stem = Path(model_path).stem

    def record(phase: str, module: ir.Module, p=None):
        if print_ir_after_all:
            title = f"{type(p).__name__} ({p.name})" if p else f"phase {phase}"
            print(f"// -----// IR Dump After {title} //----- //", file=sys.stderr)
            print(_asm(module), file=sys.stderr)
        if dump:
            (dump / f"{stem}.{PHASES.index(phase)}.{phase}.mlir").write_text(_asm(module, debug_info=True))
        if keep_ir:
            result.ir[phase] = _asm(module)

    entry_points = frontend.entry_points(spec, opts)  # {function: (module, example inputs)}
    if spec.imported is not None:  # the checkpoint's modules in the compiled program (--generate: under `lm.`)
        paths, imported = spec.imported.in_program(spec.model, next(iter(entry_points.values()))[0])
    with ctx, ir.Location.unknown(), warnings.catch_warnings(record=True) as caught, contextlib.ExitStack() as stack:
        warnings.simplefilter("always", MxcWarning)
        progs: dict = {}  # function -> torch.export's program

        def export_and_import():
            if opts.generate and spec.dynamic_shapes is not None:
                warnings.warn("get_dynamic_shapes() is not used with --generate: its prefill and decode programs "
                              "have their own shapes (the prefill takes the prompt at its length, 1 to "
                              "--max-seq-len - 1 tokens)", MxcWarning, stacklevel=2)
            for f, (m, inputs) in entry_points.items():
                progs[f] = frontend.export(m, inputs, causal=opts.target == "cpu",
                                           dynamic_shapes=getattr(m, "dynamic_shapes", None) if opts.generate
                                           else spec.dynamic_shapes)
            return importer.import_program(progs, ctx, weights)

        module = steps.step("import", export_and_import)
        record("import", module)
        stop = compile_to == "import"
        table = manifest.layer_table(module)
        libraries: list = []  # the kernel library lower-mxq-to-cuda assembles
        selection = None
        for phase, p in pass_phases(opts, weights, libraries):
            if stop:
                break
            if phase == "formats" and opts.auto:
                where = dump or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mxc-auto-")))
                selection, p = _auto_select(spec, module, opts, weights, target, progress, where)
                steps.timings["auto"] = sum(selection.timings[k] for k in ("calibrate", "score", "check", "solve"))
                result.policy = selection.policy(opts.calibrate)
            if phase == "formats" and spec.imported is not None:  # --checkpoint: its formats are the policy
                result.policy = spec.imported.policy(opts.weights_only, paths)
                where = dump or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mxc-checkpoint-")))
                (where / f"{stem}.checkpoint-policy.toml").write_text(result.policy)
                p = dataclasses.replace(p, policy=str(where / f"{stem}.checkpoint-policy.toml"), format=None)
            if phase == "quantize-weights" and spec.imported is not None:  # by the program's parameter names
                p = dataclasses.replace(p, imported=imported)
            if phase == "legalize-cuda":  # the kernels of a dynamic row count's largest bucket
                p = dataclasses.replace(p, max_rows=frontend.max_rows(progs.values()) or 0)
            if phase == "decompose-attention":  # a dynamic query count, padded to the keys'
                p = dataclasses.replace(p, max_queries=frontend.max_queries(progs.values()) or 0)
            if phase == "calibrate":
                calibration = _calibrate(spec, module, weights, progress, opts.generate)
                if calibration is not None:
                    p = dataclasses.replace(p, calibrated=calibration[0])
                    steps.timings["calibration"] = calibration[1]
            steps.step(phase, lambda: _run_phase(p, module, out_dir or dump or Path(".")))
            record(phase, module, p)
            stop = compile_to == phase
            if phase not in target.lowering_phases or phase in target.annotating_phases:
                table = manifest.layer_table(module)  # (lowering erases the mxq ops)
        if not stop:
            names = steps.step("iree-input", lambda: iree_backend.params_to_globals(module))
            record("iree-input", module)
            stop = compile_to == "iree-input"
        library = libraries[0].cubin_path if libraries else None
        if library and dump:
            _copy_kernels(library, dump, target)
        if not stop:
            text = module.operation.get_asm()  # nothing elided: this is IREE's input
            vmfb = steps.step("vmfb", lambda: _iree_compile(
                text, opts.target, out_dir or dump or Path("."), lambda: _asm(module, debug_info=True)))
    warning_texts = [str(w.message) for w in caught if issubclass(w.category, MxcWarning)]
    for w in warning_texts:
        print(f"mxc: warning: {w}", file=sys.stderr)
    result.timings = steps.timings
    if opts.target == "cpu" and opts.contraction == "amx":
        table = [manifest.on_amx(row) for row in table]
    elif opts.target == "cpu" and opts.contraction in ("fma", "dpbf16"):
        table = [manifest.on_fma(row, dpbf16=opts.contraction == "dpbf16", act_dtype=opts.act_dtype) for row in table]
    if selection is not None:
        decided = {d.layer: d.to_dict() for d in selection.decisions}
        for row in table:
            d = decided.get(row["layer"]) or decided.get(lm_path(row["layer"]))  # (--generate: by the LM's path)
            if d is not None:
                up = d["runner_up"]
                row["decision"] = (f"{d['choice']} (--auto {opts.auto}: score {d['score']:.4g}"
                                   + (f"; runner-up {up['choice']}, {up['score']:.4g})" if up else ")"))
                row["auto"] = d
    result.manifest = {
        "model": str(Path(model_path).resolve()),
        "target": opts.target,
        "options": opts.to_dict(),
        "compiled_to": compile_to,
        "layers": table,
        "warnings": warning_texts,
        "inputs": _describe(next(iter(entry_points.values()))[1], next(iter(progs.values()), None)),
        "weights_bytes": None,
        "timings_s": {k: round(v, 3) for k, v in steps.timings.items()},
        "tool_versions": manifest.tool_versions(),
        **({"auto": {**selection.record(), "policy": POLICY_FILE}} if selection else {}),
    }
    if opts.generate:
        from mxc import generation

        result.manifest["entry_points"] = {f: {"inputs": _describe(inputs, progs.get(f))}
                                           for f, (_, inputs) in entry_points.items()}
        result.manifest["generate"] = generation.record(generation.causal_lm(spec.model), opts.max_seq_len,
                                                        opts.kv_cache, dynamic=True)
    if out_dir is None:
        return result
    final = Path(out_dir)
    out = _temp_dir_beside(final)  # every file goes here; renamed to `final` once complete
    try:
        if result.policy:
            (out / POLICY_FILE).write_text(result.policy)
        if compile_to == "vmfb":
            (out / "model.vmfb").write_bytes(vmfb)
            weights.write_irpa(out / "model.irpa", names)
            result.manifest["weights_bytes"] = weights.nbytes(names)
            result.manifest["parameters"] = {"file": "model.irpa", "scope": "model", "count": len(names)}
            # how `mxc write-weights` recomputes each parameter from model.py on the host that runs the program
            result.manifest["weights_recipes"] = {n: weights.recipes.get(n) for n in names}
            torch.save(next(iter(entry_points.values()))[1], out / "inputs.pt")
            if opts.generate:
                _save_tokenizer(spec, out / result.manifest["generate"]["tokenizer"])
        if library:
            _copy_kernels(library, out / "kernels", target)
            result.manifest["kernel_library"] = f"kernels/{target.kernel_stem}.cubin"
        if compile_to == "vmfb" and isinstance(target, CudaTarget) and not opts.generate:
            # The GPU machine may have no compiler: `mxc run --compare` there reads these.
            from mxc.runtime.reference import eager_forward, fake_quant_forward, stored_params, stored_weight

            read = lambda name: weights[name].reshape(-1).view(torch.uint8)  # noqa: E731
            stored = {r["layer"]: stored_weight(r, read) for r in result.manifest["layers"] if stored_params(r)}
            torch.save({"fake_quant": fake_quant_forward(spec.model, spec.example_inputs, result.manifest, stored),
                        "eager": eager_forward(spec.model, spec.example_inputs)}, out / REFERENCE_FILE)
            result.manifest["reference_outputs"] = REFERENCE_FILE
        result.manifest["weights_fingerprint"] = fingerprint
        result.manifest["files"] = {f.relative_to(out).as_posix(): file_sha256(f)
                                    for f in sorted(out.rglob("*")) if f.is_file()}
        (out / "manifest.json").write_text(json.dumps(result.manifest, indent=2))
        _replace_dir(out, final, dump)
    finally:
        shutil.rmtree(out, ignore_errors=True)  # (gone already when the rename happened)
    return result


# What mxc writes into an artifact directory (and a failed compile's reproducers):
# a directory holding only these may be replaced by a new artifact.
POLICY_FILE = "policy.toml"  # --auto's decided policy
_ARTIFACT_ENTRIES = frozenset({"model.vmfb", "model.irpa", "inputs.pt", "manifest.json", "reference.pt", "kernels",
                               POLICY_FILE, "repro.mlir", "iree_input.mlir", "tokenizer"})


def _describe(inputs: tuple, prog=None) -> list[dict]:
    """The manifest's inputs: the example inputs' shapes and dtypes, and, where model.py's
    get_dynamic_shapes() made a size dynamic, `dynamic`: [{"dim", "min", "max"}] (torch.export's ranges)."""
    dyn = frontend.dynamic_dims(prog) if prog is not None else [[] for _ in inputs]
    return [{"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."), **({"dynamic": d} if d else {})}
            for t, d in zip(inputs, dyn)]


def _save_tokenizer(spec, where: Path) -> None:
    try:
        tokenizer = spec.tokenizer()
        tokenizer.save_pretrained(where)
    except Exception as e:
        raise MxcError(f"{spec.path}: get_tokenizer() failed or returned no transformers tokenizer "
                       f"({type(e).__name__}: {e}); return e.g. AutoTokenizer.from_pretrained(...)") from e


def _calibrate(spec, module: ir.Module, weights: WeightStore, progress: bool, generate: bool = False):
    """`--calibrate` (or a policy's `calibrate`): calibrate the layers mxq-select-formats marked, in execution
    order on model.py's calibration data; (layer -> Calibrated, seconds), or None when no layer is marked.

    With --generate the layers are the entry points' ('prefill:lm.model.layers.0...', 'decode:lm...'): the
    causal LM is calibrated once, on its own forward, and each layer of both entry points takes the result
    of its module path (the same weight, so the same codes in both)."""
    from mxc.calibration.sequential import calibrate_model
    from mxc.passes.base import walk_ops
    from mxc.runtime.reference import layer_formats
    from mxc.selection.search import calibration_batches

    marked = {ir.StringAttr(mm.operation.attributes["layer"]).value:
              ir.StringAttr(mm.operation.attributes["mxq.calibrate"]).value
              for mm in walk_ops(module.operation, "mxq.matmul") if "mxq.calibrate" in mm.operation.attributes}
    if not marked:
        return None
    model, path = spec.model, str
    if generate:
        from mxc.generation import causal_lm

        model, path = causal_lm(spec.model, str(spec.path)), lm_path
    methods = {path(layer): m for layer, m in marked.items()}
    t0 = time.perf_counter()
    batches, _ = calibration_batches(spec, "--calibrate")
    formats = {path(layer): f for layer, f in layer_formats({"layers": manifest.layer_table(module)}).items()}
    bar = None
    if progress:
        from tqdm import tqdm

        tokens = sum(b[0].numel() if isinstance(b[0], torch.Tensor) else 1 for b in batches)
        print(f"      --calibrate: {len(methods)} layers on {len(batches)} batches ({tokens} tokens)",
              file=sys.stderr, flush=True)
        bar = tqdm(total=len(methods), desc="      calibrate", unit="layer", file=sys.stderr, leave=False)
    done, _ = calibrate_model(model, batches, formats, methods, bar.update if bar else None)
    if bar:
        bar.close()
    return {layer: done[path(layer)] for layer in marked if path(layer) in done}, time.perf_counter() - t0


def _auto_select(spec, module: ir.Module, opts: Options, weights: WeightStore, target, progress: bool,
                 where: Path):
    """`--auto`: search the formats of the layers convert-torch-to-mxq made; the formats pass applies the
    decided policy from `where`/<stem>.auto-policy.toml, as `--policy` would (and a reproducer can)."""
    import dataclasses

    from mxc.passes.mxq_select_formats import MxqSelectFormats, searchable_layers
    from mxc.selection.budget import AutoSpec
    from mxc.selection.search import search

    user = MxqSelectFormats.from_compile_options(opts, None).make_policy() if opts.policy else None
    layers = searchable_layers(module.operation, weights)
    if opts.generate:
        layers, in_lm = _decode_layers(spec, layers)
    if progress:
        print(f"      --auto {opts.auto}: scoring {len(layers)} layers", file=sys.stderr, flush=True)
    selection = search(spec, layers, AutoSpec.parse(opts.auto), target, opts.weights_only, user, progress)
    if opts.generate:  # the decided rules by the causal LM's module paths: both entry points' layers match them
        selection = dataclasses.replace(
            selection, decisions=[dataclasses.replace(d, layer=in_lm[d.layer]) for d in selection.decisions],
            pinned={in_lm[k]: c for k, c in selection.pinned.items()},
            groups=[[in_lm[k] for k in g] for g in selection.groups])
    path = where / f"{spec.path.stem}.auto-policy.toml"
    path.write_text(selection.policy(opts.calibrate))
    return selection, MxqSelectFormats.from_compile_options(dataclasses.replace(opts, policy=str(path)), weights)


def _decode_layers(spec, layers: list) -> tuple[list, dict[str, str]]:
    """--auto with --generate: the decode entry point's layers (M = 1, what each generated token costs), named by
    their module paths in model.py's model (where --auto's calibration taps them, on get_calibration_inputs()),
    and {that name: the layer's path in the causal LM}, which matches it in both entry points (mxc.policy)."""
    import dataclasses

    from mxc import generation
    from mxc.layers import split_layer

    lm = generation.causal_lm(spec.model, str(spec.path))
    prefix = next(name for name, m in spec.model.named_modules() if m is lm)
    prefix = f"{prefix}." if prefix else ""
    decode = [lay for lay in layers if split_layer(lay.name)[0] == "decode"]
    return ([dataclasses.replace(lay, name=prefix + lm_path(lay.name)) for lay in decode],
            {prefix + lm_path(lay.name): lm_path(lay.name) for lay in decode})


def _check_output_dir(out: Path, dump: Path | None) -> None:
    """Refuse an -o the artifact cannot replace, before any compile work: a file, a directory
    holding other files, or a place that is not writable."""
    if out.exists() and not out.is_dir():
        raise MxcError(f"-o {out}: is a file, not a directory; name a new directory (or an mxc artifact "
                       f"directory to replace)")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _ARTIFACT_ENTRIES)
        if foreign:
            raise MxcError(f"-o {out}: the directory holds files mxc did not write ({', '.join(foreign[:5])}"
                           f"{', ...' if len(foreign) > 5 else ''}) and would be replaced; name a new or empty "
                           f"directory, or an mxc artifact directory")
        if not os.access(out, os.W_OK | os.X_OK):
            raise MxcError(f"-o {out}: the directory is read-only; make it writable or name another directory")
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise MxcError(f"-o {out}: cannot create it, {parent} is a file, not a directory; "
                       "name another directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MxcError(f"-o {out}: cannot create it, {parent} is not a writable directory; name another directory")
    if dump is not None and dump.resolve().is_relative_to(out.resolve()):
        raise MxcError(f"--dump-compilation-phases-to {dump} is inside -o {out}, which a new artifact replaces "
                       f"as a whole; dump the phases elsewhere")


def _temp_dir_beside(out: Path) -> Path:
    """A new hidden directory next to `out` (same file system, so the final rename is atomic)."""
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    tmp = out.absolute().parent / f".{out.name}.mxc-tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()  # (mode from the umask, as `out` would have had)
    return tmp


def _replace_dir(tmp: Path, out: Path, dump: Path | None) -> None:
    """Rename the complete `tmp` to `out`; an old `out` is moved aside first and removed after."""
    _check_output_dir(out, dump)  # again: it may have changed during the compile
    if not out.exists():
        tmp.rename(out)
        return
    old = tmp.with_name(tmp.name + ".old")
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)  # put the old artifact back
        raise
    shutil.rmtree(old, ignore_errors=True)


REFERENCE_FILE = "reference.pt"


def _copy_kernels(cubin: Path, where: Path, target: CudaTarget) -> None:
    """The CUDA source, PTX and cubin of the model's kernels, as <where>/mxc_sm90a.{cu,ptx,cubin}
    (mxc_sm100a.* for cuda-sm100)."""
    where.mkdir(parents=True, exist_ok=True)
    for ext in ("cu", "ptx", "cubin"):
        shutil.copyfile(cubin.with_suffix("." + ext), where / f"{target.kernel_stem}.{ext}")


def _repro(module_text: str, where: Path, pipeline: str, err: Exception) -> PipelineError:
    where.mkdir(parents=True, exist_ok=True)
    path = where / "repro.mlir"
    path.write_text(module_text)
    return PipelineError(f"{err}\nreproduce with: mxc-opt -p '{pipeline}' {path}")


def _run_phase(p, module: ir.Module, where: Path) -> None:
    before = module.operation.get_asm(enable_debug_info=True)  # full text: the reproducer
    try:
        run_pass(p, module)
    except MxcError:
        raise
    except Exception as e:
        raise _repro(before, Path(where), p.spec(), f"pass {p.name} failed: {type(e).__name__}: {e}") from e


def _iree_compile(text: str, target: str, where: Path, located=None) -> bytes:
    """iree-compile `text`; on failure name the op and its module path (found through `located()`,
    the module with locations) and keep IREE's whole diagnostic beside the reproducer."""
    try:
        return iree_backend.compile_to_vmfb(text, target)
    except Exception as e:
        path = Path(where) / "iree_input.mlir"
        Path(where).mkdir(parents=True, exist_ok=True)
        diagnostic = "".join(f"// {line}\n" for line in str(e).splitlines())  # IREE's full text, atop the reproducer
        path.write_text(f"// iree-compile failed:\n{diagnostic}{text}")
        reproduce = (f"reproduce with: iree-compile --iree-input-type=torch "
                     f"{' '.join(get_target(target).iree_flags)} {path}")
        found = iree_backend.failing_op(str(e), text, located()) if located else None
        if found is None:
            raise PipelineError(f"iree-compile failed: {str(e)[:2000]}\n{reproduce}") from e
        op, layer, message = found
        where_op = f"'{op}' in module '{layer}'" if layer else f"'{op}'"
        raise PipelineError(
            f"IREE cannot compile {where_op}: {message.split(': %')[0][:300]}\nkeep that module out of the "
            "graph (run it outside the compiled model, or replace it with supported ops), or report the op as "
            f"unsupported. IREE's full diagnostic heads {path}\n{reproduce}"
        ) from e
