"""mxc's Hopper kernels on the GPU: bit-exactness checks and the benchmark against torch (cuBLAS).

    python -m mxc.tools.bench_cuda build DIR    # here (nvcc): assemble every variant the run needs
    python3 -m mxc.tools.bench_cuda check DIR   # on the H100: decode, gemv, wgmma, actq, qgmma, and the
                                                # block-scaled skeleton's twins (bsq, bsmma, bsdec) vs mxc.numerics
    python3 -m mxc.tools.bench_cuda bench DIR   # on the H100: timings, one process, medians
    python3 -m mxc.tools.bench_cuda bench-bs DIR   # on the H100: the block-scaled skeleton's twin vs cuBLAS
    python3 -m mxc.tools.bench_cuda model ARTIFACT MODEL.py   # on the H100: a cuda-sm90 artifact's forward
                                                              # pass vs torch eager bf16

The kernels are launched with the CUDA driver API (ctypes) on torch's stream, as
IREE launches them: the same cubin, the same parameter order. Timings are CUDA
events around single launches after warm-up; the medians of REPS runs are
reported with the ratio to torch measured in the same process.
"""

from __future__ import annotations

import ctypes
import dataclasses
import importlib
import json
import statistics
import sys
from pathlib import Path

import torch

from mxc.kernels import (AMAX_CTAS, BS_ACT_FORMATS, EPILOGUES, NV_ACT, WEIGHT_FORMATS, Kernel, bf16_width, tiled_sizes,
                         pair_kind, select, tile_weights)
from mxc.kernels.layouts import unswizzle_128x4, untile_codes
from mxc.numerics.elements import decode
from mxc.numerics.formats import NONE

nq = importlib.import_module("mxc.numerics.quantize")  # the package exports a function of that name

CHECK_FORMATS = ("mxfp8", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4", "mxint8",
                 "nvfp4", "nvfp4_4over6", "if4", "nvint4", "fp4_ue5m3")
BENCH_WO = ("mxfp4", "nvfp4", "if4", "mxfp6_e2m3", "mxfp8")
BENCH_SIZES = (4096, 8192)
BENCH_M = (1, 16, 128, 4096)
CHECK_M = (1, 5, 16, 300)
TOL = 2e-6  # |y - ref| <= TOL * sum|x||w|: float32 accumulation order (K ~ 1000)
BS_TOL = 4e-6  # the twin: exact bf16 products (element x scale), float32 sums, tensor scales after
QGMMA_TOL = 3e-5  # Hopper's FP8 wgmma sums a block's 32 products with less than float32 precision
REPS, WARMUP, INNER = 15, 3, 20  # medians of REPS graph replays of INNER calls each
FLUSH_BYTES = 200 << 20  # weights rotate over copies of at least this many bytes: L2 (50 MB) holds none


def _kernels_for_run() -> list[Kernel]:
    ks = [Kernel("gemv", f, mt=16) for f in CHECK_FORMATS]  # decode check (M = K, identity)
    for f in CHECK_FORMATS:
        for m in CHECK_M:
            ks += select(m, f, NONE, True)
    for m in BENCH_M:
        for f in BENCH_WO:
            ks += select(m, f, NONE, False)
        ks += select(m, "mxfp8", "mxfp8", False)
    for a in ("mxfp8", "mxfp8_e5m2"):
        for w in ("mxfp8", "mxfp8_e5m2"):
            ks += select(300, w, a, True)
    # the block-scaled skeleton's Hopper twins: every native pair, and the decode path
    ks += [k for a, w in bs_pairs() for k in _bs_select(a, w)]
    ks += [Kernel("bsq", a_format="bf16")] + [Kernel("bsdec", f, bias=True) for f in WEIGHT_FORMATS]
    return list(dict.fromkeys(ks))


def bs_pairs() -> list[tuple[str, str]]:
    return [(a, w) for a in BS_ACT_FORMATS for w in WEIGHT_FORMATS if pair_kind(a, w) is not None]


def _bs_select(a: str, w: str) -> list[Kernel]:
    """The twin kernels of a native pair (sm_90a), even where cuda-sm90 runs it on QGMMA."""
    from mxc.kernels import select_sm100

    return [dataclasses.replace(k, arch="sm_90a") for k in select_sm100(300, w, a, True)]


