"""The targets: registry, kernel selection per target, format paths derived from it, a layer's launches."""

from __future__ import annotations

import pytest

from mxc.kernels import Kernel, layer_launches
from mxc.kernels.launches import layer_path
from mxc.kernels.kinds import (DEC1B_KMAX, Amax, BsDec, BsMma, BsQ, Dec, Dec1B, DecSplit, DSum, Gemv,
                               RDec, TileA, TileQ, dec1b_kernel, decs_splits, decs_wide_split)
from mxc.numerics.options import FormatSpec
from mxc.targets import TARGET_NAMES, GemmLayer, UnknownTargetError, by_device, get_target, support_table

SM100 = "sm_100a"


def sel(m: int, w: str, a: str | None = None, bias: bool = False, target: str = "cuda-sm90"):
    """The kernels `target` selects for an [m, K] x [N, K]^T layer, or its reason string."""
    acts = FormatSpec.parse(a) if a else None
    return get_target(target).select(GemmLayer("fc", m, FormatSpec.parse(w), acts, bias))


def test_registry():
    assert TARGET_NAMES == ("cpu", "cuda-sm90", "cuda-sm100")
    assert [get_target(n).name for n in TARGET_NAMES] == list(TARGET_NAMES)
    assert by_device("cuda").name == "cuda-sm90" and by_device("cpu").name == "cpu" and by_device("rocm") is None
    assert get_target("cuda-sm100").device is None and "Blackwell" in get_target("cuda-sm100").not_runnable
    with pytest.raises(UnknownTargetError, match="unknown target 'rocm': valid targets are cpu, cuda-sm90, cuda-sm100"):
        get_target("rocm")


