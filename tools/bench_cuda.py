"""mxc's Hopper kernels on the GPU: the benchmarks against torch (cuBLAS), and the kernel library they load.

    python -m mxc.tools.bench_cuda build DIR      # here (nvcc): DIR/kernels.cubin, every sm_90a kernel,
                                                  # and DIR/kernels.json, their names
    python3 -m mxc.tools.bench_cuda bench DIR     # on the H100/H200: timings, one process, medians
    python3 -m mxc.tools.bench_cuda bench-bs DIR  # on the H100/H200: the block-scaled twin vs cuBLAS
    python3 -m mxc.tools.bench_cuda model ARTIFACT MODEL.py   # on the H100/H200: a cuda-sm90
                                                              # artifact's forward pass vs torch eager bf16

The correctness checks of the same kernels are tests: `pytest tests/gpu` on the GPU host, with
MXC_GPU_CUBIN=DIR/kernels.cubin where it has no nvcc (tests/gpu/conftest.py).

The kernels are launched by `mxc.runtime.cuda` (the CUDA driver API through ctypes, on torch's
stream, as IREE launches them: the same cubin, the same parameter order). Timings are CUDA events
around CUDA-graph replays after warm-up; the medians of REPS runs are reported with the ratio to
torch measured in the same process.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

from mxc.kernels import build as build_kernels
from mxc.kernels.catalog import native_pair_kernels
from mxc.kernels.launches import tiled_weights
from mxc.numerics.options import FormatSpec
from mxc.numerics.quantize import quantize
from mxc.runtime.cuda import Module, hopper_kernels, layer_weights, run_layer
from mxc.targets import GemmLayer, get_target

BENCH_WO = ("mxfp4", "nvfp4", "if4", "mxfp6_e2m3", "mxfp8")
BENCH_SIZES = (4096, 8192)
BENCH_M = (1, 16, 128, 4096)
REPS, WARMUP, INNER = 15, 3, 20  # medians of REPS graph replays of INNER calls each
FLUSH_BYTES = 200 << 20  # weights rotate over copies of at least this many bytes: L2 (50 MB) holds none


def build(out: Path) -> None:
    """DIR/kernels.cubin (every sm_90a kernel) and DIR/kernels.json (their names)."""
    out.mkdir(parents=True, exist_ok=True)
    ks = hopper_kernels()
    b = build_kernels(ks)
    (out / "kernels.cubin").write_bytes(b.cubin)
    (out / "kernels.json").write_text(json.dumps([k.name for k in ks]))
    print(f"{len(ks)} kernels, cubin {len(b.cubin)} bytes -> {out}")


def _select(m: int, w: str, a: str | None) -> list:
    """cuda-sm90's kernels for a layer without bias."""
    layer = GemmLayer("bench", m, FormatSpec.parse(w), a and FormatSpec.parse(a), False)
    ks = get_target("cuda-sm90").select(layer)
    assert not isinstance(ks, str), ks
    return ks


def _rotated(weights: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """The weights and clones of them, together more than FLUSH_BYTES."""
    nbytes = weights["w"].numel() + weights["w_scales"].numel()
    return [weights] + [{n: t.clone() for n, t in weights.items()} for _ in range(_copies(nbytes) - 1)]


# ---------------------------------------------------------------- benchmark
def _time(fn, copies: int) -> float:
    """Seconds per call of fn(i): a CUDA graph of INNER calls (weights copy i % copies, so none is
    in L2 from the call before), timed with CUDA events; the median of REPS replays."""
    for i in range(WARMUP):
        fn(i % copies)
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    g = torch.cuda.CUDAGraph()
    with torch.cuda.stream(s), torch.cuda.graph(g, stream=s):
        for i in range(INNER):
            fn(i % copies)
    g.replay()
    torch.cuda.synchronize()
    ts = []
    for _ in range(REPS):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e-3 / INNER)
    return statistics.median(ts)