def build(out: Path) -> None:
    from mxc.kernels import build as kbuild

    out.mkdir(parents=True, exist_ok=True)
    ks = _kernels_for_run()
    b = kbuild(ks)
    (out / "kernels.cubin").write_bytes(b.cubin)
    (out / "kernels.json").write_text(json.dumps([k.name for k in ks]))
    print(f"{len(ks)} kernels, cubin {len(b.cubin)} bytes -> {out}")


# ---------------------------------------------------------------- the driver API
class Module:
    """A cubin loaded into torch's CUDA context; launch(kernel, grid, args) on torch's stream."""

    def __init__(self, cubin: bytes):
        torch.zeros(1, device="cuda")  # the primary context, current on this thread
        self.cu = ctypes.CDLL("libcuda.so.1")
        self._image = ctypes.create_string_buffer(cubin, len(cubin))
        self.mod = ctypes.c_void_p()
        self._ok(self.cu.cuModuleLoadData(ctypes.byref(self.mod), self._image), "cuModuleLoadData")
        self.fns: dict[str, ctypes.c_void_p] = {}

    def _ok(self, rc: int, what: str) -> None:
        if rc:
            raise RuntimeError(f"{what} failed: CUresult {rc}")

    def fn(self, k: Kernel):
        if k.name not in self.fns:
            f = ctypes.c_void_p()
            self._ok(self.cu.cuModuleGetFunction(ctypes.byref(f), self.mod, k.name.encode()), k.name)
            if k.smem > 48 * 1024:
                self._ok(self.cu.cuFuncSetAttribute(f, 8, ctypes.c_int(k.smem)), "cuFuncSetAttribute")
            self.fns[k.name] = f
        return self.fns[k.name]

    def launch(self, k: Kernel, grid, args) -> None:
        vals = [ctypes.c_void_p(a.data_ptr()) if isinstance(a, torch.Tensor) else ctypes.c_int(a) for a in args]
        ptrs = (ctypes.c_void_p * len(vals))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in vals])
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        self._ok(self.cu.cuLaunchKernel(self.fn(k), *grid, k.threads, 1, 1, k.smem, stream, ptrs, None), k.name)


def _weights(q: nq.QTensor, dev="cuda"):
    ts = q.tensor_scale.reshape(1).float().to(dev) if q.tensor_scale is not None else None
    return q.packed_elements().contiguous().to(dev), q.scales.contiguous().to(dev), ts


def tiled_weights(q: nq.QTensor, ue: int, k: int) -> list[torch.Tensor]:
    """[codes, scales(, tensor scale)] on the GPU, in the tiles bsmma / bsdec read."""
    ts = [q.tensor_scale.reshape(1).float().cuda()] if q.tensor_scale is not None else []
    return [t.cuda() for t in tile_weights(q.elements, q.scales, q.fmt.name, ue, k)] + ts


def quantize_acts(mod: Module, ks: list[Kernel], x: torch.Tensor, fill: int | None = None):
    """Launch a layer's activation kernels ([amax,] bsq) on x [M, K]: (codes, scales, [amax partials]).
    `fill`: the outputs' initial bytes (garbage the kernels must overwrite); uninitialized when None."""
    m, k = x.shape
    q = ks[-1]
    nc, ns = tiled_sizes(q.a_format, q.unit or 8, m, k)
    new = (lambda n: torch.empty(n, device="cuda", dtype=torch.uint8)) if fill is None else (
        lambda n: torch.full((n,), fill, device="cuda", dtype=torch.uint8))
    codes, sc, ats = new(nc), new(max(ns, 16)), []
    for kern in ks:
        if kern.kind == "amax":
            ats = [torch.empty(AMAX_CTAS, device="cuda")]
            mod.launch(kern, kern.grid(m, 0, k), [x, *ats, m, k])
        else:
            mod.launch(kern, kern.grid(m, 0, k), [x, *ats, codes, *([sc] if ns else []), m, k])
    return codes, sc, ats


