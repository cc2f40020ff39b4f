"""mxc's Hopper kernels on the GPU: the benchmarks against torch (cuBLAS), and the kernel library they load.

    python -m mxc.tools.bench_cuda build DIR      # here (nvcc): DIR/kernels.cubin, every sm_90a kernel,
                                                  # and DIR/kernels.json, their names
    python3 -m mxc.tools.bench_cuda bench DIR [--shapes 8192x8192,...] [--m 1,16] [--formats nvfp4,...]
                                                  # [--no-peers]   on the H100/H200: timings vs cuBLAS
                                                  # bf16, torch._scaled_mm, torch int4, gemlite; medians
    python -m mxc.tools.bench_cuda table DIR/bench-*.json  # here or there: bench's rows as the README's tables
                                                  # (per shape and M: every path's ratio; issue 13's aims)
    python3 -m mxc.tools.bench_cuda bench-bs DIR  # on the H100/H200: the block-scaled twin vs cuBLAS
    python3 -m mxc.tools.bench_cuda dec-rows DIR [NxK,...]  # on the H100/H200: dec at M = 4, 16 with 1, 2, 4
                                                  # row tiles per CTA, and decs as kinds.decs_splits cuts it, vs
                                                  # cuBLAS bf16 (what kinds.dec_rows and kinds.use_decs pick from)
    python3 -m mxc.tools.bench_cuda rdec DIR [NxK,..] [FORMAT,..] [M,..]  # on the H100/H200: weight-only
                                                  # tilea + rdec [+ dsum] at every K split vs dec / decs (M <= 16)
                                                  # and cuBLAS bf16 (the choice of rdec); the selected split's
                                                  # kernels also timed alone
    python3 -m mxc.tools.bench_cuda rdec-tiles DIR  # on the H100/H200: rdec at every tile of x (16-256 rows)
                                                  # and K split, M = 64-512 (kinds.rdec_na / rdec_splits)
    python3 -m mxc.tools.bench_cuda dec1b DIR [NxK,..] [FORMAT,..]  # on the H100/H200: M = 1, dec1 against
                                                  # each variant of dec1b (kinds.dec1b_variants) and cuBLAS bf16
    python3 -m mxc.tools.bench_cuda ring DIR [NxK,..] [FORMAT,..]  # on the H100/H200: M = 1 and 16, dec1b
                                                  # and decs against themselves without decode and with the
                                                  # weights' stream alone: what they stream at
    python3 -m mxc.tools.bench_cuda clocks DIR NxK M FORMAT,... [ROUNDS]  # on the H100/H200: each format's
                                                  # layer and cuBLAS in turn, with the SM clock and power
                                                  # sampled: slower work, or a lower clock (the power cap)?
    python3 -m mxc.tools.bench_cuda once DIR NxK M FORMAT [ACT_FORMAT]
                                                  # one layer's kernels, run 3 times: what to give `ncu`
    python3 -m mxc.tools.bench_cuda model ARTIFACT MODEL.py   # on the H100/H200: a cuda-sm90
                                                              # artifact's forward pass vs torch eager bf16
    python3 -m mxc.tools.bench_cuda auto-check AUTO NONE          # on the H100/H200: an --auto speedup=
                                                  # artifact's forward vs the --format none one: the estimate checked
    python -m mxc.tools.bench_cuda iree-matmuls DIR   # here: DIR/iree, IREE's own f32/bf16 matmuls (a layer
                                                  # kept in high precision) for cuda-sm90, for the cost table
    python3 -m mxc.tools.bench_cuda cost-table DIR [--out FILE] [--shapes NxK,..]   # on the H100/H200:
                                                  # every kernel path of cuda-sm90 (each weight format
                                                  # weight-only, each pair it runs), DIR/iree's matmuls and
                                                  # cuBLAS over a grid of shapes: the measured table behind
                                                  # `--auto speedup=` (mxc/targets/data/); --shapes: only
                                                  # those rows timed again, into FILE (same device)

The correctness checks of the same kernels are tests: `pytest tests/gpu` on the GPU host, with
MXC_GPU_CUBIN=DIR/kernels.cubin where it has no nvcc (tests/gpu/conftest.py).

The kernels are launched by `mxc.runtime.cuda` (the CUDA driver API through ctypes, on torch's
stream, as IREE launches them: the same cubin, the same parameter order). Timings are CUDA events
around CUDA-graph replays after warm-up; the medians of REPS runs are reported with the ratio to
torch measured in the same process.
"""

from __future__ import annotations

import json
import signal
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import torch

from mxc.kernels import build as build_kernels
from mxc.kernels.catalog import native_pair_kernels
from mxc.kernels.kinds import (DEC1B_DIAGS, DEC_MT, DEC_R, DECS_CLUSTER_MAX, DECS_DIAGS, DECS_KT3, DECS_RING_TRY,
                               DECS_WARPS, DECS_WARPS8, GEMV_MAX_M, RDEC_NA, RDEC_SPLITS, RING_FORMATS, RING_SHAPES,
                               Dec, DSum, RDec, TileA, dec1b_variants, dec_max_rows, dec_rows, decs_cluster_twin,
                               decs_kernels, decs_splits, decs_wide_split, rdec_kernels, rdec_na)
from mxc.kernels.launches import layer_launches, weight_layout
from mxc.kernels.operands import TILEQ_FORMATS
from mxc.numerics.formats import get_format
from mxc.numerics.options import FormatSpec
from mxc.numerics.quantize import quantize
from mxc.runtime.cuda import Module, hopper_kernels, layer_weights, run_kernels, run_layer
from mxc.targets import GemmLayer, get_target

BENCH_WO = ("mxfp4", "nvfp4", "if4", "mxfp6_e2m3", "mxfp8")
BENCH_SHAPES = ((4096, 4096), (8192, 8192), (14336, 4096), (4096, 14336))  # (N, K): square, Llama-8B's MLP
BENCH_M = (1, 4, 16, 64, 128, 1024, 4096)
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


def _select(m: int, w: str, a: str | None, n: int = 0, k: int = 0) -> list:
    """cuda-sm90's kernels for a layer without bias (N = n, K = k; 0: unknown, the kernels' defaults)."""
    layer = GemmLayer("bench", m, FormatSpec.parse(w), a and FormatSpec.parse(a), False, n, k)
    ks = get_target("cuda-sm90").select(layer)
    assert not isinstance(ks, str), ks
    return ks


def _label(ks: list) -> str:
    """A layer's kernels in a benchmark row: 'mxc dec', 'mxc decs+dsum', 'mxc tilea+rdec'."""
    return "mxc " + "+".join(k.kind for k in ks)


def _what(ks: list, w_format: str, a_format: str | None = None) -> str:
    """A layer's row in `bench` (and its column in `table`, after the kernels): 'mxc dec1b nvfp4 weight-only',
    'mxc tileq+rdec mxfp8 x mxfp8'."""
    return f"{_label(ks)} " + (f"{w_format} x {a_format}" if a_format else f"{w_format} weight-only")


def _rotated(weights: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """The weights and clones of them, together more than FLUSH_BYTES."""
    nbytes = weights["w"].numel() + weights["w_scales"].numel()
    return [weights] + [{n: t.clone() for n, t in weights.items()} for _ in range(_copies(nbytes) - 1)]


# ---------------------------------------------------------------- benchmark
def _time(fn, copies: int, reps: int = REPS, inner: int = INNER) -> float:
    """Seconds per call of fn(i): a CUDA graph of `inner` calls (weights copy i % copies, so none is
    in L2 from the call before), timed with CUDA events; the median of `reps` replays."""
    for i in range(WARMUP):
        fn(i % copies)
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    g = torch.cuda.CUDAGraph()
    with torch.cuda.stream(s), torch.cuda.graph(g, stream=s):
        for i in range(inner):
            fn(i % copies)
    g.replay()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e-3 / inner)
    return statistics.median(ts)


