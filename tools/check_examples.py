"""Check the examples end to end (not a benchmark): `mxc compile` + `mxc run --compare` for every
example in examples/, in float32 and in bfloat16, in every format `mxc formats` lists, weights-only
and weights + activations; prints a pass/fail table with the compare metrics, exits 1 on any failure.

    python -m mxc.tools.check_examples [--target cpu|cuda-sm90] [--device cpu|cuda] [--quick]
        [--examples mlp cnn ...] [--dtypes f32 bf16] [--formats mxfp4 ...] [--modes w wa]
        [--jobs N] [--work DIR [--keep-passing]] [--stage all|compile|run]

Each (example, dtype) is compiled from a generated model.py in the work directory that imports the
example and casts its model and its floating-point example inputs to the dtype: what a user with a
checkpoint in that dtype compiles (a cast to the example's own dtype changes nothing, so
`mlp_bf16` in bf16 is itself, and in f32 the MLP). `mxc run --compare` calls that file's
`get_model()` again, so the work directory lives until the table is printed (`--work DIR` keeps it,
with the failing cases' artifacts, and the passing ones' with `--keep-passing`). Each case runs `mxc`
in a subprocess, as a user would; `--jobs` runs that many cases at once (each compile uses every
core: 1 on a small machine).

`--target` and `--device` go to `mxc compile` and `mxc run` unchanged (`--target cuda-sm90 --device
cuda` on a GPU host with nvcc; or `--stage compile --work DIR` where nvcc and torch-mlir are, then
`--stage run --work DIR --device cuda` on the GPU host, with the same selection). `--quick` checks
three formats, one per scale family (mxfp8, mxfp4, nvfp4), instead of all.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DTYPES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}
MODES = {"w": "weights-only", "wa": "weights+acts"}
QUICK_FORMATS = ("mxfp8", "mxfp4", "nvfp4")

_WRAPPER = '''"""{example} in {dtype}: written by mxc.tools.check_examples."""
import importlib.util
import sys

import torch

sys.path.insert(0, {folder!r})  # the example imports its neighbours (mlp_bf16: `from mlp import MLP`)
_spec = importlib.util.spec_from_file_location("mxc_example_{stem}", {path!r})
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)


def get_model():
    return _example.get_model().to(torch.{dtype})


def get_example_inputs():
    return tuple(t.to(torch.{dtype}) if t.is_floating_point() else t for t in _example.get_example_inputs())


if hasattr(_example, "get_dynamic_shapes"):  # the sizes it declares dynamic stay dynamic
    get_dynamic_shapes = _example.get_dynamic_shapes
'''


@dataclass(frozen=True)
class Case:
    """One compile + compare: an example in a dtype, a format, weights-only or not."""

    example: Path
    dtype: str
    fmt: str
    mode: str

    @property
    def name(self) -> str:
        return f"{self.example.stem}-{self.dtype}-{self.fmt}-{self.mode}"


@dataclass
class Outcome:
    """What a case gave: `status` is pass, FAIL (the check failed), or the step that errored."""

    case: Case
    status: str
    compile_s: float = 0.0
    compare: dict | None = None
    detail: str = ""


def wrapper(example: Path, dtype: str, where: Path) -> Path:
    """The generated model.py that casts `example` to `dtype` (see the module docstring)."""
    path = where / f"{example.stem}_{dtype}.py"
    path.write_text(_WRAPPER.format(example=example.name, dtype=DTYPES[dtype], folder=str(example.parent),
                                    stem=example.stem, path=str(example)))
    return path


def _mxc(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mxc.tools.mxc", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def check(case: Case, model: Path, work: Path, target: str, device: str, keep: bool = False,
          stage: str = "all") -> Outcome:
    """Compile `model` for `case` (stage all or compile) and compare the artifact with its references
    (stage all or run: the artifact `stage compile` left in `work`); the artifact of a case that passed
    is removed unless `keep` (or the stage is compile)."""
    out = work / case.name
    flags = ["--weights-only"] if case.mode == "w" else []
    secs = 0.0
    if stage in ("all", "compile"):
        t = time.perf_counter()
        p = _mxc("compile", model, "-o", out, "--target", target, "--format", case.fmt, *flags, "-q")
        secs = time.perf_counter() - t
        if p.returncode != 0:
            return Outcome(case, "compile error", secs, detail=_last_line(p.stderr))
        if stage == "compile":
            return Outcome(case, "compiled", secs)
    elif not (out / "manifest.json").is_file():
        return Outcome(case, "not compiled", detail=f"no artifact {out} (run --stage compile first)")
    p = _mxc("run", out, "--device", device, "--compare", "--json")
    try:
        result = json.loads(p.stdout)
    except ValueError:
        return Outcome(case, "run error", secs, detail=_last_line(p.stderr))
    ok = result["vs_reference"]["within_tolerance"] and p.returncode == 0
    if ok and not keep and stage == "all":
        shutil.rmtree(out)  # (a llama_100m artifact is ~100 MB; the failing ones stay for a look)
    cascade = any("verdict" in o.get("vs_reference", {}) for o in result.get("outputs", [result]))
    note = "flip cascade (README, Tolerance)" if ok and cascade else ""
    hint = f"flipped activation rounding? python -m mxc.tools.layer_diff {out}" if "hint" in result else ""
    return Outcome(case, "pass" if ok else "FAIL", secs, result, note if ok else hint)


def _row(o: Outcome) -> list[str]:
    c = o.case
    head = [c.example.stem, c.dtype, c.fmt, MODES[c.mode], o.status]
    if o.compare is None:
        return head + ["", "", "", "", "", f"{o.compile_s:.1f}", o.detail]
    ref, torch_ = o.compare["vs_reference"], o.compare["vs_torch"]
    rule = ref["rule"].split()[0]  # max_abs or rel_l2: what `tolerance` bounds
    return head + [f"{ref['rel_l2_error']:.2e}", f"{ref['max_abs_error']:.2e}",
                   f"{rule} <= {ref['tolerance']:.2e}", f"{100 * ref['fraction_within_rtol']:.1f}",
                   f"{torch_['rel_l2_error']:.2e}", f"{o.compile_s:.1f}", o.detail]


HEAD = ["example", "dtype", "format", "mode", "result", ">rel_l2 ref", ">max_abs ref", "tolerance",
        ">equal %", ">rel_l2 torch", ">compile s", "note"]


def table(outcomes: list[Outcome]) -> str:
    """The pass/fail table: errors against the fake-quant reference (what the check bounds), the share of
    outputs equal to it within 1e-4, and the error against torch float32 (the format's own)."""
    from mxc.tools.mxc import text_table

    return text_table(HEAD, [_row(o) for o in outcomes])


def _examples(names: list[str] | None) -> list[Path]:
    if not names:
        return sorted(EXAMPLES.glob("*.py"))
    paths = [Path(n) if n.endswith(".py") else EXAMPLES / f"{n}.py" for n in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"check_examples: no such example: {', '.join(missing)} (examples: "
                         f"{', '.join(p.stem for p in sorted(EXAMPLES.glob('*.py')))})")
    return [p.resolve() for p in paths]


def main(argv=None) -> int:
    from mxc.numerics.formats import FORMATS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="cpu", help="mxc compile --target (cpu, cuda-sm90, ...)")
    p.add_argument("--device", default="cpu", help="mxc run --device (cpu, cuda)")
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_FORMATS)}")
    p.add_argument("--examples", nargs="+", default=None,
                   help="names in examples/ or model.py paths (default: all)")
    p.add_argument("--dtypes", nargs="+", default=["f32", "bf16"], choices=list(DTYPES))
    p.add_argument("--formats", nargs="+", default=None, choices=list(FORMATS), help="default: every format")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES),
                   help="w: weights-only, wa: weights and activations")
    p.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    p.add_argument("--work", default=None,
                   help="keep the generated models and the failing cases' artifacts here")
    p.add_argument("--keep-passing", action="store_true", help="keep the passing cases' artifacts too")
    p.add_argument("--stage", default="all", choices=("all", "compile", "run"),
                   help="compile: only compile, into --work; run: only compare the artifacts --work holds "
                        "(compile here, run on a GPU host)")
    a = p.parse_args(argv)
    if a.stage != "all" and not a.work:
        p.error(f"--stage {a.stage} needs --work DIR (where the artifacts are kept)")
    formats = a.formats or (list(QUICK_FORMATS) if a.quick else list(FORMATS))
    examples = _examples(a.examples)
    with tempfile.TemporaryDirectory(prefix="mxc-check-") as tmp:
        work = Path(a.work) if a.work else Path(tmp)
        (work / "models").mkdir(parents=True, exist_ok=True)
        models = {(e, d): wrapper(e, d, work / "models") for e in examples for d in a.dtypes}
        cases = [Case(e, d, f, m) for e in examples for d in a.dtypes for f in formats for m in a.modes]
        print(f"check_examples: {len(cases)} cases, target {a.target}, device {a.device}, work {work}",
              file=sys.stderr, flush=True)

        def run(case: Case) -> Outcome:
            o = check(case, models[case.example, case.dtype], work, a.target, a.device, a.keep_passing, a.stage)
            print(f"  {case.name}: {o.status} ({o.compile_s:.0f}s compile)", file=sys.stderr, flush=True)
            return o

        with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
            outcomes = list(pool.map(run, cases))
    print(table(outcomes))
    bad = [o for o in outcomes if o.status not in ("pass", "compiled")]
    done = "compiled" if a.stage == "compile" else "passed"
    print(f"\n{len(outcomes) - len(bad)} of {len(outcomes)} {done}" + (
        f"; failed: {', '.join(o.case.name for o in bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