def run_bs(mod: Module, ks: list[Kernel], x: torch.Tensor, q: nq.QTensor, epilogue="none",
           bias: torch.Tensor | None = None, wts=None) -> torch.Tensor:
    """The block-scaled skeleton: [amax,] bsq, then bsmma / bsdec on tiled weights."""
    m, k = x.shape
    n = q.shape[0]
    main = ks[-1]
    uw = main.units()[1]
    wt, ws, *wts_ = wts or tiled_weights(q, uw, k)
    codes, sc, ats = quantize_acts(mod, ks[:-1], x)
    y = torch.empty(m, n, device="cuda", dtype=torch.float32)
    b = [bias] if bias is not None else []
    a_in = [codes, sc, *ats] if main.kind == "bsmma" else [codes]
    mod.launch(main, main.grid(m, n, k), [*a_in, wt, ws, *wts_, *b, y, m, n, k, EPILOGUES[epilogue]])
    return y


def run_linear(mod: Module, x: torch.Tensor, q: nq.QTensor, a_fmt: str = NONE, epilogue="none",
               bias: torch.Tensor | None = None, wts=None, ks: list[Kernel] | None = None) -> torch.Tensor:
    """y = epilogue(x @ W^T + bias) through the kernels `select` picks (or `ks`); x f32 [M, K] on the GPU."""
    m, k = x.shape
    n = q.shape[0]
    ks = ks or select(m, q.fmt.name, a_fmt, bias is not None)
    assert not isinstance(ks, str), ks
    if ks[-1].kind in ("bsmma", "bsdec"):
        return run_bs(mod, ks, x, q, epilogue, bias, wts)
    w, s, ts = wts or _weights(q)
    y = torch.empty(m, n, device="cuda", dtype=torch.float32)
    b = [bias] if bias is not None else []
    if ks[0].kind == "actq":
        nb = -(-k // 32)
        codes = torch.empty(m, nb * 32, device="cuda", dtype=torch.uint8)
        sc = torch.empty(m, nb, device="cuda", dtype=torch.uint8)
        mod.launch(ks[0], ks[0].grid(m, n, k), [x, codes, sc, m, k])
        mod.launch(ks[1], ks[1].grid(m, n, k), [codes, sc, w, s, *b, y, m, n, k, EPILOGUES[epilogue]])
    else:
        if ks[0].kind == "tobf16":
            xb = torch.empty(m, bf16_width(k), device="cuda", dtype=torch.bfloat16)
            mod.launch(ks[0], ks[0].grid(m, n, k), [x, xb, m, k])
            x, ks = xb, ks[1:]
        kern = ks[0]
        mod.launch(kern, kern.grid(m, n, k), [x, w, s, *([ts] if ts is not None else []), *b, y, m, n, k, EPILOGUES[epilogue]])
    return y


# ---------------------------------------------------------------- checks
def _test_matrix(n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) * torch.exp(torch.randn(n, 1, generator=g))
    w[0, :40] = 0.0  # a zero block
    w[1, :16] = torch.tensor([2.0**-130, -(2.0**-140), 1e-38] * 5 + [0.0])  # subnormals
    w[2, :] *= 1e30
    return w


def _epi(v: torch.Tensor, name: str) -> torch.Tensor:
    if name == "relu":
        return torch.relu(v)
    if name == "gelu":
        return (v * 0.5) * (1 + torch.erf(v * 0.7071067811865476))
    if name == "silu":
        return v / (1 + torch.exp(-v))
    return v


def _close(y: torch.Tensor, ref: torch.Tensor, mag: torch.Tensor, tol: float) -> tuple[bool, float]:
    """|y - ref| <= tol * mag elementwise (mag = |x| @ |W|^T, the sum's scale); worst ratio."""
    err = (y.double().cpu() - ref).abs()
    ratio = (err / (mag * tol + 1e-30)).max().item()
    return ratio <= 1.0, (err / (mag + 1e-30)).max().item()


def check(out: Path) -> int:
    mod = Module((out / "kernels.cubin").read_bytes())
    fails = []

    def report(name, ok, detail):
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
        if not ok:
            fails.append(name)

    for f in CHECK_FORMATS:
        # 1. decode: x = I (M = K), y = W^T exactly: the kernel's weights, bit for bit
        k, n = 96, 40
        w = _test_matrix(n, k, 1)
        q = nq.quantize(w, f)
        ref = q.dequantize(rotated=True)[:, :k]
        eye = torch.eye(k, device="cuda")
        kern = Kernel("gemv", f, mt=16)
        wt, s, ts = _weights(q)
        y = torch.empty(k, n, device="cuda")
        mod.launch(kern, kern.grid(k, n, k), [eye, wt, s, *([ts] if ts is not None else []), y, k, n, k, 0])
        got = y.t().contiguous().cpu()
        same = torch.equal(got, ref)  # equal values (a -0 code reads +0 after the sum with +0 terms)
        report(f"decode {f}", same, f"{n}x{k} weights equal to numerics.dequantize" if same else
               f"{(got != ref).sum().item()} differ, e.g. {got[got != ref][:4].tolist()} vs {ref[got != ref][:4].tolist()}")
        # 2. the linear layer at decode and prefill shapes, K not a multiple of the block
        for m in CHECK_M:
            k, n = 1000, 200
            g = torch.Generator().manual_seed(m)
            w = torch.randn(n, k, generator=g)
            x = torch.randn(m, k, generator=g)
            bias = torch.randn(n, generator=g)
            q = nq.quantize(w, f)
            kind = select(m, f, NONE, True)[-1].kind
            wd = q.dequantize(rotated=True).double()[:, :k]
            if kind == "wgmma":  # bf16 activations, bf16 tiles of element x block scale, tensor scale after
                x_ref, wd = x.bfloat16().double(), _wd_bf16(q, k)
            else:
                x_ref = x.double()
            pre = x_ref @ wd.T
            ref = _epi(pre + bias.double(), "gelu")
            mag = (x_ref.abs() @ wd.abs().T + bias.double().abs())
            y = run_linear(mod, x.cuda(), q, NONE, "gelu", bias.cuda())
            ok, worst = _close(y, ref, mag, TOL)
            report(f"{kind} {f} M={m} K={k} N={n} gelu+bias", ok, f"max |y-ref|/(|x||w|) = {worst:.2e} (tol {TOL:g})")
    # 3. activation quantizer: codes and scales bit-identical to numerics
    for a in ("mxfp8", "mxfp8_e5m2"):
        m, k = 64, 1000
        x = _test_matrix(m, k, 7)
        x[3, 64:96] = float("nan")
        x[4, 96:128] = float("inf")
        x[5, 128:160] = 500.0
        qa = nq.quantize(x, a)
        kern = Kernel("actq", a_format=a)
        nb = -(-k // 32)
        codes = torch.empty(m, nb * 32, device="cuda", dtype=torch.uint8)
        sc = torch.empty(m, nb, device="cuda", dtype=torch.uint8)
        mod.launch(kern, kern.grid(m, 0, k), [x.cuda(), codes, sc, m, k])
        ok = torch.equal(codes.cpu(), qa.elements) and torch.equal(sc.cpu(), qa.scales)
        report(f"actq {a}", ok, "codes and E8M0 scales bit-identical to numerics.quantize" if ok else
               f"{(codes.cpu() != qa.elements).sum().item()} codes, {(sc.cpu() != qa.scales).sum().item()} scales differ")
    # 4. MXFP8 x MXFP8
    for a in ("mxfp8", "mxfp8_e5m2"):
        for f in ("mxfp8", "mxfp8_e5m2"):
            m, k, n = 300, 1000, 200
            g = torch.Generator().manual_seed(3)
            w, x, bias = torch.randn(n, k, generator=g), torch.randn(m, k, generator=g), torch.randn(n, generator=g)
            q, qa = nq.quantize(w, f), nq.quantize(x, a)
            xd, wd = qa.dequantize().double(), q.dequantize().double()
            ref = torch.relu(xd @ wd.T + bias.double())
            mag = xd.abs() @ wd.abs().T + bias.double().abs()
            y = run_linear(mod, x.cuda(), q, a, "relu", bias.cuda())
            ok, worst = _close(y, ref, mag, QGMMA_TOL)
            report(f"qgmma {a} x {f} M={m} K={k} N={n} relu+bias", ok,
                   f"max |y-ref|/(|x||w|) = {worst:.2e} (tol {QGMMA_TOL:g}: FP8 tensor-core block sums)")
    _check_blockscaled(mod, report)
    print(f"{len(fails)} failed" if fails else "all kernel checks passed")
    return 1 if fails else 0


def _wd_bf16(q: nq.QTensor, k: int) -> torch.Tensor:
    """The decoded weights as the skeleton's twin holds them: bf16(element x block scale), tensor scale after."""
    if q.tensor_scale is None:
        bsv = q.scale_values()
    else:
        bsv = decode(q.scales & (0x7F if q.fmt.scale.flag else 0xFF), q.fmt.scale.element)
    vals = q.element_values().unflatten(-1, (-1, q.fmt.block_size)) * bsv.unsqueeze(-1)
    wd = vals.flatten(-2)[:, :k].bfloat16().double()
    return wd * (q.tensor_scale.double() if q.tensor_scale is not None else 1)


def _check_blockscaled(mod: Module, report) -> None:
    """The block-scaled skeleton (mxc_bs.cuh) with its sm_90a atom: the code the sm_100a kernels share."""
    # 5. bsq: tiled codes and 128x4 scales bit-identical to numerics.quantize (NaN, Inf, saturation, K % 128)
    xs = _test_matrix(200, 1000, 7)
    xs[3, 64:96] = float("nan")
    xs[4, 96:128] = float("inf")
    xs[5, 128:160] = 500.0
    g = torch.Generator().manual_seed(8)
    for x, a in [(xs, a) for a in BS_ACT_FORMATS] + [(torch.randn(64, 704, generator=g), a) for a in NV_ACT]:
        m, k = x.shape
        w_for = "nvfp4" if a == "nvfp4" else a
        ks = _bs_select(a, w_for)[:-1]
        kind = pair_kind(a, w_for)
        qa = nq.quantize(x, a)
        for ue in sorted({16, 32} if a == "mxfp4" else {ks[-1].unit}):  # MXFP4: packed and unpacked tiles
            ks = [dataclasses.replace(kk, unit=ue) if kk.kind == "bsq" else kk for kk in ks]
            codes, sc, ats = quantize_acts(mod, ks, x.cuda(), fill=0xAB)  # garbage: padding must be written
            got_c = untile_codes(codes.cpu(), m, qa.elements.shape[1], qa.fmt.element.bits, ue)
            bs = qa.fmt.block_size
            kp = -(-k // 128) * 128
            got_s = unswizzle_128x4(sc.cpu().reshape(-1, kp // bs // 4, 512), m, kp // bs)[:, :qa.scales.shape[1]]
            ok = torch.equal(got_c, qa.elements) and torch.equal(got_s, qa.scales)
            detail = "tiled codes and 128x4 scales bit-identical to numerics.quantize" if ok else (
                f"{(got_c != qa.elements).sum().item()} codes, {(got_s != qa.scales).sum().item()} scales differ; "
                f"first rows {torch.nonzero(got_s != qa.scales)[:3].tolist()}: {got_s[got_s != qa.scales][:6].tolist()} "
                f"vs {qa.scales[got_s != qa.scales][:6].tolist()}")
            if ok and ats:  # the partial maxima: their max is the finite amax numerics scales by
                finite = x.abs()[torch.isfinite(x)]
                ok = ats[0].max().item() == finite.max().item()
                detail += f"; amax {ats[0].max().item():.6g} vs {finite.max().item():.6g}"
            report(f"bsq {a} {m}x{k} (units of {ue}, kind::{['f16', 'mxf8f6f4', 'mxf4', 'mxf4nvf4'][kind]})", ok, detail)
    # 6. bsmma twins: every native pair, K not a multiple of 128, M and N not of the tile
    for a, w in bs_pairs():
        m, k, n = 300, 1000, 200
        g = torch.Generator().manual_seed(5)
        wm, x, bias = torch.randn(n, k, generator=g), torch.randn(m, k, generator=g), torch.randn(n, generator=g)
        q, qa = nq.quantize(wm, w), nq.quantize(x, a)
        xd, wd = qa.dequantize().double()[:, :k], q.dequantize().double()[:, :k]
        ref = _epi(xd @ wd.T + bias.double(), "silu")
        mag = xd.abs() @ wd.abs().T + bias.double().abs()
        y = run_linear(mod, x.cuda(), q, a, "silu", bias.cuda(), ks=_bs_select(a, w))
        ok, worst = _close(y, ref, mag, BS_TOL)
        report(f"bsmma twin {a} x {w} M={m} K={k} N={n} silu+bias", ok,
               f"max |y-ref|/(|x||w|) = {worst:.2e} (tol {BS_TOL:g})")
    # 7. bsdec twins: bf16 activations x every weight format, decoded in shared memory
    for f in WEIGHT_FORMATS:
        m, k, n = 300, 1000, 200
        g = torch.Generator().manual_seed(6)
        wm, x, bias = torch.randn(n, k, generator=g), torch.randn(m, k, generator=g), torch.randn(n, generator=g)
        q = nq.quantize(wm, f)
        xd, wd = x.bfloat16().double(), _wd_bf16(q, k)
        ref = _epi(xd @ wd.T + bias.double(), "relu")
        mag = xd.abs() @ wd.abs().T + bias.double().abs()
        y = run_linear(mod, x.cuda(), q, NONE, "relu", bias.cuda(),
                       ks=[Kernel("bsq", a_format="bf16"), Kernel("bsdec", f, bias=True)])
        ok, worst = _close(y, ref, mag, BS_TOL)
        report(f"bsdec twin {f} M={m} K={k} N={n} relu+bias", ok, f"max |y-ref|/(|x||w|) = {worst:.2e} (tol {BS_TOL:g})")


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
        qs = {f: nq.quantize(w, f) for f in BENCH_WO}
        one_copy = {f: _weights(q) for f, q in qs.items()}
        dev = {}
        for f, wts in one_copy.items():
            c = _copies(wts[0].numel() + wts[1].numel())
            dev[f] = [wts] + [tuple(None if v is None else v.clone() for v in wts) for _ in range(c - 1)]
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
                q = qs[f]
                wts = dev[f]
                kind = select(m, f, NONE, False)[-1].kind
                t = _time(lambda i: run_linear(mod, x, q, NONE, wts=wts[i]), len(wts))
                nbytes = wts[0][0].numel() + wts[0][1].numel()
                rows.append(dict(K=kn, N=kn, M=m, what=f"mxc {kind} {f} weight-only", s=t, ratio=t_ref / t,
                                 gbs=nbytes / t / 1e9, tflops=flops / t / 1e12))
            q8 = qs["mxfp8"]
            w8s = dev["mxfp8"]
            t = _time(lambda i: run_linear(mod, x, q8, "mxfp8", wts=w8s[i]), len(w8s))
            rows.append(dict(K=kn, N=kn, M=m, what="mxc actq+qgmma mxfp8 x mxfp8", s=t, ratio=t_ref / t,
                             gbs=(w8s[0][0].numel() + w8s[0][1].numel()) / t / 1e9, tflops=flops / t / 1e12))
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
        q = nq.quantize(w, f)
        ks = _bs_select(a, f)
        tiled = tiled_weights(q, ks[-1].units()[1], kn)
        copies = [tiled] + [[t.clone() for t in tiled] for _ in range(_copies(sum(t.numel() for t in tiled)) - 1)]
        zero = torch.zeros(kn, device="cuda")  # the twins in the run's cubin are the bias variants
        t = _time(lambda i: run_linear(mod, x, q, a, bias=zero, wts=copies[i], ks=ks), len(copies))
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
    if len(argv) != 2 or argv[0] not in ("build", "check", "bench", "bench-bs"):
        print(__doc__)
        return 2
    cmd, out = argv[0], Path(argv[1])
    if cmd == "build":
        build(out)
        return 0
    if cmd == "bench-bs":
        bench_bs(out)
        return 0
    return check(out) if cmd == "check" else (bench(out) or 0)


if __name__ == "__main__":
    sys.exit(main())
