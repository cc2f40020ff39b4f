"""Benchmark (not a test): compile time, peak RSS, and compiled-CPU run time vs torch eager.

For each example: `mxc compile` in a subprocess (wall time and its peak RSS),
then, in this process, the compiled artifact and torch eager running the same
fake-quantized model (weights fake-quantized once, activations at run time,
via mxc.runtime.reference.fake_quant_module), each timed as the median of
repeated runs after warm-up. Ratios are from this one run.

    python -m mxc.tools.benchmark [--format mxfp4] [--examples mlp cnn llama llama_100m]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _median_ms(fn, warmup: int = 3, reps: int = 15) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def _compile(example: Path, out: Path, fmt: str, weights_only: bool) -> tuple[float, float]:
    """(seconds, peak RSS GiB) of `mxc compile` in a fresh process."""
    cmd = [sys.executable, "-m", "mxc.tools.mxc", "compile", str(example), "-o", str(out), "--format", fmt, "-q"]
    if weights_only:
        cmd.append("--weights-only")
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"mxc compile {example} failed: {proc.stderr.read().decode()[-2000:]}")
    return secs, usage.ru_maxrss / 2**20  # ru_maxrss is KiB on Linux: this child's own peak


def bench(name: str, fmt: str, weights_only: bool, tmp: Path) -> dict:
    from mxc.compiler.frontend import load_model_file
    from mxc.runtime.artifact import load
    from mxc.runtime.reference import fake_quant_module

    out = tmp / f"{name}-{fmt}"
    secs, rss = _compile(EXAMPLES / f"{name}.py", out, fmt, weights_only)
    art = load(out)
    inputs = art.example_inputs()
    spec = load_model_file(art.manifest["model"])
    fq = fake_quant_module(spec.model, inputs, art.manifest)
    compiled_ms = _median_ms(lambda: art(*inputs))
    with torch.no_grad():
        eager_ms = _median_ms(lambda: fq(*inputs))
    params = sum(p.numel() for p in spec.model.parameters())
    return {"example": name, "params_M": params / 1e6, "compile_s": secs, "peak_rss_GiB": rss,
            "compiled_ms": compiled_ms, "torch_fq_ms": eager_ms, "speedup": eager_ms / compiled_ms}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--format", default="mxfp4")
    p.add_argument("--weights-only", action="store_true")
    p.add_argument("--examples", nargs="+", default=["mlp", "cnn", "llama", "llama_100m"])
    a = p.parse_args(argv)
    print(f"format {a.format}{' weights-only' if a.weights_only else ''}; torch threads {torch.get_num_threads()}; "
          "times are medians of 15 runs after 3 warm-ups")
    print(f"{'example':12s} {'params':>8s} {'compile s':>9s} {'peak RSS':>9s} {'mxc ms':>8s} "
          f"{'torch fq ms':>11s} {'torch/mxc':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.examples:
            r = bench(name, a.format, a.weights_only, Path(tmp))
            print(f"{r['example']:12s} {r['params_M']:7.1f}M {r['compile_s']:9.1f} {r['peak_rss_GiB']:7.2f}Gi "
                  f"{r['compiled_ms']:8.2f} {r['torch_fq_ms']:11.2f} {r['speedup']:8.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