def test_sm90_select_by_shape_and_format():
    assert sel(1, "mxfp4") == [Dec(w_format="mxfp4", mt=1)]
    assert sel(2, "mxfp4") == [Dec(w_format="mxfp4", mt=8)]
    assert sel(9, "nvfp4", bias=True) == [Dec(w_format="nvfp4", bias=True, mt=16)]
    assert sel(16, "if4") == [Dec(w_format="if4", mt=16)]
    # past decode shapes: bf16 activation tiles (K permuted as the fragment tiles), weights decoded in
    # registers by rdec's consumer warps, wgmma with A from registers; 32 rows of x per CTA
    assert sel(17, "mxfp6_e2m3") == [TileA(rows=32, perm=True), RDec(w_format="mxfp6_e2m3", na=32)]
    # prefill shapes too (rdec measured faster than the prefill path it replaced): 256 rows of x
    assert sel(2048, "nvfp4", bias=True) == [TileA(rows=256, perm=True), RDec(w_format="nvfp4", na=256, bias=True)]
    assert sel(4096, "mxfp4") == [TileA(rows=256, perm=True), RDec(w_format="mxfp4", na=256)]
    # N known (the legalize pass passes it): as many 16-row weight tiles per dec CTA as leave 200 CTAs
    def wide(m, w, n, k=None, bias=False):
        return get_target("cuda-sm90").select(GemmLayer("fc", m, FormatSpec.parse(w), None, bias, n, k or n))

    assert wide(4, "nvfp4", 14336) == [Dec(w_format="nvfp4", mt=8, r=4)]
    assert wide(16, "nvfp4", 14336, 512) == [Dec(w_format="nvfp4", mt=16, r=2)]  # two n8 tiles: at most 2
    assert wide(4, "mxfp4", 8192, 512) == [Dec(w_format="mxfp4", mt=8, r=2)]
    assert wide(16, "mxfp8", 14336, 512) == [Dec(w_format="mxfp8", mt=16, r=2)]  # 8-bit codes: at most 2
    assert wide(16, "mxfp6_e2m3", 14336, 512) == [Dec(w_format="mxfp6_e2m3", mt=16, r=2)]  # FP6's integer decode: 2
    assert wide(16, "mxint8", 14336, 512) == [Dec(w_format="mxint8", mt=16, r=2)]  # MXINT8's integer decode: 2
    assert wide(16, "nvint4", 14336, 512) == [Dec(w_format="nvint4", mt=16, r=2)]  # NVINT4's table decode: 2
    assert wide(4, "if4", 14336, 512) == [Dec(w_format="if4", mt=8, r=2)]  # IF4's tables: at most 2
    assert wide(16, "if4", 14336, 4096) == [DecSplit(w_format="if4", mt=16, s=3, kt=24, warps=24), DSum(s=3)]
    assert wide(16, "nvfp4", 1024) == [Dec(w_format="nvfp4", mt=16)]
    # M = 1: dec1b (bulk copies into shared memory) where K <= DEC1B_KMAX (x staged whole); else dec1
    assert wide(1, "nvfp4", 8192) == [Dec1B(w_format="nvfp4")] == [dec1b_kernel("nvfp4")]
    assert wide(1, "if4", 4096, 14336, bias=True) == [dec1b_kernel("if4", bias=True)]
    assert wide(1, "nvfp4", 1024, DEC1B_KMAX + 64) == [Dec(w_format="nvfp4", mt=1)]  # x staged whole: K bounded
    assert wide(1, "mxfp4", 8192) == [dec1b_kernel("mxfp4")]
    unknown_k = GemmLayer("fc", 1, FormatSpec.parse("nvfp4"), None, False, 8192, 0)
    assert get_target("cuda-sm90").select(unknown_k) == [Dec(w_format="nvfp4", mt=1)]  # dec1 takes any K
    assert wide(16, "nvfp4", 8192, 512)[0].name == "mxc_dec_nvfp4_m16_r2"
    # N x K >= 4096^2 with an integer decode: K split across CTAs (decs), preferring a split that fills one wave with
    # more CTAs (3 per SM where a CTA's K range fits 24 tiles: `_k24`); 1 or 2 splits sum in a thread-block cluster
    # (the bias decs's), more write partial sums that dsum adds (with the bias). At M > 8 the wide CTA (24 warps, one
    # per SM: one staging of x for 24 row tiles) where a one-wave split keeps >= DECS_WIDE_MIN_CTAS SMs busy
    assert wide(16, "nvfp4", 8192, bias=True) == [DecSplit(w_format="nvfp4", mt=16, s=6, kt=24, warps=24),
                                                  DSum(s=6, bias=True)]
    assert wide(4, "mxfp4", 4096, 14336) == [DecSplit(w_format="mxfp4", mt=8, s=12, kt=24), DSum(s=12)]  # M <= 8: 8
    assert wide(16, "mxfp4", 4096, 14336) == [DecSplit(w_format="mxfp4", mt=16, s=12, kt=24, warps=24), DSum(s=12)]
    assert wide(16, "mxfp8", 14336, 4096) == [DecSplit(w_format="mxfp8", mt=16, s=3, kt=24, warps=24), DSum(s=3)]
    assert wide(16, "nvfp4", 4096) == [DecSplit(w_format="nvfp4", mt=16, s=8), DSum(s=8)]  # wide: 44 CTAs at most
    assert decs_wide_split(8192, 8192) == 6 and decs_wide_split(4096, 4096) is None
    assert wide(16, "nvfp4", 28672, 4096, bias=True) == [DecSplit(w_format="nvfp4", mt=16, s=2, cluster=True,
                                                                  bias=True)]  # no one-wave split: 448 CTAs
    assert wide(16, "nvfp4", 32768, 2048) == [DecSplit(w_format="nvfp4", mt=16, s=1, cluster=True)]  # no split
    k24 = wide(4, "mxfp4", 4096, 14336)[0]
    assert k24.name == "mxc_decs_mxfp4_m8_s12_k24" and k24.ctas_per_sm == 3 and k24.smem == 24 * 8 * 144
    assert k24.threads == 256 and k24.grid(4, 4096, 14336) == (32, 1, 12)
    w24 = wide(16, "nvfp4", 8192)[0]
    assert w24.name == "mxc_decs_nvfp4_m16_s6_k24_w24" and w24.ctas_per_sm == 1 and w24.smem == 24 * 16 * 144
    assert w24.threads == 768 and w24.grid(16, 8192, 8192) == (22, 1, 6)  # 132 CTAs
    assert "mxc::decs<F_nvfp4, 16, 1, 6, 4, 24, false, false, 0, 24>(" in w24.call()
    assert wide(16, "nvfp4", 28672, 4096)[0].cluster_dims == (1, 1, 2)
    assert wide(16, "nvfp4", 8192)[0].cluster_dims is None
    assert decs_splits(8192, 8192) == (6, 24) and decs_splits(4096, 40000) == (16, 48)  # 40000: no one-wave split
    assert decs_splits(4096, 4096) == (8, 48)  # a one-wave split would leave a CTA 6 K tiles (< DECS_MIN_TILES)
    with pytest.raises(ValueError, match="at most 8 K splits in a cluster"):  # the portable cluster size
        DecSplit(w_format="nvfp4", s=12, cluster=True)
    assert DecSplit(w_format="nvfp4", s=8, cluster=True).cluster_dims == (1, 1, 8)  # built, not selected
    with pytest.raises(ValueError, match="bias is dsum"):
        DecSplit(w_format="nvfp4", s=4, bias=True)
    with pytest.raises(ValueError, match="8 or 24 warps per CTA"):
        DecSplit(w_format="nvfp4", s=4, warps=16)
    with pytest.raises(ValueError, match="a cluster: 8"):
        DecSplit(w_format="nvfp4", s=2, cluster=True, warps=24)
    assert wide(4, "nvfp4", 14336, 4096) == [Dec(w_format="nvfp4", mt=8, r=4)]  # dec at 4 row tiles: faster
    assert wide(16, "nvfp4", 4096, 60000) == [Dec(w_format="nvfp4", mt=16)]  # K past 16 x 48 tiles of 64
    # rdec splits K across CTAs until 100 CTAs (64 of 128 weight rows at 8192^2, M = 64: 2 splits), the bias dsum's;
    # 112 CTAs need no split, at 256 rows of x per CTA too; K keeps 4 tiles of 64 per split
    assert wide(64, "nvfp4", 8192, bias=True) == [TileA(rows=64, perm=True), RDec(w_format="nvfp4", na=64, s=2),
                                                  DSum(s=2, bias=True)]
    assert wide(128, "nvfp4", 14336, 4096)[1] == RDec(w_format="nvfp4", na=128, s=1)
    assert wide(200, "nvfp4", 14336, 4096)[1] == RDec(w_format="nvfp4", na=256, s=1)
    assert wide(512, "nvfp4", 4096, 14336)[1:] == [RDec(w_format="nvfp4", na=256, s=2), DSum(s=2)]  # 64 CTAs
    assert wide(100, "if4", 512, 512, bias=True) == [TileA(rows=128, perm=True), RDec(w_format="if4", na=128, s=2),
                                                     DSum(s=2, bias=True)]
    assert wide(100, "if4", 512, 200, bias=True)[1] == RDec(w_format="if4", na=128, bias=True)  # 4 K tiles: no split
    # MXFP8 x MXFP8: the activations MX-quantized into bf16 tiles (exact), then the weight-only kernels
    assert sel(4096, "mxfp8", "mxfp8", True) == [TileQ(a_format="mxfp8", rows=256, perm=True),
                                                 RDec(w_format="mxfp8", na=256, bias=True)]
    assert sel(1, "mxfp8_e5m2", "mxfp8") == [TileQ(a_format="mxfp8", rows=16, perm=True),
                                             RDec(w_format="mxfp8_e5m2", na=16)]
    # other native pairs: the block-scaled skeleton's Hopper twin
    assert sel(128, "mxfp4", "mxfp4") == [BsQ(a_format="mxfp4", unit=32), BsMma(w_format="mxfp4", a_format="mxfp4")]
    assert sel(8, "nvfp4_4over6", "nvfp4", True) == [
        Amax(a_format="nvfp4"), BsQ(a_format="nvfp4", unit=32),
        BsMma(w_format="nvfp4_4over6", a_format="nvfp4", bias=True)]
    why = sel(128, "mxint8", "mxint8")
    assert isinstance(why, str) and "mxint8 activations x mxint8 weights have no cuda-sm90 kernel" in why
    # the activation quantizers implement the default options only
    assert "implements scale_rule=floor, rounding=rne (not mxfp8{rounding=stochastic,seed=1})" in \
        sel(128, "mxfp8", "mxfp8{rounding=stochastic,seed=1}")
    assert "implements error_metric=mse" in sel(128, "nvfp4", "nvfp4_4over6{error_metric=mae}")


