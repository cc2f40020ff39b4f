"""Benchmark (not a test): mxc's CPU kernels alone, each variant against the others in one process.

Every kernel is compiled with IREE for this host (`--iree-llvmcpu-target-cpu=host`) and called on
random operands through IREE's runtime (2 workers); the variants of one shape are timed in turns (9
rounds of 5 calls after 2 warm-up calls each), so a slow phase of the machine hits all of them.
Prints the median and the best call, and GFLOP/s at the median.

    python -m mxc.tools.bench_cpu_kernels [gemm] [attention] [--shapes MxNxK ...]

`gemm`: `FmaGemm` float32 (4-row micro-tiles, as `--contraction fma` runs it) vs its bf16 dot form
(`vdpbf16ps`, `--contraction dpbf16`) with 4- and 8-row micro-tiles (the lowering takes 8), at
SmolLM2-135M's [1, 512] shapes by default; the bf16 forms only where the CPU has AVX512-BF16.
`attention`: is_causal attention at SmolLM2's shape (9 heads, 512 queries and keys, head dim 64) as the
three kernels (scores, softmax, values, the scores in memory between them) vs `FmaCausalAttention`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

SHAPES = ["512x1536x576", "512x576x1536", "512x576x576", "512x192x576", "512x49152x576"]


def host_module(src: str):
    """An IREE context holding `src` (MLIR with mxc's `hal.executable.source`s) compiled for this host's CPU,
    run by the local task executor (its workers: one per core)."""
    import iree.compiler as ic
    import iree.runtime as rt

    vmfb = ic.compile_str(src, target_backends=["llvm-cpu"], extra_args=["--iree-llvmcpu-target-cpu=host"])
    ctx = rt.SystemContext(config=rt.Config("local-task"))
    ctx.add_vm_module(rt.VmModule.copy_buffer(ctx.instance, vmfb))
    return ctx


def _time_in_turns(calls: dict, rounds: int = 9, reps: int = 5) -> dict:
    """{name: [seconds per call]}: each callable timed in turns."""
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            for _ in range(2):
                fn()
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    return times


def _t(n: int, dt: str = "f32") -> str:
    return f"tensor<{n}x{dt}>"


def gemm(shape: str) -> None:
    import ml_dtypes
    import iree.runtime as rt

    from mxc.passes import _amx, _fma
    from mxc.runtime.amx import host_has_dpbf16

    m, n, k = (int(x) for x in shape.split("x"))
    variants = {"f32 (fma)": {}}
    if host_has_dpbf16():
        variants.update({"bf16 dot, 4 rows": {"bf16": True}, "bf16 dot, 8 rows": {"bf16": True, "mr": 8}})
    calls, flops = {}, 2 * m * n * k
    rng = np.random.default_rng(0)
    for name, kw in variants.items():
        g = _fma.FmaGemm(m, n, k, **kw)
        dt = "bf16" if kw.get("bf16") else "f32"
        src = _amx.executable([g], "mxc_fma") + (
            f"func.func @mm(%a: {_t(m * k, dt)}, %b: {_t(n * k, dt)}) -> {_t(m * n)} {{\n"
            f"  %r = flow.dispatch @mxc_fma::@{g.name}(%a, %b) : ({_t(m * k, dt)}, {_t(n * k, dt)}) -> {_t(m * n)}\n"
            f"  return %r : {_t(m * n)}\n}}\n")
        ctx = host_module(src)
        npdt = ml_dtypes.bfloat16 if dt == "bf16" else np.float32
        args = [rt.asdevicearray(ctx.config.device, rng.standard_normal(size).astype(npdt)) for size in (m * k, n * k)]
        fn = ctx.modules.module.mm
        calls[f"{name} ({g.name})"] = lambda fn=fn, args=args: np.asarray(fn(*args))
    for name, ts in _time_in_turns(calls).items():
        med = statistics.median(ts)
        print(f"{shape:14s} {name:44s} median {med * 1e3:8.2f} ms  best {min(ts) * 1e3:8.2f} ms  "
              f"{flops / med / 1e9:6.1f} GFLOP/s", flush=True)


def attention(bt: int = 9, l_: int = 512, e: int = 64) -> None:
    import iree.runtime as rt

    from mxc.passes import _amx, _fma

    nvk, nvv = _fma.panel_vectors(l_), _fma.panel_vectors(e)
    s2, ev2 = _fma.pad_to(l_, 8 * nvk), _fma.pad_to(e, 8 * nvv)
    m = _fma.pad_to(l_, _fma.ATTN_ROWS)
    scores, soft = _fma.FmaGemm(m, s2, e, bt, "out", nvk), _fma.FmaSoftmax(m, s2, bt)
    pv, fused = _fma.FmaGemm(m, ev2, s2, bt, "lhs", nvv), _fma.FmaCausalAttention(m, s2, e, ev2, bt, nvk, nvv)
    qn, kn, vn, sn, on = bt * m * e, bt * s2 * e, bt * s2 * ev2, bt * m * s2, bt * m * ev2
    src = _amx.executable([scores, soft, pv, fused], "mxc_fma") + (
        f"func.func @three(%q: {_t(qn)}, %k: {_t(kn)}, %v: {_t(vn)}) -> {_t(on)} {{\n"
        f"  %s = flow.dispatch @mxc_fma::@{scores.name}(%q, %k) : ({_t(qn)}, {_t(kn)}) -> {_t(sn)}\n"
        f"  %p = flow.dispatch @mxc_fma::@{soft.name}(%s) : ({_t(sn)}) -> {_t(sn)}\n"
        f"  %o = flow.dispatch @mxc_fma::@{pv.name}(%p, %v) : ({_t(sn)}, {_t(vn)}) -> {_t(on)}\n"
        f"  return %o : {_t(on)}\n}}\n"
        f"func.func @one(%q: {_t(qn)}, %k: {_t(kn)}, %v: {_t(vn)}) -> {_t(on)} {{\n"
        f"  %o = flow.dispatch @mxc_fma::@{fused.name}(%q, %k, %v) : ({_t(qn)}, {_t(kn)}, {_t(vn)}) -> {_t(on)}\n"
        f"  return %o : {_t(on)}\n}}\n")
    ctx = host_module(src)
    rng = np.random.default_rng(0)
    args = [rt.asdevicearray(ctx.config.device, rng.standard_normal(size).astype(np.float32)) for size in (qn, kn, vn)]
    mod = ctx.modules.module
    calls = {f"three kernels ({scores.name}, softmax, {pv.name})": lambda: np.asarray(mod.three(*args)),
             f"fused ({fused.name})": lambda: np.asarray(mod.one(*args))}
    for name, ts in _time_in_turns(calls).items():
        print(f"attention {bt}x{l_}x{l_}x{e}  {name:70s} median {statistics.median(ts) * 1e3:7.2f} ms  "
              f"best {min(ts) * 1e3:7.2f} ms", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="*", help="gemm and/or attention (default: both)")
    p.add_argument("--shapes", nargs="+", default=SHAPES, help="MxNxK of the GEMMs")
    a = p.parse_args(argv)
    if set(a.what) - {"gemm", "attention"}:
        p.error(f"unknown benchmark(s) {', '.join(sorted(set(a.what) - {'gemm', 'attention'}))}: gemm, attention")
    from mxc.runtime.amx import host_has_fma

    if not host_has_fma():
        print("this CPU has no AVX2 + FMA: mxc's CPU kernels do not run here", file=sys.stderr)
        return 1
    for what in a.what or ["gemm", "attention"]:
        if what == "gemm":
            for shape in a.shapes:
                gemm(shape)
        else:
            attention()
    return 0


if __name__ == "__main__":
    sys.exit(main())