def _copies(nbytes: int) -> int:
    return max(2, -(-FLUSH_BYTES // nbytes))


def _layer(n: int, k: int) -> tuple[torch.Generator, torch.Tensor, list[torch.Tensor]]:
    """A benchmark layer: the seeded generator (x is drawn from it next), W [n, k] float32 on the CPU, and
    bf16 copies of W on the GPU for cuBLAS, rotated over more than FLUSH_BYTES."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(n, k, generator=g)
    return g, w, [w.bfloat16().cuda() for _ in range(_copies(2 * n * k))]


def _cublas_time(x: torch.Tensor, wb: list[torch.Tensor]) -> float:
    """Seconds per call of torch's bf16 linear (cuBLAS) on x and the rotated bf16 weight copies `wb`: the
    reference every benchmark row's ratio is taken against."""
    xb = x.bfloat16()
    return _time(lambda i: torch.nn.functional.linear(xb, wb[i]), len(wb))


def _layers(shapes, formats):
    """The loops the sweeps share: each layer of `shapes` (weights from its seed, bf16 copies for cuBLAS),
    each format (the weights quantized once): yields (n, k, f, q, inputs), where inputs(ms) yields
    (m, x, cuBLAS bf16's time on x) with x drawn from the layer's generator, M by M."""
    for n, k in shapes:
        g, w, wb = _layer(n, k)

        def inputs(ms, k=k, g=g, wb=wb):
            for m in ms:
                x = torch.randn(m, k, generator=g).cuda()
                yield m, x, _cublas_time(x, wb)

        for f in formats:
            yield n, k, f, quantize(w, f), inputs
        del wb, inputs
        torch.cuda.empty_cache()


def _peers(x: torch.Tensor, w: torch.Tensor, n: int, k: int) -> list[tuple[str, object, int, int]]:
    """The peer kernels of a shape as (label, fn(i), copies, weight bytes); a peer that cannot run
    here gives a label saying why and fn None."""
    out = []
    m = x.shape[0]
    xb = x.bfloat16()
    # torch._scaled_mm, FP8 E4M3 with row-wise scales (what torchao's float8 row-wise inference runs)
    try:
        sw = w.abs().amax(1, keepdim=True).clamp_min(1e-12) / 448.0
        w8 = (w / sw).to(torch.float8_e4m3fn).cuda()
        sx = torch.ones(m, 1, device="cuda")
        n8 = _copies(n * k)
        w8s = [w8] + [w8.clone() for _ in range(n8 - 1)]
        swt = sw.reshape(1, n).cuda()
        x8 = x.to(torch.float8_e4m3fn)
        fn = lambda i: torch._scaled_mm(x8, w8s[i].t(), scale_a=sx, scale_b=swt, out_dtype=torch.bfloat16)
        fn(0)
        out.append(("torch._scaled_mm fp8 row-wise", fn, n8, n * k))
    except (RuntimeError, ValueError) as e:
        out.append((f"torch._scaled_mm fp8 row-wise: {str(e).splitlines()[0][:50]}", None, 0, 0))
    # torch's int4 weight-only kernel (torchao Int4WeightOnly), groups of 128, bf16 scales and zeros
    try:
        g = w.reshape(n, k // 128, 128)
        lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
        scale = ((hi - lo) / 15).clamp_min(1e-6)
        q = ((g - lo) / scale).round().clamp(0, 15).to(torch.int32).reshape(n, k)
        packed = (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8).cuda()
        w4 = torch.ops.aten._convert_weight_to_int4pack(packed, 8)
        zeros = lo + 8 * scale  # the kernel computes (q - 8) * scale + zero
        sz = torch.stack([scale.reshape(n, -1).t(), zeros.reshape(n, -1).t()], -1).bfloat16().cuda().contiguous()
        n4 = _copies(n * k // 2)
        w4s = [w4] + [w4.clone() for _ in range(n4 - 1)]
        fn = lambda i: torch.ops.aten._weight_int4pack_mm(xb, w4s[i], 128, sz)
        fn(0)
        out.append(("torch int4 weight-only (g128)", fn, n4, n * k // 2 + sz.numel() * 2))
    except (RuntimeError, ValueError) as e:
        out.append((f"torch int4 weight-only: {str(e).splitlines()[0][:50]}", None, 0, 0))
    # gemlite (Triton), MXFP4 weights x bf16 activations
    try:
        from gemlite.helper import A16W4_MXFP

        lin = torch.nn.Linear(k, n, bias=False, dtype=torch.bfloat16, device="cuda")
        with torch.no_grad():
            lin.weight.copy_(w.bfloat16())
        layer = A16W4_MXFP(device="cuda:0", dtype=torch.bfloat16).from_linear(lin, del_orig=False)
        nbytes = n * k // 2 + n * k // 32
        ng = _copies(nbytes)
        layers = [layer] + [A16W4_MXFP(device="cuda:0", dtype=torch.bfloat16).from_linear(lin, del_orig=False)
                            for _ in range(ng - 1)]
        fn = lambda i: layers[i](xb)
        fn(0)
        out.append(("gemlite A16W4_MXFP (Triton)", fn, ng, nbytes))
    except Exception as e:  # noqa: BLE001 - a peer that does not run here is reported, not fatal
        out.append((f"gemlite: {type(e).__name__}: {str(e).splitlines()[0][:40] if str(e) else ''}", None, 0, 0))
    return out


def bench(out: Path, shapes=BENCH_SHAPES, ms=BENCH_M, formats=BENCH_WO, peers: bool = True) -> None:
    """mxc's kernels against cuBLAS bf16 and the peers, one process: every (N, K) of `shapes` and M of
    `ms`; time, ratio to cuBLAS bf16 (same run), weight GB/s and TFLOP/s; the rows (with the device's name) to
    bench-SHAPES-mM.json beside the cubin, which `table` reads."""
    mod = Module((out / "kernels.cubin").read_bytes())
    device = torch.cuda.get_device_name()
    print(f"device: {device}  torch {torch.__version__}  (per call: median of {REPS} "
          f"CUDA-graph replays of {INNER} calls, weights rotated over copies > L2)")
    rows = []
    print(f"{'N':>6} {'K':>6} {'M':>5}  {'kernel':<48} {'time':>10} {'vs bf16':>8} {'GB/s':>7} {'TFLOP/s':>8}")

    def row(n, k, m, what, t, t_ref, nbytes):
        r = dict(N=n, K=k, M=m, what=what, s=t, ratio=t_ref / t if t == t else float("nan"),
                 gbs=nbytes / t / 1e9 if t == t else float("nan"),
                 tflops=2 * m * n * k / t / 1e12 if t == t else float("nan"), device=device)
        rows.append(r)
        print(f"{r['N']:>6} {r['K']:>6} {r['M']:>5}  {r['what']:<48} {r['s'] * 1e6:>8.1f}us {r['ratio']:>7.2f}x "
              f"{r['gbs']:>7.0f} {r['tflops']:>8.1f}", flush=True)

    # under a time limit (`timeout`'s SIGTERM), what was measured is still written and scored
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    try:
        _bench_rows(mod, shapes, ms, formats, peers, row)
    finally:
        (out / f"bench-{'-'.join(f'{n}x{k}' for n, k in shapes)}-m{'-'.join(map(str, ms))}.json").write_text(
            json.dumps(rows, indent=1))
        _aims(rows)


def _bench_rows(mod, shapes, ms, formats, peers, row) -> None:
    for n, k in shapes:
        g, w, wb = _layer(n, k)
        qs = {f: quantize(w, f) for f in formats}
        dev: dict[tuple, list[dict[str, torch.Tensor]]] = {}  # (format, weight layout): rotated weight copies

        def weights(f: str, ks: list) -> list[dict[str, torch.Tensor]]:
            key = (f, weight_layout(ks))
            if key not in dev:
                dev[key] = _rotated(layer_weights(ks, qs[f], k))
            return dev[key]

        for m in ms:
            x = torch.randn(m, k, generator=g).cuda()
            t_ref = _cublas_time(x, wb)
            row(n, k, m, "torch bf16 linear (cuBLAS)", t_ref, t_ref, 2 * n * k)
            for label, fn, copies, nbytes in (_peers(x, w, n, k) if peers else []):
                row(n, k, m, label, _time(fn, copies) if fn else float("nan"), t_ref, nbytes)
            for f in formats:
                ks = _select(m, f, None, n, k)
                wts = weights(f, ks)
                t = _time(lambda i: run_layer(mod, ks, x, qs[f], weights=wts[i]), len(wts))
                row(n, k, m, _what(ks, f), t, t_ref,
                    wts[0]["w"].numel() + wts[0]["w_scales"].numel())
            if "mxfp8" in formats:
                ks = _select(m, "mxfp8", "mxfp8", n, k)
                w8s = weights("mxfp8", ks)
                t = _time(lambda i: run_layer(mod, ks, x, qs["mxfp8"], weights=w8s[i]), len(w8s))
                row(n, k, m, _what(ks, "mxfp8", "mxfp8"), t, t_ref, w8s[0]["w"].numel() + w8s[0]["w_scales"].numel())
        del wb, dev
        torch.cuda.empty_cache()


_4BIT = ("nvfp4", "mxfp4", "if4")
_LLAMA = ((8192, 8192), (14336, 4096), (4096, 14336))  # the aims' shapes (N, K): square, Llama-8B's MLP


def _aim_set(what: str, m: int, formats: tuple[str, ...], aim: float, shapes=_LLAMA) -> tuple:
    """An aim at every N x K of `shapes`: (label, N, K, M, the columns (`_column`) measuring it, aim)."""
    cols = tuple(f if " x " in f else f"{f} weight-only" for f in formats)
    return tuple((f"{what} M={m} " + (f"K=N={n}" if n == k else f"N={n} K={k}"), n, k, m, cols, aim)
                 for n, k in shapes)


AIMS = (  # issue 13, as ratios to cuBLAS bf16 on the H200 (the README's aims table)
    *_aim_set("4-bit weight-only", 1, _4BIT, 2.0, _LLAMA[:1]),
    *_aim_set("4-bit weight-only", 1, _4BIT, 2.5, _LLAMA[1:]),
    *_aim_set("4-bit weight-only", 16, _4BIT, 1.8),
    *_aim_set("6-bit weight-only", 1, ("mxfp6_e2m3",), 1.6),
    *_aim_set("8-bit weight-only", 1, ("mxfp8",), 1.3),
    *_aim_set("4-bit weight-only", 128, _4BIT, 1.0),
    *_aim_set("4-bit weight-only", 4096, _4BIT, 0.9),
    *_aim_set("MXFP8 x MXFP8", 4096, ("mxfp8 x mxfp8",), 1.0),
)
AHEAD_OF_PEERS = "4-bit weight-only M=1 K=N=8192"  # the aim that also asks to be ahead of every peer in the run


def _aim_hits(rows: list[dict]) -> list[tuple[str, float, list[dict], dict | None]]:
    """Each of AIMS with the rows measuring it: (label, aim, mxc's rows of its columns, in their order, the best
    peer at its shape or None)."""
    out = []
    for label, n, k, m, cols, aim in AIMS:
        at = [r for r in rows if (r["N"], r["K"], r["M"]) == (n, k, m)]
        mxc = {_column(r["what"])[0]: r for r in at if r["what"].startswith("mxc ")}
        hits = [mxc[c] for c in cols if c in mxc]
        peers = [q for q in at if not q["what"].startswith(("mxc", "torch bf16")) and q["ratio"] == q["ratio"]]
        out.append((label, aim, hits, max(peers, key=lambda q: q["ratio"], default=None)))
    return out


def _aims(rows: list[dict], device: str | None = None) -> None:
    device = device or torch.cuda.get_device_name()
    note = "" if "H200" in device else f"; the aims are set on the H200, this ran on {device}: ratios do not compare"
    print(f"\naims (issue 13, ratio to cuBLAS bf16 in this run{note}):")
    for label, aim, hits, best in _aim_hits(rows):
        vs = f"; best peer {best['what']} {best['ratio']:.2f}x" if best else ""
        for r in hits:
            print(f"  {label} [{r['what']}]: {r['ratio']:.2f}x (aim {aim}x) "
                  f"{'met' if r['ratio'] >= aim else 'NOT met'}{vs}")


def _column(what: str) -> tuple[str, str]:
    """A benchmark row's column in `table` and the kernels it names: ('nvfp4 weight-only', 'dec1b'),
    ('mxfp8 x mxfp8', 'tileq+rdec'); a peer's label and ''."""
    if not what.startswith("mxc "):
        return what, ""
    _, kernels, rest = what.split(" ", 2)
    return rest, kernels


def _cell(r: dict | None) -> str:
    if r is None:
        return ""
    if r["ratio"] != r["ratio"]:
        return "n/a"
    kernels = _column(r["what"])[1]
    return f"{r['ratio']:.2f}x ({r['s'] * 1e6:.1f} us{', ' + kernels if kernels else ''})"


def table(paths: list[Path]) -> str:
    """The README's speed tables from `bench`'s JSON files (bench-*.json; runs on one device): per N x K, a row
    per M with cuBLAS bf16's time and every other row's ratio to it (time, mxc's kernels); then issue 13's aims,
    each with the ratios measuring it and met or missed by how much. Where two files hold the same cell, the
    later file's row."""
    rows = [r for p in paths for r in json.loads(Path(p).read_text())]
    cells = {(r["N"], r["K"], r["M"], _column(r["what"])[0]): r for r in rows}
    devices = sorted({r.get("device", "device not recorded") for r in rows})
    out = [f"{', '.join(devices)}; {len(paths)} run(s): ratio = cuBLAS bf16 time / time, in the same run"
           + ("" if any("H200" in d for d in devices) else "; the aims are set on the H200: ratios do not compare")]
    ref = "torch bf16 linear (cuBLAS)"
    for n, k in dict.fromkeys((r["N"], r["K"]) for r in rows):
        cols = list(dict.fromkeys(c for (nn, kk, _, c) in cells if (nn, kk) == (n, k) and c != ref))
        out += ["", f"N x K = {n} x {k}", "", "| M | cuBLAS bf16 | " + " | ".join(cols) + " |",
                "|---" * (len(cols) + 2) + "|"]
        for m in sorted({mm for (nn, kk, mm, _) in cells if (nn, kk) == (n, k)}):
            r0 = cells.get((n, k, m, ref))
            t0 = f"{r0['s'] * 1e6:.1f} us" if r0 else ""
            out.append(f"| {m} | {t0} | " + " | ".join(_cell(cells.get((n, k, m, c))) for c in cols) + " |")
    out += ["", "| aim | ratio | measured | status |", "|---|---|---|---|"]
    for label, aim, hits, best in _aim_hits(list(cells.values())):
        if not hits:
            continue
        got = ", ".join(f"{_column(r['what'])[0]} {r['ratio']:.2f}x" for r in hits)
        short = [f"{_column(r['what'])[0]} by {100 * (1 - r['ratio'] / aim):.1f} %" for r in hits if r["ratio"] < aim]
        behind = [_column(r["what"])[0] for r in hits
                  if best and label == AHEAD_OF_PEERS and r["ratio"] <= best["ratio"]]
        status = ("missed: " + ", ".join(short) if short else "met") + (
            f"; not ahead of {best['what']} ({best['ratio']:.2f}x): " + ", ".join(behind) if behind else "")
        peer = f"; best peer {best['what']} {best['ratio']:.2f}x" if best else ""
        out.append(f"| {label} | >= {aim}x | {got}{peer} | {status} |")
    return "\n".join(out)


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
    t_ref = _cublas_time(x, wb)
    flops = 2 * m * kn * kn
    print(f"M={m} K=N={kn}  torch bf16 linear (cuBLAS): {t_ref * 1e6:.0f} us ({flops / t_ref / 1e12:.0f} TFLOP/s)")
    for a, f in (("mxfp4", "mxfp4"), ("nvfp4", "nvfp4"), ("mxfp8", "mxfp8"), ("mxfp6_e2m3", "mxfp6_e2m3")):
        q = quantize(w, f)
        ks = native_pair_kernels(a, f, False, "sm_90a")  # the twin, also where cuda-sm90 takes tileq + rdec
        copies = _rotated(layer_weights(ks, q, kn))
        t = _time(lambda i: run_layer(mod, ks, x, q, weights=copies[i]), len(copies))
        print(f"  twin {a} x {f} (bsq + bsmma): {t * 1e6:.0f} us, {t_ref / t:.2f}x cuBLAS bf16 "
              f"({flops / t / 1e12:.0f} TFLOP/s)")


def _artifact_s(art_dir: Path):
    """The loaded cuda artifact and the median wall time of its call (inputs in, outputs back)."""
    import time

    from mxc.runtime.artifact import load

    art = load(art_dir, "cuda")
    inputs = art.example_inputs()
    ts = []
    for i in range(WARMUP + REPS):
        t0 = time.perf_counter()
        art(*inputs)
        if i >= WARMUP:
            ts.append(time.perf_counter() - t0)
    return art, inputs, statistics.median(ts)


def model(art_dir: Path, model_py: Path) -> None:
    """Median wall time of the artifact's call (IREE CUDA, inputs in, outputs back on the host) vs the
    model in torch eager bf16 on the GPU (wall time to synchronize), on the artifact's example inputs."""
    import time

    from mxc.compiler.frontend import load_model_file

    art, inputs, t_mxc = _artifact_s(art_dir)
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


COST_SHAPES = ((1024, 1024), (4096, 4096), (8192, 8192))  # (N, K)
IREE_SHAPES = ((256, 256), (1024, 1024), (4096, 4096))  # IREE's own matmul (a layer kept in high precision): slower, fewer
IREE_M = (1, 16, 17, 64, 256)
IREE_DTYPES = ("f32", "bf16")  # the table's kind is the MLIR element type
COST_M = (1, 4, 16, 17, 64, 256, 1024, 4096)  # 16 | 17: the switch from the decode kernels to the GEMMs
COST_REPS, COST_INNER = 7, 10


def cost_kinds() -> list[tuple[str, str | None]]:
    """(weight format, activation format or None) of every kernel path cuda-sm90 runs."""
    from mxc.numerics.formats import FORMATS

    out = []
    for w in FORMATS:
        for a in (None, *FORMATS):
            ks = get_target("cuda-sm90").select(
                GemmLayer("cost", 64, FormatSpec.parse(w), a and FormatSpec.parse(a), False))
            if not isinstance(ks, str):
                out.append((w, a))
    return out


def iree_matmuls(out: Path) -> None:
    """Here (iree-compile): DIR/iree/*.vmfb, y = x W^T in f32 and bf16 as IREE's own codegen compiles a
    layer kept in high precision for cuda-sm90 (its flags), for the cost table's IREE rows."""
    import iree.compiler as ic

    (out / "iree").mkdir(parents=True, exist_ok=True)
    flags = list(get_target("cuda-sm90").iree_flags)
    for et in IREE_DTYPES:
        for n, k in IREE_SHAPES:
            for m in IREE_M:
                # bf16 operands accumulate into float32 (as torch-mlir lowers a bf16 linear)
                x, w, y = f"tensor<{m}x{k}x{et}>", f"tensor<{n}x{k}x{et}>", f"tensor<{m}x{n}xf32>"
                text = (f"func.func @mm(%x: {x}, %w: {w}) -> {y} {{\n"
                        f"  %zero = arith.constant 0.0 : f32\n  %e = tensor.empty() : {y}\n"
                        f"  %f = linalg.fill ins(%zero : f32) outs(%e : {y}) -> {y}\n"
                        "  %r = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, "
                        "affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]\n"
                        f"    ins(%x, %w : {x}, {w}) outs(%f : {y}) -> {y}\n"
                        f"  return %r : {y}\n}}\n")
                (out / "iree" / f"{et}_{n}x{k}_m{m}.vmfb").write_bytes(ic.compile_str(text, extra_args=flags))
    # the cost of a synchronous call of one tiny dispatch (invoke, submit, fence, read back), subtracted from
    # the matmuls' times: an artifact's layers run inside one call of its program
    y = "tensor<1x1024xf32>"
    text = (f"func.func @mm(%x: {y}, %w: tensor<1024x1024xf32>) -> {y} {{\n"
            f"  %r = arith.addf %x, %x : {y}\n  return %r : {y}\n}}\n")
    (out / "iree" / "call_1024x1024_m1.vmfb").write_bytes(ic.compile_str(text, extra_args=flags))
    print(f"{len(IREE_DTYPES) * len(IREE_SHAPES) * len(IREE_M)} IREE matmuls -> {out / 'iree'}")


def _iree_rows(out: Path) -> list[dict]:
    """The IREE matmuls of DIR/iree timed on the GPU: wall time per synchronous call (as an artifact's
    layer runs inside its program, without the program's own launch overheads), medians."""
    import time

    import iree.runtime as rt
    import ml_dtypes
    import numpy as np

    config = rt.Config("cuda")
    rows = []
    for f in sorted((out / "iree").glob("*.vmfb")):
        kind, nk, mm = f.stem.split("_")
        n, k = (int(v) for v in nk.split("x"))
        m = int(mm[1:])
        ctx = rt.SystemContext(vm_modules=[rt.VmModule.copy_buffer(config.vm_instance, f.read_bytes())],
                               config=config)
        fn = ctx.modules.module["mm"]
        dt = ml_dtypes.bfloat16 if kind == "bf16" else np.float32
        rng = np.random.default_rng(0)
        x = rt.asdevicearray(config.device, rng.standard_normal((m, k)).astype(dt))
        w = rt.asdevicearray(config.device, rng.standard_normal((n, k)).astype(dt))
        for _ in range(WARMUP):
            fn(x, w).to_host()
        ts = []
        for _ in range(COST_REPS):
            t0 = time.perf_counter()
            for _ in range(COST_INNER - 1):
                fn(x, w)
            fn(x, w).to_host()
            ts.append((time.perf_counter() - t0) / COST_INNER)
        rows.append({"kind": kind, "n": n, "k": k, "m": m, "s": statistics.median(ts)})
        print(f"  IREE {kind} {n}x{k} M={m}: {rows[-1]['s'] * 1e6:.1f} us per call", flush=True)
    call = next(r["s"] for r in rows if r["kind"] == "call")
    print(f"  IREE call overhead {call * 1e6:.1f} us: subtracted")
    return [{**r, "s": max(r["s"] - call, 0.0)} for r in rows if r["kind"] != "call"]


def _kept_rows(old: dict, shapes, device: str, dest: Path) -> list[dict]:
    """The rows of the table `old` that a cost-table run timing only `shapes` keeps: the other shapes', and
    IREE's own matmuls (not timed again); refused where `old` was measured on another device."""
    if bad := [s for s in shapes if s not in COST_SHAPES]:
        raise SystemExit(f"cost-table --shapes: {bad} (N, K) not among the table's {list(COST_SHAPES)}")
    if old.get("device") != device:
        raise SystemExit(f"{dest}: measured on {old.get('device')}, this is {device}: time every shape "
                         "(no --shapes) rather than mix devices in one table")
    return [r for r in old["rows"] if (r["n"], r["k"]) not in shapes or r["kind"] in IREE_DTYPES]


def _timed(old: dict | None, shapes, today: str) -> dict[str, str]:
    """The cost table's `timed`: for each of COST_SHAPES ("NxK") and for IREE's matmuls ("iree"), the date its
    rows were timed: today for `shapes` (and for IREE's where there is no `old` table: a full run), else the
    date `old` gives (its `timed`, or its `date` where it has none)."""
    keys = [f"{n}x{k}" for n, k in COST_SHAPES] + ["iree"]
    was = {key: (old.get("timed") or {}).get(key, old["date"]) for key in keys} if old else {}
    now = {f"{n}x{k}" for n, k in shapes} | (set() if old else {"iree"})
    return {key: today if key in now else was[key] for key in keys}


def cost_table(out: Path, dest: Path | None = None, shapes: list[tuple[int, int]] | None = None) -> None:
    """Median seconds per call of every cuda-sm90 kernel path and of cuBLAS f32 and bf16 (the
    high-precision layer) on COST_SHAPES x COST_M, in one process; the JSON `--auto` reads. With `shapes`
    (some of COST_SHAPES, as (N, K)): only their rows are timed again, replacing theirs in dest, a table
    measured on the same device (so that a table too long for one device call is made in several)."""
    import datetime

    from mxc.selection.cost import TABLE_VERSION, kind_key

    dest = dest or out / "cuda-sm90-gemm.json"
    device = torch.cuda.get_device_name()
    old = json.loads(dest.read_text()) if shapes is not None else None  # some shapes timed again into it
    kept = _kept_rows(old, shapes, device, dest) if old else []
    if not old and not (out / "iree").is_dir():  # checked before the ~10 minutes of timing, not after
        raise SystemExit(f"{out}/iree: no IREE matmuls; run python -m mxc.tools.bench_cuda iree-matmuls {out} "
                         "where iree-compile is, then carry them")
    mod = Module((out / "kernels.cubin").read_bytes())
    torch.backends.cuda.matmul.allow_tf32 = False
    rows = []
    kinds = cost_kinds()
    shapes = shapes or list(COST_SHAPES)
    print(f"device: {device}; {len(kinds)} kernel paths + f32/bf16 x {len(shapes)} shapes x {len(COST_M)} M",
          flush=True)
    for n, k in shapes:
        g = torch.Generator().manual_seed(0)
        w = torch.randn(n, k, generator=g)
        for dt, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
            copies = _copies(w.element_size() * n * k if dt == torch.float32 else 2 * n * k)
            wd = [w.to("cuda", dt) for _ in range(copies)]
            for m in COST_M:
                x = torch.randn(m, k, generator=g).to("cuda", dt)
                rows.append({"kind": f"cublas-{name}", "n": n, "k": k, "m": m,
                             "s": _time(lambda i: torch.nn.functional.linear(x, wd[i]), copies, COST_REPS, COST_INNER)})
            del wd
        qs: dict[str, object] = {}
        for wf, af in kinds:
            if wf not in qs:
                qs[wf] = quantize(w.cuda(), wf)
            q = qs[wf]
            dev: dict = {}
            for m in COST_M:
                ks = _select(m, wf, af, n, k)
                key = weight_layout(ks)
                if key not in dev:
                    dev[key] = _rotated(layer_weights(ks, q, k))
                wts = dev[key]
                x = torch.randn(m, k, generator=g).cuda()
                t = _time(lambda i: run_layer(mod, ks, x, q, weights=wts[i]), len(wts), COST_REPS, COST_INNER)
                rows.append({"kind": kind_key(wf, af), "n": n, "k": k, "m": m, "s": t})
            print(f"  {n}x{k} {kind_key(wf, af)}: " + " ".join(f"{r['s'] * 1e6:.1f}" for r in rows[-len(COST_M):])
                  + " us", flush=True)
            del dev
        del qs
        torch.cuda.empty_cache()
    rows = kept + rows if old else rows + _iree_rows(out)
    today = datetime.date.today().isoformat()
    timed = _timed(old, shapes, today)
    table = {"version": TABLE_VERSION, "target": "cuda-sm90", "device": device,
             "torch": torch.__version__, "date": ", ".join(sorted(set(timed.values()))), "timed": timed,
             "method": f"median of {COST_REPS} CUDA-graph replays of {COST_INNER} calls, weights rotated over "
                       "copies larger than L2; x float32 [M, K] in, y float32 [M, N] out; f32/bf16 (a layer "
                       "kept in high precision): IREE's own matmul for cuda-sm90, median wall time per "
                       f"synchronous call over {COST_REPS} x {COST_INNER} calls less that of a call of one tiny dispatch; cublas-f32/-bf16: "
                       "torch.nn.functional.linear (cuBLAS, TF32 off), for reference; `timed`: the date each "
                       "shape's rows (N x K) and IREE's matmuls were timed",
             "rows": rows}
    dest.write_text(json.dumps(table, indent=0) + "\n")
    print(f"{len(rows)} timings -> {dest}")


def auto_check(auto_dir: Path, none_dir: Path) -> None:
    """`--auto speedup=`/`time=`'s estimate against the GPU: the forward pass of the --auto artifact and of
    the same model compiled with --format none (same shapes), medians. The estimate covers the searched
    layers' GEMMs only, so the check is on what they change: the forward time predicted for the --auto
    artifact, measured(none) - estimated(none) + estimated(auto), against the measured one."""
    manifest = json.loads((auto_dir / "manifest.json").read_text())
    speed = manifest.get("auto", {}).get("speed")
    if not speed:
        raise SystemExit(f"{auto_dir}: not compiled with a speed budget (--auto speedup=Y or time=T)")
    _, _, t_auto = _artifact_s(auto_dir)
    _, _, t_none = _artifact_s(none_dir)
    e_auto, e_none = speed["estimated_gemm_s"], speed["high_precision_gemm_s"]
    predicted = t_none - e_none + e_auto
    print(f"{auto_dir.name} (--auto {manifest['auto']['budget']['text']}, {speed['target']}): estimated GEMM "
          f"time {e_auto * 1e6:.1f} us vs {e_none * 1e6:.1f} us in high precision ({speed['estimated_speedup']:.2f}x)")
    print(f"  measured forward: {t_auto * 1e6:.1f} us (--auto) vs {t_none * 1e6:.1f} us ({none_dir.name}, "
          f"--format none): saved {(t_none - t_auto) * 1e6:.1f} us, estimated to save {(e_none - e_auto) * 1e6:.1f} us")
    print(f"  forward predicted for --auto: {predicted * 1e6:.1f} us; measured {t_auto * 1e6:.1f} us: "
          f"error {100 * (predicted - t_auto) / t_auto:+.1f} % (aim: within 20 %)")


def once(out: Path, shape: str, m: int, w: str, a: str | None) -> None:
    """Run one layer's kernels (cuda-sm90's selection) three times, for a profiler to catch."""
    mod = Module((out / "kernels.cubin").read_bytes())
    n, k = (int(v) for v in shape.split("x"))
    g = torch.Generator().manual_seed(0)
    q = quantize(torch.randn(n, k, generator=g), w)
    ks = _select(m, w, a, n, k)
    wts = layer_weights(ks, q, k)
    x = torch.randn(m, k, generator=g).cuda()
    for _ in range(3):
        run_layer(mod, ks, x, q, weights=wts)
    torch.cuda.synchronize()
    print(f"ran {[kk.name for kk in ks]} x3 for M={m} N={n} K={k}")


SMI_QUERY = "timestamp,clocks.sm,power.draw,clocks_throttle_reasons.active"
POWER_CAP = 0x4  # clocks_throttle_reasons.active: the power cap (SW power cap) holds the SM clock down


def _clock_phases(samples: str, phases: list[tuple[str, float, float, float]]) -> list[dict]:
    """`nvidia-smi --query-gpu=SMI_QUERY --format=csv,noheader -lms T`'s lines and the phases (label, start
    and end as time.time(), seconds per call) timed meanwhile -> per phase: the mean SM clock (MHz) of the
    samples inside it, the largest power draw (W), whether the power cap was holding the clock, and the
    kernel's cycles per call at that clock (time x clock: equal cycles at a lower clock = slowed by the clock,
    not by the kernel's work). A phase with no sample inside gives None for those."""
    import datetime

    rows = []
    for line in samples.splitlines():
        f = [v.strip() for v in line.split(",")]
        if len(f) == 4 and f[1].endswith("MHz"):
            t = datetime.datetime.strptime(f[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()  # local time, as time.time()
            rows.append((t, float(f[1].split()[0]), float(f[2].split()[0]), int(f[3], 16)))
    out = []
    for label, t0, t1, sec in phases:
        inside = [r for r in rows if t0 <= r[0] <= t1]
        mhz = statistics.mean(r[1] for r in inside) if inside else None
        out.append(dict(label=label, s=sec, mhz=mhz, watts=max((r[2] for r in inside), default=None),
                        capped=any(r[3] & POWER_CAP for r in inside) if inside else None,
                        mcycles=sec * mhz if mhz else None))
    return out


def clocks(out: Path, shape: str, m: int, formats: tuple[str, ...], rounds: int = 2) -> None:
    """Each format's layer (cuda-sm90's selection) and cuBLAS bf16 at one shape, `rounds` times in turn, with
    nvidia-smi sampling the SM clock and the power every 25 ms: whether a slower time comes from the kernel's
    work or from a lower clock (at M = 4096 an H100 / H200 runs these GEMMs at its power cap)."""
    import shutil
    import subprocess
    import tempfile
    import time

    if not shutil.which("nvidia-smi"):
        raise SystemExit("bench_cuda clocks: needs nvidia-smi (the GPU host's driver tools)")
    mod = Module((out / "kernels.cubin").read_bytes())
    n, k = (int(v) for v in shape.split("x"))
    g, w, wb = _layer(n, k)
    qs = {f: quantize(w, f) for f in formats}
    x = torch.randn(m, k, generator=g).cuda()
    ks = {f: _select(m, f, None, n, k) for f in formats}
    wts = {f: _rotated(layer_weights(ks[f], qs[f], k)) for f in formats}
    runs = [("cuBLAS bf16", lambda: _cublas_time(x, wb))]
    for f in formats:
        runs.append((f"{_label(ks[f])} {f}", lambda f=f: _time(lambda i: run_layer(mod, ks[f], x, qs[f],
                                                                                    weights=wts[f][i]), len(wts[f]))))
    with tempfile.NamedTemporaryFile("w+", suffix=".csv") as log:
        smi = subprocess.Popen(["nvidia-smi", f"--query-gpu={SMI_QUERY}", "--format=csv,noheader", "-lms", "25"],
                               stdout=log)
        try:
            time.sleep(0.5)
            phases = []
            for _ in range(rounds):
                for label, fn in runs:
                    t0 = time.time()
                    sec = fn()
                    phases.append((label, t0, time.time(), sec))
            time.sleep(0.1)
        finally:
            smi.terminate()
            smi.wait()
        log.seek(0)
        result = _clock_phases(log.read(), phases)
    print(f"device: {torch.cuda.get_device_name()}  N={n} K={k} M={m}: per call, the SM clock while it ran "
          f"(nvidia-smi every 25 ms), cycles = time x clock")
    for r in result:
        clock = f"{r['mhz']:6.0f} MHz {r['watts']:5.0f} W{' power cap' if r['capped'] else ''}  " \
                f"{r['mcycles']:7.3f} Mcycles" if r["mhz"] else "(no clock sample inside)"
        print(f"  {r['label']:<28} {r['s'] * 1e6:8.1f}us  {clock}", flush=True)
    (out / f"clocks-{shape}-m{m}.json").write_text(json.dumps(result, indent=1))


def dec_rows_sweep(out: Path, shapes=BENCH_SHAPES, ms=(4, 16), formats=BENCH_WO) -> None:
    """The dec kernel (2 <= M <= 16) at every row-tile count per CTA (kinds.DEC_R) its format allows, and
    decs (K split across CTAs: 8 warps per CTA as decs_splits cuts it, and at M > 8 the 24-warp CTA where
    decs_wide_split finds a split), against cuBLAS bf16 in the same run: the measurements behind kinds.dec_rows
    and kinds.use_decs."""
    mod = Module((out / "kernels.cubin").read_bytes())
    print(f"device: {torch.cuda.get_device_name()}; dec_rows picks (M = {', '.join(map(str, ms))}): "
          f"{ {f: [[dec_rows(n, f, 8 if m <= 8 else 16) for m in ms] for n, _ in shapes] for f in formats} }")
    for n, k, f, q, inputs in _layers(shapes, formats):
        wts = None
        for m, x, t_ref in inputs(ms):
            cells = []
            mt = next(v for v in DEC_MT if v >= m)
            for r in (r for r in DEC_R if r <= dec_max_rows(f, mt)):
                ks = [Dec(w_format=f, mt=mt, r=r)]
                wts = wts or _rotated(layer_weights(ks, q, k))  # one weight layout for every r
                t = _time(lambda i: run_layer(mod, ks, x, q, weights=wts[i]), len(wts))
                cells.append(f"r{r} {t * 1e6:6.1f}us {t_ref / t:4.2f}x")
            split, wide = decs_splits(n, k), decs_wide_split(n, k) if mt > 8 else None
            cuts = ([(*split, DECS_WARPS8)] if split else []) + ([(wide, DECS_KT3, DECS_WARPS)] if wide else [])
            for s, kt, warps in cuts:
                ks = decs_kernels(f, mt, s, kt, warps)
                t = _time(lambda i: run_layer(mod, ks, x, q, weights=wts[i]), len(wts))
                cells.append(f"decs s{s} kt{kt}{'c' if s <= DECS_CLUSTER_MAX else ''}"
                             f"{f' w{warps}' if warps != DECS_WARPS8 else ''} {t * 1e6:6.1f}us {t_ref / t:4.2f}x")
            print(f"{n:>6} {k:>6} M={m:<3} {f:<11} cuBLAS {t_ref * 1e6:6.1f}us  " + "  ".join(cells), flush=True)


def dec1b_sweep(out: Path, shapes=BENCH_SHAPES[1:], formats=BENCH_WO) -> None:
    """M = 1: dec1 against its bulk-copy twin dec1b in each variant of dec1b_variants, cuBLAS bf16 in the same
    run; each dec1b output's largest difference from dec1's, relative to dec1's largest output."""
    mod = Module((out / "kernels.cubin").read_bytes())
    print(f"device: {torch.cuda.get_device_name()}")
    for n, k, f, q, inputs in _layers(shapes, formats):
        for m, x, t_ref in inputs((1,)):
            ks = [Dec(w_format=f, mt=1)]
            wts = _rotated(layer_weights(ks, q, k))
            t1 = _time(lambda i: run_layer(mod, ks, x, q, weights=wts[i]), len(wts))
            y1 = run_layer(mod, ks, x, q, weights=wts[0])
            print(f"{n:>6} {k:>6} {f:<11} cuBLAS {t_ref * 1e6:5.1f}us  dec1 {t1 * 1e6:5.1f}us {t_ref / t1:4.2f}x",
                  end="", flush=True)
            for kb in dec1b_variants(f):
                kl = [kb]
                yb = run_layer(mod, kl, x, q, weights=wts[0])
                err = ((yb - y1).abs().max() / y1.abs().max()).item()
                t = _time(lambda i: run_layer(mod, kl, x, q, weights=wts[i]), len(wts))
                print(f"  {kb.name.split('_')[-1]} {t * 1e6:5.1f}us {t_ref / t:4.2f}x e{err:.0e}", end="", flush=True)
            print(flush=True)


def ring_sweep(out: Path, shapes=RING_SHAPES, formats=RING_FORMATS, ms=(1, 16)) -> None:
    """M = 1 and 16: dec1b and decs as selected against their measurement variants (kinds.ring_variants; diag 2:
    the codes as A without decode; diag 3: the weights' stream alone, dec1b's bulk-copy ring with consumers that
    only release each stage, decs' loads with nothing computed; decs's diag 4: no activations staged) and, at
    M = 16, decs summing its K splits in a thread-block cluster instead of dsum and (4-bit weights) with a deeper
    register ring (DECS_RING_TRY K tiles in flight per warp), cuBLAS bf16 in the same run. Each row:
    microseconds, ratio to cuBLAS, TB/s of codes and scales; the largest difference from the kernel's output
    (relative to its largest; the diag variants' are meaningless). Per shape and M, over the formats (their
    bytes differ): the fixed cost and the marginal rate of a line t = fixed + bytes / rate through the first
    and the last format, for the kernel and its stream alone. Rows into DIR/ring.json."""
    mod = Module((out / "kernels.cubin").read_bytes())
    rows = []
    print(f"device: {torch.cuda.get_device_name()}")
    for n, k, f, q, inputs in _layers(shapes, formats):
        for m, x, t_ref in inputs(ms):
            sel = _select(m, f, None, n, k)
            wts = _rotated(layer_weights(sel, q, k))
            nbytes = wts[0]["w"].numel() + wts[0]["w_scales"].numel()
            y0 = run_layer(mod, sel, x, q, weights=wts[0])
            line = f"{n:>6} {k:>6} M={m:<3} {f:<6} cuBLAS {t_ref * 1e6:6.1f}us"
            row = dict(n=n, k=k, m=m, format=f, bytes=nbytes, cublas=t_ref, times={})
            deeper = m > 1 and get_format(f).element.bits == 4  # kinds.ring_variants' deeper rings
            alts = [{"diag": d} for d in (0, *(DECS_DIAGS if m > 1 else DEC1B_DIAGS))] + (
                [{"ring": u} for u in DECS_RING_TRY] if deeper else [])
            twin = decs_cluster_twin(sel[0], k) if m > 1 else None  # decs summing in a cluster, no dsum
            if twin is not None:
                alts.append({"twin": twin})
            for alt in alts:
                ks = [alt["twin"]] if "twin" in alt else [
                    replace(kk, **alt) if kk.kind in ("dec1b", "decs") else kk for kk in sel]
                y = run_layer(mod, ks, x, q, weights=wts[0])
                err = ((y - y0).abs().max() / y0.abs().max()).item()
                t = _time(lambda i, ks=ks: run_layer(mod, ks, x, q, weights=wts[i]), len(wts))
                row["times"][alt["diag"] if "diag" in alt else "cluster" if "twin" in alt else f"u{alt['ring']}"] = t
                label = "+".join(kk.name.removeprefix("mxc_") for kk in ks)
                line += f"\n    {label:<40} {t * 1e6:6.1f}us {t_ref / t:5.2f}x {nbytes / t / 1e12:5.2f} TB/s e{err:.0e}"
            rows.append(row)
            print(line, flush=True)
        if f != formats[-1]:
            continue
        for m in ms:
            here = [r for r in rows if (r["n"], r["k"], r["m"]) == (n, k, m)]
            lo, hi = here[0], here[-1]
            if lo["bytes"] == hi["bytes"]:
                continue
            for diag, what in ((0, "kernel"), (3, "stream alone")):
                rate = (hi["bytes"] - lo["bytes"]) / (hi["times"][diag] - lo["times"][diag])
                fixed = lo["times"][diag] - lo["bytes"] / rate
                print(f"  {n:>6} {k:>6} M={m:<3} {what:<12} fixed {fixed * 1e6:4.1f}us + bytes at "
                      f"{rate / 1e12:4.2f} TB/s ({lo['format']} to {hi['format']})", flush=True)
    (out / "ring.json").write_text(json.dumps(rows, indent=1))


def _alone(mod, ks: list, wts: list[dict[str, torch.Tensor]], x: torch.Tensor, m: int, n: int, k: int) -> dict:
    """Seconds per call of each kernel of a layer's `ks` timed alone (by kind), on the buffers of one run of
    them all, with the rotated weight copies `wts`."""
    bufs = run_kernels(mod, ks, {**wts[0], "x": x}, m, n, k)
    parts = {}
    for ln in layer_launches(ks, m, n, k):
        def one(i, ln=ln):
            have = {**bufs, **wts[i]}
            mod.launch(ln.kernel, ln.grid, [*(have[b.name] for b in ln.kernel.bindings()), *ln.constants])
        parts[ln.kernel.kind] = _time(one, len(wts))
    return parts


RDEC_M = (16, 32, 64, 128, 256, 512, 1024, 2048)


def rdec_sweep(out: Path, shapes=BENCH_SHAPES[1:], ms=RDEC_M, formats=BENCH_WO) -> None:
    """Weight-only: rdec (tilea + rdec [+ dsum], every K split that fits; the selected split's kernels also
    timed alone) against the decode kernels (M <= 16) and cuBLAS bf16 in the same run; MXFP8 x MXFP8 as
    cuda-sm90 selects it. What the target's choices (kinds.rdec_splits, the M where rdec takes over from the
    decode kernels) are made from."""
    mod = Module((out / "kernels.cubin").read_bytes())
    print(f"device: {torch.cuda.get_device_name()}")
    rows = []
    for n, k, f, q, inputs in _layers(shapes, formats):
        dev: dict = {}

        def timed(ks, x):
            key = weight_layout(ks)
            if key not in dev:
                dev[key] = _rotated(layer_weights(ks, q, k))
            wts = dev[key]
            return _time(lambda i: run_layer(mod, ks, x, q, weights=wts[i]), len(wts))

        for m, x, t_ref in inputs(ms):
            other = _select(m, f, None, n, k) if m <= GEMV_MAX_M else None  # the decode kernels
            t_other = timed(other, x) if other else None
            na, times = rdec_na(m), {}
            for s in RDEC_SPLITS:
                if s == 1 or -(-k // 64) // s >= 4:
                    times[s] = timed([TileA(rows=na, perm=True), RDec(w_format=f, na=na, s=s)]
                                     + ([DSum(s=s)] if s > 1 else []), x)
            rd = rdec_kernels(f, False, m, n, k)
            s_auto, now = rd[1].s, _select(m, f, None, n, k)
            # each kernel alone (its weights: those the splits were timed with); tilea is work cuBLAS, handed bf16, skips
            parts = _alone(mod, rd, dev[weight_layout(rd)], x, m, n, k)
            rows.append(dict(N=n, K=k, M=m, format=f, cublas=t_ref, other=other and _label(other), t_other=t_other,
                             rdec_s=s_auto, rdec=times[s_auto], rdec_by_s=times, selected=_label(now), alone=parts))
            dec = f"{_label(other)[4:]:<16} {t_other * 1e6:7.1f}us {t_ref / t_other:5.2f}x  " if other else ""
            print(f"{n:>6} {k:>6} M={m:<4} {f:<10} cuBLAS {t_ref * 1e6:7.1f}us  {dec}rdec s{s_auto} {times[s_auto] * 1e6:7.1f}us "
                  f"{t_ref / times[s_auto]:5.2f}x  (" + " ".join(f"s{s} {t * 1e6:.1f}" for s, t in times.items())
                  + ")  alone: " + " ".join(f"{kk} {t * 1e6:.1f}" for kk, t in parts.items())
                  + f" (rdec {t_ref / parts['rdec']:.2f}x)  selected: {_label(now)[4:]}", flush=True)
            if f in TILEQ_FORMATS:  # the pair f x f as cuda-sm90 selects it
                pair = _select(m, f, f, n, k)
                t_pair = timed(pair, x)
                rows.append(dict(N=n, K=k, M=m, format=f"{f} x {f}", cublas=t_ref, selected=_label(pair),
                                 t_selected=t_pair))
                print(f"{n:>6} {k:>6} M={m:<4} {f} x {f}: {_label(pair)[4:]} {t_pair * 1e6:7.1f}us "
                      f"{t_ref / t_pair:5.2f}x", flush=True)
    (out / "rdec.json").write_text(json.dumps(rows, indent=1))


def rdec_tiles_sweep(out: Path, shapes=BENCH_SHAPES[1:], ms=(64, 128, 256, 512), formats=("nvfp4", "mxfp8")) -> None:
    """rdec at every tile of x (RDEC_NA, up to twice M) and K split: which of them kinds.rdec_na and
    kinds.rdec_splits should pick (the selected one is marked *)."""
    mod = Module((out / "kernels.cubin").read_bytes())
    for n, k, f, q, inputs in _layers(shapes, formats):
        wts = None
        for m, x, t_ref in inputs(ms):
            pick, cells = rdec_kernels(f, False, m, n, k)[1], []
            for na in (v for v in RDEC_NA if v <= 2 * m):
                for s in (v for v in RDEC_SPLITS if v == 1 or -(-k // 64) // v >= 4):
                    ks = [TileA(rows=na, perm=True), RDec(w_format=f, na=na, s=s)] + ([DSum(s=s)] if s > 1 else [])
                    wts = wts or _rotated(layer_weights(ks, q, k))  # one weight layout for every variant
                    t = _time(lambda i: run_layer(mod, ks, x, q, weights=wts[i]), len(wts))
                    cells.append(f"{'*' if (na, s) == (pick.na, pick.s) else ''}n{na} s{s} {t * 1e6:.1f}")
            print(f"{n}x{k} M={m} {f} cuBLAS {t_ref * 1e6:.1f}us: " + "  ".join(cells), flush=True)


def _shapes(arg: str) -> tuple[tuple[int, int], ...]:
    """'NxK,NxK,...' -> ((N, K), ...)."""
    return tuple(tuple(int(v) for v in s.split("x")) for s in arg.split(","))


def _ints(arg: str) -> tuple[int, ...]:
    """'1,16,128' -> (1, 16, 128)."""
    return tuple(int(v) for v in arg.split(","))


def main(argv=None) -> int:
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "model":
        model(Path(argv[1]), Path(argv[2]))
        return 0
    if len(argv) in (5, 6) and argv[0] == "once":
        once(Path(argv[1]), argv[2], int(argv[3]), argv[4], argv[5] if len(argv) == 6 else None)
        return 0
    if len(argv) in (2, 3, 4, 5) and argv[0] == "rdec":  # rdec DIR [NxK,...] [FORMAT,...] [M,...]
        shapes = _shapes(argv[2]) if len(argv) > 2 else None
        rdec_sweep(Path(argv[1]), shapes or BENCH_SHAPES[1:],
                   formats=tuple(argv[3].split(",")) if len(argv) > 3 else BENCH_WO,
                   ms=_ints(argv[4]) if len(argv) > 4 else RDEC_M)
        return 0
    if len(argv) in (5, 6) and argv[0] == "clocks":  # clocks DIR NxK M FORMAT,... [ROUNDS]
        clocks(Path(argv[1]), argv[2], int(argv[3]), tuple(argv[4].split(",")), int(argv[5]) if len(argv) == 6 else 2)
        return 0
    if len(argv) == 2 and argv[0] == "rdec-tiles":
        rdec_tiles_sweep(Path(argv[1]))
        return 0
    if len(argv) in (2, 3) and argv[0] == "dec-rows":  # dec-rows DIR [NxK,...]
        shapes = _shapes(argv[2]) if len(argv) > 2 else None
        dec_rows_sweep(Path(argv[1]), shapes or BENCH_SHAPES)
        return 0
    if len(argv) in (2, 3, 4) and argv[0] == "ring":  # ring DIR [NxK,...] [FORMAT,...]
        ring_sweep(Path(argv[1]), _shapes(argv[2]) if len(argv) > 2 else RING_SHAPES,
                   tuple(argv[3].split(",")) if len(argv) > 3 else RING_FORMATS)
        return 0
    if len(argv) in (2, 3, 4) and argv[0] == "dec1b":  # dec1b DIR [NxK,...] [FORMAT,...]
        shapes = _shapes(argv[2]) if len(argv) > 2 else None
        dec1b_sweep(Path(argv[1]), shapes or BENCH_SHAPES[1:],
                    formats=tuple(argv[3].split(",")) if len(argv) > 3 else BENCH_WO)
        return 0
    if len(argv) >= 2 and argv[0] == "table":  # table JSON...
        try:
            print(table([Path(p) for p in argv[1:]]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"bench_cuda table: {type(e).__name__}: {e} (give the bench-*.json files `bench` wrote)",
                  file=sys.stderr)
            return 2
        return 0
    if len(argv) == 3 and argv[0] == "auto-check":
        auto_check(Path(argv[1]), Path(argv[2]))
        return 0
    if len(argv) == 2 and argv[0] == "iree-matmuls":
        iree_matmuls(Path(argv[1]))
        return 0
    if len(argv) >= 2 and argv[0] == "cost-table":  # cost-table DIR [--out FILE] [--shapes NxK,...]
        opts = dict(zip(argv[2::2], argv[3::2]))
        if len(argv) % 2 or set(opts) - {"--out", "--shapes"}:
            print(__doc__)
            return 2
        cost_table(Path(argv[1]), Path(opts["--out"]) if "--out" in opts else None,
                   _shapes(opts["--shapes"]) if "--shapes" in opts else None)
        return 0
    if len(argv) < 2 or argv[0] not in ("build", "bench", "bench-bs"):
        print(__doc__)
        return 2
    cmd, out = argv[0], Path(argv[1])
    if cmd == "build":
        build(out)
        return 0
    if cmd == "bench-bs":
        bench_bs(out)
        return 0
    ap = argparse.ArgumentParser(prog="python -m mxc.tools.bench_cuda bench DIR")
    ap.add_argument("--shapes", default=",".join(f"{n}x{k}" for n, k in BENCH_SHAPES), help="NxK,...")
    ap.add_argument("--m", default=",".join(map(str, BENCH_M)))
    ap.add_argument("--formats", default=",".join(BENCH_WO))
    ap.add_argument("--no-peers", action="store_true")
    a = ap.parse_args(argv[2:])
    bench(out, _shapes(a.shapes), _ints(a.m), tuple(a.formats.split(",")), not a.no_peers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