def test_sm100_select_native_pairs_and_decode_path():
    s = lambda m, w, a=None, b=False: sel(m, w, a, b, "cuda-sm100")  # noqa: E731
    assert s(4096, "mxfp4", "mxfp4") == [BsQ(a_format="mxfp4", unit=32, arch=SM100),
                                         BsMma(w_format="mxfp4", a_format="mxfp4", arch=SM100)]
    # a mixed pair of kind::mxf8f6f4: FP4 unpacked, 16 per 16-byte unit
    assert s(4096, "mxfp4", "mxfp6_e3m2")[0] == BsQ(a_format="mxfp6_e3m2", unit=16, arch=SM100)
    assert BsMma(w_format="mxfp4", a_format="mxfp6_e3m2", arch=SM100).units() == (16, 16)
    assert [k.kind for k in s(4096, "nvfp4_4over6", "nvfp4", True)] == ["amax", "bsq", "bsmma"]
    # weight-only: gemv at decode shapes, bf16 x decoded weights on kind::f16 otherwise
    assert s(3, "if4") == [Gemv(w_format="if4", mt=4, arch=SM100)]
    assert s(17, "mxint8") == [BsQ(a_format="bf16", arch=SM100), BsDec(w_format="mxint8", arch=SM100)]
    why = s(128, "mxint8", "mxint8")
    assert isinstance(why, str) and "no block-scaled tcgen05 kind" in why