def _copies(nbytes: int) -> int:
    return max(2, -(-FLUSH_BYTES // nbytes))


def bench(out: Path) -> None:
    mod = Module((out / "kernels.cubin").read_bytes())
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  (per call: median of {REPS} CUDA-graph replays of {INNER} calls, weights rotated over copies > L2)")
    rows = []
    for kn in BENCH_SIZES:
        g = torch.Generator().manual_seed(0)
        w = torch.randn(kn, kn, generator=g)
        nbf = _copies(2 * kn * kn)
        wb = [w.bfloat16().cuda() for _ in range(nbf)]
        n8 = _copies(kn * kn)
        w8 = [w.cuda().to(torch.float8_e4m3fn) for _ in range(n8)]
        qs = {f: quantize(w, f) for f in BENCH_WO}
        dev: dict[tuple, list[dict[str, torch.Tensor]]] = {}  # (format, tile unit): rotated weight copies

        def weights(f: str, ks: list) -> list[dict[str, torch.Tensor]]:
            key = (f, tiled_weights(ks))
            if key not in dev:
                dev[key] = _rotated(layer_weights(ks, qs[f], kn))
            return dev[key]

        for m in BENCH_M:
            x = torch.randn(m, kn, generator=g).cuda()
            xb = x.bfloat16()
            t_ref = _time(lambda i: torch.nn.functional.linear(xb, wb[i]), nbf)
            flops = 2 * m * kn * kn
            rows.append(dict(K=kn, N=kn, M=m, what="torch bf16 linear (cuBLAS)", s=t_ref, ratio=1.0,
                             gbs=(2 * kn * kn) / t_ref / 1e9, tflops=flops / t_ref / 1e12))
            x8 = x.to(torch.float8_e4m3fn)
            one = torch.ones((), device="cuda")
            try:
                t_sm = _time(lambda i: torch._scaled_mm(x8, w8[i].t(), scale_a=one, scale_b=one,
                                                        out_dtype=torch.bfloat16), n8)
                rows.append(dict(K=kn, N=kn, M=m, what="torch._scaled_mm fp8 per-tensor", s=t_sm, ratio=t_ref / t_sm,
                                 gbs=kn * kn / t_sm / 1e9, tflops=flops / t_sm / 1e12))
            except RuntimeError as e:  # M = 1 is not a multiple of 16
                rows.append(dict(K=kn, N=kn, M=m, what=f"torch._scaled_mm: {str(e)[:60]}", s=float("nan"),
                                 ratio=float("nan"), gbs=float("nan"), tflops=float("nan")))
            for f in BENCH_WO:
                ks = _select(m, f, None)
                wts = weights(f, ks)
                t = _time(lambda i: run_layer(mod, ks, x, qs[f], weights=wts[i]), len(wts))
                nbytes = wts[0]["w"].numel() + wts[0]["w_scales"].numel()
                what = f"mxc {ks[-1].kind} {f} weight-only"
                rows.append(dict(K=kn, N=kn, M=m, what=what, s=t, ratio=t_ref / t,
                                 gbs=nbytes / t / 1e9, tflops=flops / t / 1e12))
            ks = _select(m, "mxfp8", "mxfp8")
            w8s = weights("mxfp8", ks)
            t = _time(lambda i: run_layer(mod, ks, x, qs["mxfp8"], weights=w8s[i]), len(w8s))
            rows.append(dict(K=kn, N=kn, M=m, what="mxc actq+qgmma mxfp8 x mxfp8", s=t, ratio=t_ref / t,
                             gbs=(w8s[0]["w"].numel() + w8s[0]["w_scales"].numel()) / t / 1e9,
                             tflops=flops / t / 1e12))
    print(f"{'K=N':>5} {'M':>5}  {'kernel':<42} {'time':>10} {'vs bf16':>8} {'GB/s':>8} {'TFLOP/s':>8}")
    for r in rows:
        print(f"{r['K']:>5} {r['M']:>5}  {r['what']:<42} {r['s'] * 1e6:>8.1f}us {r['ratio']:>7.2f}x "
              f"{r['gbs']:>8.0f} {r['tflops']:>8.1f}")
    (out / "bench.json").write_text(json.dumps(rows, indent=1))

    def ratio(kn, m, what):
        return next(r["ratio"] for r in rows if r["K"] == kn and r["M"] == m and r["what"].startswith(what))

    print("\naims (issue 4):")
    for label, got, aim in (
        ("4-bit weight-only (mxfp4) M=1 K=N=8192 vs cuBLAS bf16", ratio(8192, 1, "mxc gemv mxfp4"), 3.0),
        ("4-bit weight-only (nvfp4) M=1 K=N=8192 vs cuBLAS bf16", ratio(8192, 1, "mxc gemv nvfp4"), 3.0),
        ("FP4-weight prefill (mxfp4) M=4096 K=N=8192 vs cuBLAS bf16", ratio(8192, 4096, "mxc wgmma mxfp4"), 0.9),
        ("MXFP8 x MXFP8 M=4096 K=N=8192 vs cuBLAS bf16", ratio(8192, 4096, "mxc actq+qgmma"), 1.2),
    ):
        print(f"  {label}: {got:.2f}x (aim {aim}x) {'met' if got >= aim else 'NOT met'}")


def bench_bs(out: Path) -> None:
    """The block-scaled skeleton's Hopper twin (bsq + bsmma, both operands decoded to bf16 for wgmma)
    against cuBLAS bf16, in the same process: prefill shapes, medians."""
    mod = Module((out / "kernels.cubin").read_bytes())
    print(f"device: {torch.cuda.get_device_name()}  (median of {REPS} CUDA-graph replays of {INNER} calls)")
    kn, m = 8192, 4096
    g = torch.Generator().manual_seed(0)
    w = torch.randn(kn, kn, generator=g)
    x = torch.randn(m, kn, generator=g).cuda()
    nbf = _copies(2 * kn * kn)
    wb = [w.bfloat16().cuda() for _ in range(nbf)]
    xb = x.bfloat16()
    t_ref = _time(lambda i: torch.nn.functional.linear(xb, wb[i]), nbf)
    flops = 2 * m * kn * kn
    print(f"M={m} K=N={kn}  torch bf16 linear (cuBLAS): {t_ref * 1e6:.0f} us ({flops / t_ref / 1e12:.0f} TFLOP/s)")
    for a, f in (("mxfp4", "mxfp4"), ("nvfp4", "nvfp4"), ("mxfp8", "mxfp8"), ("mxfp6_e2m3", "mxfp6_e2m3")):
        q = quantize(w, f)
        ks = native_pair_kernels(a, f, False, "sm_90a")  # the twin, also where cuda-sm90 takes QGMMA
        copies = _rotated(layer_weights(ks, q, kn))
        t = _time(lambda i: run_layer(mod, ks, x, q, weights=copies[i]), len(copies))
        print(f"  twin {a} x {f} (bsq + bsmma): {t * 1e6:.0f} us, {t_ref / t:.2f}x cuBLAS bf16 "
              f"({flops / t / 1e12:.0f} TFLOP/s)")


def model(art_dir: Path, model_py: Path) -> None:
    """Median wall time of the artifact's call (IREE CUDA, inputs in, outputs back on the host) vs the
    model in torch eager bf16 on the GPU (wall time to synchronize), on the artifact's example inputs."""
    import time

    from mxc.compiler.frontend import load_model_file
    from mxc.runtime.artifact import load

    art = load(art_dir, "cuda")
    inputs = art.example_inputs()
    ts = []
    for i in range(WARMUP + REPS):
        t0 = time.perf_counter()
        art(*inputs)
        if i >= WARMUP:
            ts.append(time.perf_counter() - t0)
    t_mxc = statistics.median(ts)
    spec = load_model_file(model_py)
    m = spec.model.to("cuda", torch.bfloat16).eval()
    xs = [x.cuda() if not x.is_floating_point() else x.cuda().bfloat16() for x in inputs]
    ts = []
    with torch.no_grad():
        for i in range(WARMUP + REPS):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            m(*xs)
            torch.cuda.synchronize()
            if i >= WARMUP:
                ts.append(time.perf_counter() - t0)
    t_ref = statistics.median(ts)
    kernels = sorted({r.get("kernel", "") for r in art.manifest["layers"] if r.get("kernel")})
    print(f"{art_dir.name}: mxc cuda-sm90 {t_mxc * 1e3:.3f} ms/forward, torch eager bf16 {t_ref * 1e3:.3f} ms "
          f"-> {t_ref / t_mxc:.2f}x  (kernels: {', '.join(kernels)})")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "model":
        model(Path(argv[1]), Path(argv[2]))
        return 0
    if len(argv) != 2 or argv[0] not in ("build", "bench", "bench-bs"):
        print(__doc__)
        return 2
    cmd, out = argv[0], Path(argv[1])
    if cmd == "build":
        build(out)
        return 0
    if cmd == "bench-bs":
        bench_bs(out)
        return 0
    bench(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