def test_layer_paths_in_words():
    assert sel(4096, "nvfp4", "nvfp4", target="cuda-sm100")[-1].path == "native: tcgen05.mma kind::mxf4nvf4.block_scale"
    assert sel(4096, "mxfp4", "mxfp4")[-1].path == "twin of kind::mxf4: decoded to bf16, wgmma"
    assert sel(4096, "if4", target="cuda-sm100")[-1].path.startswith("decode:")
    assert layer_path(sel(4096, "mxfp8", "mxfp8")).startswith("mxfp8 activations quantized, held as bf16 tiles")
    assert layer_path(sel(64, "nvfp4")).startswith("decode: weights to bf16 in registers")


@pytest.mark.parametrize("fmt, target, path", [
    ("if4", "cpu", "emulated"), ("mxfp8", "cuda-sm90", "mxfp8 activations quantized, held as bf16 tiles (exact)"),
    ("mxfp4", "cuda-sm90", "twin of kind::mxf4"), ("mxfp6_e3m2", "cuda-sm100", "native: tcgen05.mma kind::mxf8f6f4"),
    ("nvfp4_4over6", "cuda-sm100", "kind::mxf4nvf4"), ("mxint8", "cuda-sm100", "decode path, weight-only"),
    ("if4", "cuda-sm90", "decode path, weight-only: weights to bf16 in registers, warp-specialized wgmma"),
])
def test_format_paths_come_from_selection(fmt, target, path):
    rows = {r["name"]: r for r in support_table()}
    assert path in rows[fmt]["paths"][target]


def test_kernels_round_trip_as_data():
    for k in (Gemv(w_format="nvfp4", bias=True, mt=4), RDec(w_format="if4", na=64, s=4), BsQ(a_format="mxfp4", unit=32, arch=SM100),
              BsMma(w_format="nvfp4_4over6", a_format="nvfp4", bias=True)):
        assert Kernel.from_dict(k.to_dict()) == k
    with pytest.raises(ValueError, match="does not match its fields"):
        Kernel.from_dict({**Gemv(w_format="mxfp4", mt=4).to_dict(), "name": "mxc_gemv_mxfp4_m16"})
    with pytest.raises(ValueError, match="unknown kernel kind 'gemm'"):
        Kernel.from_dict({"kind": "gemm"})


def test_layer_launches_connect_by_buffer_name():
    """amax -> bsq -> bsmma: each reads what an earlier one wrote; shapes from the kinds, grids from Kernel.grid."""
    ks = sel(300, "nvfp4", "nvfp4", True)
    amax, bsq, mma = layer_launches(ks, 300, 200, 1000, "gelu")
    assert amax.reads == ("x",) and [o.name for o in amax.writes] == ["a_tensor_scale"] and amax.grid == (128, 1, 1)
    assert bsq.reads == ("x", "a_tensor_scale") and [o.name for o in bsq.writes] == ["a", "a_scales"]
    assert bsq.writes[0].shape == (384 * 1024 // 2,) and bsq.writes[1].shape == (384 * 1024 // 16,)
    assert mma.reads == ("a", "a_scales", "a_tensor_scale", "w", "w_scales", "w_tensor_scale", "bias")
    assert mma.constants == (300, 200, 1000, 2) and mma.grid == (2, 3, 1) and mma.writes[0].shape == (300, 200)
    # tilea's tiles padded to rdec's 256 rows of x and 64 K; 18 CTAs, so four K splits (of 16 K tiles), dsum
    # adding them with the bias and the epilogue
    layer = GemmLayer("fc", 2100, FormatSpec.parse("nvfp4"), None, True, 200, 1000)
    tilea, rdec, dsum = layer_launches(get_target("cuda-sm90").select(layer), 2100, 200, 1000, "gelu")
    assert tilea.writes[0].dtype == "bf16" and tilea.writes[0].shape == (2304, 1024) and tilea.grid == (1152, 1, 1)
    assert rdec.reads == ("a", "w", "w_scales", "w_tensor_scale") and rdec.grid == (2, 9, 4)
    assert [o.shape for o in rdec.writes] == [(4, 2100, 200)] and dsum.reads == ("ws", "bias")
    layer = GemmLayer("fc", 64, FormatSpec.parse("mxfp4"), None, True, 4096, 4096)
    tilea, rdec, dsum = layer_launches(get_target("cuda-sm90").select(layer), 64, 4096, 4096)
    assert rdec.kernel.s == 4 and rdec.grid == (32, 1, 4) and [o.shape for o in rdec.writes] == [(4, 64, 4096)]
    assert rdec.reads == ("a", "w", "w_scales") and tilea.writes[0].shape == (64, 4096) and tilea.grid == (128, 1, 1)
    assert dsum.reads == ("ws", "bias")
    with pytest.raises(ValueError, match="reads \\['a', 'a_scales', 'a_tensor_scale'\\], which no earlier kernel"):
        layer_launches(ks[-1:], 300, 200, 1000)


def test_benchmark_aims_name_the_rows_the_benchmark_writes():
    """`bench_cuda bench`'s aims find their rows by column (format, weight-only or the pair): each weight-only
    aim's columns are rows `bench` writes, whatever kernels cuda-sm90 selects for the shape (a renamed or newly
    selected kernel once dropped an aim from the summary, as dec1b at M = 1 did); every aim at the three shapes."""
    from mxc.tools.bench_cuda import AIMS, BENCH_WO, _column, _select, _what

    for label, n, k, m, cols, _ in AIMS:
        for col in cols:
            fmt, _, act = col.removesuffix(" weight-only").partition(" x ")
            what = _what(_select(m, fmt, act or None, n, k), fmt, act or None)
            assert fmt in BENCH_WO and _column(what)[0] == col, label
    assert len({(n, k) for _, n, k, *_ in AIMS}) == 3 and len(AIMS) == 3 * 7


def test_benchmark_table_from_the_runs_json(tmp_path):
    """`bench_cuda table JSON...`: the README's tables from bench's rows: per shape a row per M with cuBLAS bf16's
    time and each path's ratio (time, kernels); a later file's row replaces an earlier one's; the aims met or
    missed by how much, and the M = 1 8192^2 aim's rule of being ahead of every peer."""
    import json

    from mxc.tools.bench_cuda import main, table

    def rows(ratio, peer):
        base = dict(N=8192, K=8192, M=1, device="NVIDIA H200", gbs=0.0, tflops=0.0)
        return [{**base, "what": "torch bf16 linear (cuBLAS)", "s": 34e-6, "ratio": 1.0},
                {**base, "what": "torch int4 weight-only (g128)", "s": 34e-6 / peer, "ratio": peer},
                {**base, "what": "mxc dec1b nvfp4 weight-only", "s": 34e-6 / ratio, "ratio": ratio},
                {**base, "what": "mxc dec1b if4 weight-only", "s": 20e-6, "ratio": 1.7}]

    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(rows(1.5, 1.6)))
    second.write_text(json.dumps(rows(2.2, 2.0)[1:]))  # no cuBLAS row: the first file's stays
    assert main(["table", str(first)]) == 0
    one = table([first])
    assert one.startswith("NVIDIA H200; 1 run(s)") and "do not compare" not in one
    assert "| M | cuBLAS bf16 | torch int4 weight-only (g128) | nvfp4 weight-only | if4 weight-only |" in one
    assert "| 1 | 34.0 us | 1.60x (21.2 us) | 1.50x (22.7 us, dec1b) | 1.70x (20.0 us, dec1b) |" in one
    assert ("| 4-bit weight-only M=1 K=N=8192 | >= 2.0x | nvfp4 weight-only 1.50x, if4 weight-only 1.70x; best peer "
            "torch int4 weight-only (g128) 1.60x | missed: nvfp4 weight-only by 25.0 %, if4 weight-only by 15.0 %; not "
            "ahead of torch int4 weight-only (g128) (1.60x): nvfp4 weight-only |") in one
    two = table([first, second])
    assert "| 1 | 34.0 us | 2.00x (17.0 us) | 2.20x (15.5 us, dec1b) | 1.70x (20.0 us, dec1b) |" in two
    assert ("missed: if4 weight-only by 15.0 %; not ahead of torch int4 weight-only (g128) (2.00x): "
            "if4 weight-only |") in two
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["table", str(tmp_path / "bad.json")]) == 2 and main(["table", str(tmp_path / "none.json")]) == 2
    h100 = [{**r, "device": "NVIDIA H100 80GB HBM3"} for r in rows(2.2, 2.0)]
    first.write_text(json.dumps(h100))
    assert "the aims are set on the H200: ratios do not compare" in table([first])


def test_benchmark_aims_say_when_the_card_is_not_the_h200(capsys):
    """The aims are ratios measured on the H200; a summary printed on another card says so (an H100's cuBLAS is
    slower, so its ratios run higher), and still reports what the row measured."""
    from mxc.tools.bench_cuda import _aims

    rows = [{"N": 8192, "K": 8192, "M": 1, "what": "torch bf16 linear (cuBLAS)", "ratio": 1.0},
            {"N": 8192, "K": 8192, "M": 1, "what": "mxc dec1b nvfp4 weight-only", "ratio": 2.1}]
    _aims(rows, "NVIDIA H100 80GB HBM3")
    h100 = capsys.readouterr().out
    assert "this ran on NVIDIA H100 80GB HBM3: ratios do not compare" in h100
    assert "[mxc dec1b nvfp4 weight-only]: 2.10x (aim 2.0x) met" in h100
    _aims(rows, "NVIDIA H200")
    assert "do not compare" not in capsys.readouterr().out


_BENCH_STOPPED = """
import sys, time
from pathlib import Path
import torch
from mxc.tools import bench_cuda as b
torch.cuda.get_device_name = lambda *_: "NVIDIA H200"
b.Module = lambda data: None
def rows(mod, shapes, ms, formats, peers, row):
    row(8192, 8192, 1, "torch bf16 linear (cuBLAS)", 34e-6, 34e-6, 2 * 8192 * 8192)
    row(8192, 8192, 1, "mxc dec1b nvfp4 weight-only", 15e-6, 34e-6, 8192 * 8192 // 2)
    print("measured", flush=True)
    time.sleep(120)
b._bench_rows = rows
b.bench(Path(sys.argv[1]), shapes=((8192, 8192), (4096, 4096)), ms=(1,), peers=False)
"""


def test_benchmark_stopped_by_its_time_limit_keeps_what_it_measured(tmp_path):
    """`timeout S python -m mxc.tools.bench_cuda bench ...` (a device call's steps run so): on SIGTERM the rows
    measured so far are still written (bench-*.json) and scored against the aims."""
    import json
    import signal
    import subprocess
    import sys

    (tmp_path / "kernels.cubin").write_bytes(b"")
    proc = subprocess.Popen([sys.executable, "-c", _BENCH_STOPPED, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("device: NVIDIA H200")
    while "measured" not in (line := proc.stdout.readline()):
        assert line, "the benchmark ended before it was stopped"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 124
    assert "4-bit weight-only M=1 K=N=8192 [mxc dec1b nvfp4 weight-only]: 2.27x (aim 2.0x) met" in out
    rows = json.loads((tmp_path / "bench-8192x8192-4096x4096-m1.json").read_text())
    assert [r["what"] for r in rows] == ["torch bf16 linear (cuBLAS)", "mxc dec1b nvfp4 weight-only"]


def test_clocks_reads_the_sm_clock_and_the_power_cap_of_each_timed_phase():
    """`bench_cuda clocks`: nvidia-smi's samples assigned to the phases they fall in (local time, as
    time.time()); mean clock, peak power, the power-cap bit, cycles = time x clock; no sample -> None."""
    import datetime

    from mxc.tools.bench_cuda import _clock_phases

    t0 = datetime.datetime(2026, 12, 6, 4, 0, 0).timestamp()
    stamp = lambda dt: datetime.datetime.fromtimestamp(t0 + dt).strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]  # noqa: E731
    lines = [f"{stamp(0.1)}, 1980 MHz, 120.50 W, 0x0000000000000000",
             f"{stamp(1.1)}, 1600 MHz, 690.00 W, 0x0000000000000004",
             f"{stamp(1.2)}, 1620 MHz, 700.00 W, 0x0000000000000004",
             f"{stamp(2.1)}, 1500 MHz, 695.00 W, 0x0000000000000004",
             "not a sample line"]
    phases = [("nvfp4", t0 + 1.0, t0 + 1.5, 830e-6), ("if4", t0 + 2.0, t0 + 2.5, 880e-6),
              ("idle", t0 + 3.0, t0 + 3.5, 1e-6)]
    a, b, c = _clock_phases("\n".join(lines), phases)
    assert a["mhz"] == 1610 and a["watts"] == 700 and a["capped"] and a["mcycles"] == pytest.approx(830e-6 * 1610)
    assert b["mhz"] == 1500 and b["mcycles"] == pytest.approx(880e-6 * 1500)
    assert c["mhz"] is None and c["mcycles"] is None and c["capped"] is None


_FAKE_SMI = """#!/usr/bin/env python3
import datetime, sys, time
while True:
    now = datetime.datetime.now().strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]
    print(f"{now}, 1500 MHz, 695.00 W, 0x0000000000000004", flush=True)
    time.sleep(0.01)
"""

_CLOCKS_RUN = """
import sys, time
from pathlib import Path
import torch
from mxc.tools import bench_cuda as b
torch.cuda.get_device_name = lambda *_: "NVIDIA H200"
torch.Tensor.cuda = lambda self, *a, **k: self
b.Module = lambda data: None
b._layer = lambda n, k: (torch.Generator().manual_seed(0), torch.randn(n, k), [])
b._cublas_time = lambda x, wb: (time.sleep(0.1), 800e-6)[1]
b._time = lambda fn, copies: (time.sleep(0.1), 850e-6)[1]
b.layer_weights = lambda ks, q, k: {}
b._rotated = lambda w: [w]
b.clocks(Path(sys.argv[1]), "64x64", 32, ("nvfp4", "if4"), rounds=2)
"""


def test_clocks_times_each_layer_in_turn_with_the_clock_sampled(tmp_path):
    """`bench_cuda clocks DIR NxK M FORMATS`: cuBLAS and each format's layer in turn, `rounds` times, each with
    the samples of a running nvidia-smi (here a stand-in printing 1500 MHz under the power cap) read back."""
    import json
    import os
    import subprocess
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(_FAKE_SMI)
    smi.chmod(0o755)
    (tmp_path / "kernels.cubin").write_bytes(b"")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run([sys.executable, "-c", _CLOCKS_RUN, str(tmp_path)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "clocks-64x64-m32.json").read_text())
    assert [r["label"] for r in rows] == ["cuBLAS bf16", "mxc tilea+rdec nvfp4", "mxc tilea+rdec if4"] * 2
    assert all(r["mhz"] == 1500 and r["capped"] and r["watts"] == 695 for r in rows)
    assert rows[1]["mcycles"] == pytest.approx(850e-6 * 1500)
    assert "1500 MHz   695 W power cap" in out.stdout


_RING_RUN = """
import sys
from pathlib import Path
import torch
from mxc.runtime.cuda import hopper_kernels
from mxc.tools import bench_cuda as b
library = {k.name for k in hopper_kernels()}
def run_layer(mod, ks, x, q, weights=None):
    missing = [k.name for k in ks if k.name not in library]
    assert not missing, f"not in the GPU library: {missing}"
    return torch.ones(x.shape[0], 8)
times = iter([12e-6, 11e-6, 10e-6, 20e-6, 19e-6, 18e-6, 16e-6, 21e-6, 17e-6,
              22e-6, 20e-6, 18e-6, 40e-6, 38e-6, 36e-6, 33e-6, 35e-6] * 3)
sizes = iter([3_000_000, 3_000_000, 6_000_000, 6_000_000] * 3)
torch.cuda.get_device_name = lambda *_: "NVIDIA H200"
torch.Tensor.cuda = lambda self, *a, **k: self
b.Module = lambda data: None
b._layer = lambda n, k: (torch.Generator().manual_seed(0), torch.zeros(2, 2), [])
b.quantize = lambda w, f: None
b._cublas_time = lambda x, wb: 30e-6
b._time = lambda fn, copies: next(times)
b.layer_weights = lambda ks, q, k: {"w": torch.zeros(next(sizes), dtype=torch.uint8), "w_scales": torch.zeros(0)}
b._rotated = lambda w: [w]
b.run_layer = run_layer
b.ring_sweep(Path(sys.argv[1]))
"""


def test_ring_sweep_times_dec1b_and_its_measurement_variants(tmp_path):
    """`bench_cuda ring DIR` (here with a stand-in GPU): at M = 1 dec1b and at M = 16 decs (+ dsum) as selected,
    without decode (diag 2), with the weights' stream alone (diag 3), (decs) without activations staged (diag 4),
    summing in a cluster instead of dsum and with deeper register rings, for NVFP4 and MXFP8 at each shape,
    every kernel in the library `bench_cuda build` assembles (tools/gpu_prepare.sh); the fixed cost and
    marginal rate through the two formats' times."""
    import json
    import subprocess
    import sys

    from mxc.tools.bench_cuda import RING_FORMATS, RING_SHAPES

    (tmp_path / "kernels.cubin").write_bytes(b"")
    out = subprocess.run([sys.executable, "-c", _RING_RUN, str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads((tmp_path / "ring.json").read_text())
    assert len(rows) == 2 * len(RING_SHAPES) * len(RING_FORMATS)
    assert rows[0]["times"] == {"0": 12e-6, "2": 11e-6, "3": 10e-6} and rows[0]["bytes"] == 3_000_000
    assert [r["m"] for r in rows[:4]] == [1, 16, 1, 16]
    assert rows[1]["times"] == {"0": 20e-6, "2": 19e-6, "3": 18e-6, "4": 16e-6, "u6": 21e-6, "cluster": 17e-6}
    assert rows[3]["format"] == "mxfp8" and set(rows[3]["times"]) == {"0", "2", "3", "4", "cluster"}  # no deeper ring
    assert set(rows[0]["times"]) == {"0", "2", "3"}  # dec1b stages x per warp: no diag 4
    assert "decs_nvfp4_m16_s6_k24_w24_diag4+dsum_s6" in out.stdout
    assert "decs_nvfp4_m16_s6_k24_u6_w24+dsum_s6" in out.stdout and "decs_nvfp4_m16_s6_k24_c " in out.stdout
    assert "decs_nvfp4_m16_s8_c " in out.stdout  # 4096 x 14336: 12 splits + dsum, a cluster takes 8
    assert "dec1b_nvfp4_w16t2s4c1_diag3" in out.stdout and "0.30 TB/s" in out.stdout
    assert "decs_nvfp4_m16_s6_k24_w24_diag3+dsum_s6" in out.stdout
    # M = 1: 3 MB more bytes in 10 us more (kernel), 8 us more (stream alone): 0.30 / 0.375 TB/s, 2 us fixed;
    # M = 16: 20 / 18 us more: 0.15 / 0.17 TB/s, 0 fixed
    assert "8192 M=1   kernel       fixed  2.0us + bytes at 0.30 TB/s (nvfp4 to mxfp8)" in out.stdout
    assert "8192 M=1   stream alone fixed  2.0us + bytes at 0.38 TB/s" in out.stdout
    assert "8192 M=16  kernel       fixed  0.0us + bytes at 0.15 TB/s" in out.stdout


def test_clocks_without_nvidia_smi_says_what_it_needs(tmp_path, monkeypatch):
    from mxc.tools import bench_cuda

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SystemExit, match="needs nvidia-smi"):
        bench_cuda.clocks(tmp_path, "64x64", 32, ("nvfp4",))
