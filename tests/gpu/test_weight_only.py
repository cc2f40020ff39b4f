"""Weight-only layers on cuda-sm90's kernels, every weight format: the weights `gemv` (f32) and `dec`
(bf16) decode, bit for bit (x = identity), and the layer through the kernels the target selects
(`dec` / `decs` at decode shapes, `tilea` + `rdec` [+ `dsum`] from M = 17) against the float64
reference, K not a multiple of the block; `rdec` at every tile of x;
IF4's and NVINT4's table decode and FP6's and MXINT8's integer decodes (dec1, dec, decs, rdec) at every
scale byte and code, bit for bit."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
from gpu_reference import TOL, bf16_weights, close, epilogue, layer_inputs, sm90, spread_matrix

from mxc.kernels.kinds import (DECS_RING, DECS_WARPS, Dec, DecSplit, DSum, Gemv, RDec, TileA, dec1b_kernel,
                               dec1b_variants, dec_max_rows, ring_variants)
from mxc.kernels.launches import weight_layout
from mxc.kernels.operands import WEIGHT_FORMATS
from mxc.numerics.formats import get_format
from mxc.numerics.quantize import QTensor, quantize
from mxc.runtime.cuda import layout_weights, run_layer

CHECK_M = (1, 5, 9, 16, 64, 300, 2100)  # dec at M = 1, 5 (a partial n8 tile), 9, 16 (two tiles); rdec at 64, 300
# (two 256-row tiles of x) and 2100 (9)


@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_decode(gpu, fmt):
    """y = I @ W^T = W^T: the kernel's decoded weights equal numerics.dequantize, zero blocks,
    subnormals and a row scaled by 1e30 included."""
    k, n = 96, 40
    q = quantize(spread_matrix(n, k, 1), fmt)
    ref = q.dequantize(rotated=True)[:, :k]
    ks = [Gemv(w_format=fmt, mt=16)]
    gpu.require(ks)
    y = run_layer(gpu.module, ks, torch.eye(k, device="cuda"), q)
    got = y.t().contiguous().cpu()
    differ = got != ref
    # equal values: a -0 code reads +0 after the sum with +0 terms
    assert torch.equal(got, ref), (f"{differ.sum().item()} of {n}x{k} weights differ, e.g. "
                                   f"{got[differ][:4].tolist()} vs {ref[differ][:4].tolist()}")


@pytest.mark.parametrize("mt,r", ((1, 1), (16, 1), (16, 2), (8, 4)), ids=lambda v: str(v))
@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_decode_bf16(gpu, fmt, mt, r):
    """y = I @ W^T through `dec` (rows of x in CTAs of 16, r 16-row weight tiles per CTA; mt=1: `dec1`,
    one row of x per CTA row, its integer decodes of E2M1 and FP8; K = 96 a partial fragment tile, N = 40
    a partial 16-row tile, and with r > 1 a CTA whose last row tiles are past N): bf16(element x block
    scale) x tensor scale, bit for bit, as the bf16 kernels hold the weights (exact for every format but
    IF4's INT blocks and FP8 products below bf16's range)."""
    _check_bf16_decode(gpu, [Dec(w_format=fmt, mt=mt, r=min(r, dec_max_rows(fmt, mt)))], fmt)


# dec1b as selected and the variants `bench_cuda dec1b` compares, every weight format
_DEC1B_ALL = [k for f in WEIGHT_FORMATS for k in dict.fromkeys([dec1b_kernel(f), *dec1b_variants(f)])]


@pytest.mark.parametrize("kb", _DEC1B_ALL, ids=lambda kb: kb.name)
def test_decode_bf16_dec1b(gpu, kb):
    """y = I @ W^T through `dec1b` (dec1's decodes fed by bulk copies; one row of x per CTA row; K = 96: a row
    tile's only stage holds 2 K tiles), the selected variant and those `bench_cuda dec1b` compares:
    bf16(element x block scale) x tensor scale, bit for bit."""
    _check_bf16_decode(gpu, [kb], kb.w_format)


@pytest.mark.parametrize("n,k", ((200, 1000), (4200, 1500), (16900, 96), (2100, 16384)), ids=lambda v: str(v))
@pytest.mark.parametrize("fmt", ("nvfp4", "mxfp4", "if4", "mxfp6_e2m3", "mxfp8", "mxint8"))
def test_linear_dec1b(gpu, record_property, fmt, n, k):
    """gelu(x @ W^T + bias) at M = 1 through `dec1b` within TOL * sum|x||w|: one row tile per CTA (N = 200,
    K = 1000 a partial K tile), two row tiles per CTA whose second stages are partial (N = 4200, K = 1500: 24 K
    tiles per row tile, stages of 16), past one wave at 8 row tiles per CTA (N = 16900, 133 CTAs), K at dec1b's
    largest (16384)."""
    _check_bf16_linear(gpu, record_property, [dec1b_kernel(fmt, bias=True)], fmt, 1, n=n, k=k, seed=n)


_DEC1B_SWEEP = [kb for f in ("nvfp4", "if4", "mxfp6_e2m3", "mxfp8") for kb in dec1b_variants(f, bias=True)]


@pytest.mark.parametrize("n,k", ((4200, 1500), (1000, 4000), (16900, 96), (2100, 16384)), ids=lambda v: str(v))
@pytest.mark.parametrize("kb", _DEC1B_SWEEP, ids=lambda kb: kb.name)
def test_linear_dec1b_variants(gpu, record_property, kb, n, k):
    """Each dec1b variant `bench_cuda dec1b` compares (kinds.DEC1B_VARIANTS: 4 and 8 stages of 32 K tiles) as
    test_linear_dec1b checks the selected one: a row tile's only stage partial (K = 1500: 24 K tiles), its last
    stage partial (K = 4000: 63), 8 row tiles per CTA past one wave, K = 16384."""
    _check_bf16_linear(gpu, record_property, [kb], kb.w_format, 1, n=n, k=k, seed=n)


def _decoded(gpu, ks, q) -> torch.Tensor:
    """W as `ks` decode it: y = I @ W^T on the GPU, transposed back, on the CPU."""
    gpu.require(ks)
    return run_layer(gpu.module, ks, torch.eye(q.shape[1], device="cuda"), q).t().contiguous().cpu()


def _assert_bit_equal(got: torch.Tensor, ref: torch.Tensor) -> None:
    differ = got != ref
    assert torch.equal(got, ref), (f"{differ.sum().item()} of {ref.numel()} weights differ, e.g. "
                                   f"{got[differ][:4].tolist()} vs {ref[differ][:4].tolist()}")


def _if4_every_code(n: int = 48, k: int = 96) -> "QTensor":
    """IF4 weights [n, k] holding every scale byte but the NaN ones (0x00 .. 0xFF: FP and INT blocks, zero
    scales, subnormal scales) with every code in each block (its 16 codes a permutation of 0..15; INT blocks'
    -8, which numerics never writes, replaced by 0), and in the last row the two NaN scale bytes (0x7F,
    0xFF): spread_matrix's IF4 codes have no INT block (its 1e30 row makes every other block's scale tiny)."""
    g = torch.Generator().manual_seed(7)
    kb = k // 16
    extra = n * kb - 254
    finite = torch.tensor([c for c in range(256) if c & 0x7F != 0x7F])
    order = torch.cat([finite[torch.randperm(254, generator=g)],
                       finite[torch.randint(0, 254, (extra - 2,), generator=g)], torch.tensor([0x7F, 0xFF])])
    scales = order.to(torch.uint8).reshape(n, kb)
    codes = torch.stack([torch.randperm(16, generator=g) for _ in range(n * kb)]).reshape(n, kb, 16)
    is_int = (scales.to(torch.int64) & 0x80).unsqueeze(-1) != 0
    codes = torch.where(is_int & (codes == 8), 0, codes).reshape(n, k).to(torch.uint8)
    return QTensor(get_format("if4"), codes, scales, torch.tensor(1.0), (n, k), 1)


IF4_DECODERS = {
    "dec1": [Dec(w_format="if4", mt=1)],
    "dec1b": [dec1b_kernel("if4")],
    "dec16": [Dec(w_format="if4", mt=16)],
    "dec16r2": [Dec(w_format="if4", mt=16, r=min(2, dec_max_rows("if4", 16)))],
    "dec8r2": [Dec(w_format="if4", mt=8, r=min(2, dec_max_rows("if4", 8)))],
    "decs16s3": [DecSplit(w_format="if4", mt=16, s=3, kt=24), DSum(s=3)],
    "decs16s3w24": [DecSplit(w_format="if4", mt=16, s=3, kt=24, warps=DECS_WARPS), DSum(s=3)],
    "decs8s4": [DecSplit(w_format="if4", mt=8, s=4), DSum(s=4)],
    "decs16s2c": [DecSplit(w_format="if4", mt=16, s=2, cluster=True)],
    "rdec16": [TileA(rows=16, perm=True), RDec(w_format="if4", na=16, s=1)],
    "rdec128": [TileA(rows=128, perm=True), RDec(w_format="if4", na=128, s=1)],
    "rdec64s2": [TileA(rows=64, perm=True), RDec(w_format="if4", na=64, s=2), DSum(s=2)],
}


@pytest.mark.parametrize("kernels", IF4_DECODERS)
def test_decode_bf16_if4_every_code(gpu, kernels):
    """y = I @ W^T through IF4's table decode (dec1, dec, decs, rdec) for every scale byte and every code:
    bf16(element x block scale), bit for bit (INT blocks: bf16(float(q) x float32(6/7) x scale), as the
    float decode rounded them); the row with the NaN scale bytes all NaN."""
    ks = IF4_DECODERS[kernels]
    q = _if4_every_code()
    k = q.shape[1]
    assert q.int_blocks().any() and (~q.int_blocks()).any()
    ref = bf16_weights(q, k).float()
    got = _decoded(gpu, ks, q)
    assert got[-1].isnan().all() and not ref[:-1].isnan().any()
    got, ref = got[:-1], ref[:-1]
    _assert_bit_equal(got, ref)


def _nvint4_every_code(n: int = 48, k: int = 96) -> "QTensor":
    """NVINT4 weights [n, k] holding every scale byte but the NaN ones (0x00 .. 0xFE: negative scales from
    0x80, zero 0x00 / 0x80, subnormal scales) with every code -7..7 in each block (its 16 codes a permutation
    of 0..15, -8, which numerics never writes, replaced by 0), and in the last row the NaN scale bytes 0x7F
    and 0xFF; tensor scale 1."""
    g = torch.Generator().manual_seed(8)
    kb = k // 16
    extra = n * kb - 254
    finite = torch.tensor([c for c in range(256) if c & 0x7F != 0x7F])
    order = torch.cat([finite[torch.randperm(254, generator=g)],
                       finite[torch.randint(0, 254, (extra - 2,), generator=g)], torch.tensor([0x7F, 0xFF])])
    scales = order.to(torch.uint8).reshape(n, kb)
    codes = torch.stack([torch.randperm(16, generator=g) for _ in range(n * kb)])
    codes = torch.where(codes == 8, 0, codes).reshape(n, k).to(torch.uint8)
    return QTensor(get_format("nvint4"), codes, scales, torch.tensor(1.0), (n, k), 1)


@pytest.mark.parametrize("kernels", IF4_DECODERS)
def test_decode_bf16_nvint4_every_code(gpu, kernels):
    """y = I @ W^T through NVINT4's table decode (IF4's machinery, dec1, dec, decs, rdec) for every scale byte
    and every code: bf16(float(q) x scale), bit for bit as the float decode gave it; the row with the NaN
    scale bytes all NaN."""
    ks = [_with_format(k, "nvint4") for k in IF4_DECODERS[kernels]]
    q = _nvint4_every_code()
    k = q.shape[1]
    ref = bf16_weights(q, k).float()
    got = _decoded(gpu, ks, q)
    assert got[-1].isnan().all() and not ref[:-1].isnan().any()
    got, ref = got[:-1], ref[:-1]
    _assert_bit_equal(got, ref)


def _with_format(kernel, fmt: str):
    """A decoder of IF4_DECODERS for another weight format (r clamped to dec_max_rows)."""
    import dataclasses

    if not hasattr(kernel, "w_format"):
        return kernel
    kernel = dataclasses.replace(kernel, w_format=fmt)
    if isinstance(kernel, Dec):
        kernel = dataclasses.replace(kernel, r=min(kernel.r, dec_max_rows(fmt, kernel.mt)))
    return kernel


FP6_FORMATS = ("mxfp6_e2m3", "mxfp6_e3m2")


def _fp6_every_code(fmt: str, k: int = 96) -> tuple["QTensor", torch.Tensor]:
    """FP6 weights [n, k] holding every scale byte 0x00 .. 0xFE with every code (each byte in two blocks whose
    64 codes are a permutation of 0..63), then the NaN scale byte 0xFF: rows whose blocks are all finite first
    (a code whose product overflows bf16 replaced by 0 there), then rows of the overflowing (scale, code) pairs
    and 0xFF's, whose sums through x = I are not finite (inf x 0). N = 172 / 174 (a partial row tile), K = 96
    (a partial fragment tile). Returns the weights and the number of finite rows."""
    g = torch.Generator().manual_seed(11)
    fmt_ = get_format(fmt)
    from mxc.numerics.elements import decode_table

    table = decode_table(fmt_.element)
    kb = k // 32
    fin_blocks, inf_blocks = [], []
    for c in range(256):
        s = float("nan") if c == 0xFF else 2.0 ** (c - 127)
        perm = torch.randperm(64, generator=g)
        prod = (table[perm].double() * s).float().bfloat16().float()
        bad = ~torch.isfinite(prod)
        if c == 0xFF:
            inf_blocks += [(c, perm[:32]), (c, perm[32:])]
            continue
        ok = torch.where(bad, 0, perm)
        fin_blocks += [(c, ok[:32]), (c, ok[32:])]
        if bad.any():
            over = torch.cat([perm[bad], torch.zeros(64 - int(bad.sum()), dtype=torch.int64)])
            inf_blocks += [(c, over[:32]), (c, over[32:])]

    def rows(blocks):
        while len(blocks) % kb:
            blocks = blocks + [(127, torch.zeros(32, dtype=torch.int64))]
        sc = torch.tensor([c for c, _ in blocks], dtype=torch.uint8).reshape(-1, kb)
        cd = torch.stack([b for _, b in blocks]).to(torch.uint8).reshape(-1, kb * 32)
        return cd, sc

    fc, fs = rows(fin_blocks)
    ic, is_ = rows(inf_blocks)
    q = QTensor(fmt_, torch.cat([fc, ic]), torch.cat([fs, is_]), None, (fc.shape[0] + ic.shape[0], k), 1)
    return q, fc.shape[0]


def _fp6_decoders(fmt: str) -> dict:
    return {
        "dec1": [Dec(w_format=fmt, mt=1)],
        "dec1b": [dec1b_kernel(fmt)],
        "dec16": [Dec(w_format=fmt, mt=16)],
        "dec16r2": [Dec(w_format=fmt, mt=16, r=min(2, dec_max_rows(fmt, 16)))],
        "dec8r2": [Dec(w_format=fmt, mt=8, r=min(2, dec_max_rows(fmt, 8)))],
        "decs16s3": [DecSplit(w_format=fmt, mt=16, s=3, kt=24), DSum(s=3)],
        "decs16s3w24": [DecSplit(w_format=fmt, mt=16, s=3, kt=24, warps=DECS_WARPS), DSum(s=3)],
        "decs8s4": [DecSplit(w_format=fmt, mt=8, s=4), DSum(s=4)],
        "decs8s2c": [DecSplit(w_format=fmt, mt=8, s=2, cluster=True)],
        "rdec16": [TileA(rows=16, perm=True), RDec(w_format=fmt, na=16, s=1)],
        "rdec128": [TileA(rows=128, perm=True), RDec(w_format=fmt, na=128, s=1)],
        "rdec64s2": [TileA(rows=64, perm=True), RDec(w_format=fmt, na=64, s=2), DSum(s=2)],
    }


@pytest.mark.parametrize("kernels", list(_fp6_decoders("mxfp6_e2m3")))
@pytest.mark.parametrize("fmt", FP6_FORMATS)
def test_decode_bf16_fp6_every_code(gpu, fmt, kernels):
    """y = I @ W^T through FP6's integer decode (dec1, dec, decs, rdec) for every scale byte and every code:
    bf16(element x block scale), bit for bit (scale 0x00 = 2^-127: bf16 subnormal products; -0 reads +0 after
    the sum); the rows of products past bf16's range and of the NaN scale byte all NaN or inf (inf x 0 in the
    sum)."""
    ks = _fp6_decoders(fmt)[kernels]
    q, fin = _fp6_every_code(fmt)
    k = q.shape[1]
    ref = bf16_weights(q, k).float()
    assert not ref[:fin].isnan().any() and ref[:fin].isfinite().all()
    assert (ref[:fin] != 0).any() and ((ref[:fin].abs() < 2.0 ** -126) & (ref[:fin] != 0)).any()  # subnormals
    got = _decoded(gpu, ks, q)
    assert not got[fin:].isfinite().any()
    got, ref = got[:fin], ref[:fin]
    _assert_bit_equal(got, ref)


def _check_bf16_decode(gpu, ks, fmt: str) -> None:
    """y = I @ W^T through `ks` (K = 96, N = 40) equals bf16(element x block scale) x tensor scale, bit for bit."""
    k, n = 96, 40
    q = quantize(spread_matrix(n, k, 1), fmt)
    ref = bf16_weights(q, k).float()
    got = _decoded(gpu, ks, q)
    _assert_bit_equal(got, ref)


@pytest.mark.parametrize("m", CHECK_M, ids=lambda m: f"M{m}")
@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_linear(gpu, record_property, fmt, m):
    """gelu(x @ W^T + bias) at M x K=1000 x N=200 within TOL * sum|x||w|; with bf16 activations
    (bf16 tiles) the reference rounds x to bf16 and holds the weights as the bf16 tiles do."""
    k, n = 1000, 200
    w, x, bias = layer_inputs(m, k, n, seed=m)
    q = quantize(w, fmt)
    ks = sm90(m, fmt, None, True)
    gpu.require(ks)
    if any(kern.rounding == "bf16 activations" for kern in ks):
        x_ref, wd = x.bfloat16().double(), bf16_weights(q, k)
    else:
        x_ref, wd = x.double(), q.dequantize(rotated=True).double()[:, :k]
    ref = epilogue(x_ref @ wd.T + bias.double(), "gelu")
    mag = x_ref.abs() @ wd.abs().T + bias.double().abs()
    y = run_layer(gpu.module, ks, x.cuda(), q, "gelu", bias.cuda())
    ok, worst = close(y, ref, mag, TOL)
    record_property("worst", worst)
    assert ok, f"{ks[-1].name}: max |y-ref|/(|x||w|) = {worst:.2e} (tol {TOL:g})"


@pytest.mark.parametrize("m", (5, 16), ids=lambda m: f"M{m}")
@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_linear_row_tiles(gpu, record_property, fmt, m):
    """gelu(x @ W^T + bias) through `dec` with the most 16-row weight tiles per CTA its format takes (what
    dec_rows picks at large N), N = 200 (a CTA partly past N), K = 1000, within TOL * sum|x||w|."""
    mt = 8 if m <= 8 else 16
    _check_bf16_linear(gpu, record_property, [Dec(w_format=fmt, bias=True, mt=mt, r=dec_max_rows(fmt, mt))], fmt, m)


@functools.lru_cache(maxsize=24)
def _linear_case(fmt: str, m: int, n: int, k: int, seed: int):
    """A layer's inputs, its quantized weights, the float64 reference gelu(x @ W^T + bias) and sum|x||w| (the
    tolerance's scale): computed once per case on the CPU, shared by the kernels checked on it (the dec1b
    variants run the same cases)."""
    w, x, bias = layer_inputs(m, k, n, seed=seed)
    q = quantize(w, fmt)
    x_ref, wd = x.bfloat16().double(), bf16_weights(q, k)
    ref = epilogue(x_ref @ wd.T + bias.double(), "gelu")
    mag = x_ref.abs() @ wd.abs().T + bias.double().abs()
    return q, x, bias, ref, mag


@functools.lru_cache(maxsize=8)
def _case_weights(layout, fmt: str, m: int, n: int, k: int, seed: int) -> dict:
    """_linear_case's weights on the GPU in `layout` (re-packing a K = 16384 layer takes a second or more on
    the CPU; the kernels only read them), shared by the kernels that read that layout."""
    return layout_weights(layout, _linear_case(fmt, m, n, k, seed)[0], k)


def _check_bf16_linear(gpu, record_property, ks, fmt: str, m: int, n: int = 200, k: int = 1000,
                       seed: int | None = None) -> None:
    """gelu(x @ W^T + bias) through `ks` (bf16 activations), M x K x N, within TOL * sum|x||w| (inputs seeded by
    `seed`, else by M)."""
    gpu.require(ks)
    seed = m if seed is None else seed
    q, x, bias, ref, mag = _linear_case(fmt, m, n, k, seed)
    wts = _case_weights(weight_layout(ks), fmt, m, n, k, seed)
    y = run_layer(gpu.module, ks, x.cuda(), q, "gelu", bias.cuda(), weights=wts)
    ok, worst = close(y, ref, mag, TOL)
    record_property("worst", worst)
    assert ok, f"{ks[0].name}: max |y-ref|/(|x||w|) = {worst:.2e} (tol {TOL:g})"


def _decs(fmt: str, mt: int, s: int, cluster: bool, bias: bool = False, kt: int = 48) -> list:
    if cluster:
        return [DecSplit(w_format=fmt, mt=mt, s=s, cluster=True, bias=bias, kt=kt)]
    return [DecSplit(w_format=fmt, mt=mt, s=s, kt=kt), DSum(s=s, bias=bias)]


@pytest.mark.parametrize("mt,s,cluster,kt", ((16, 2, False, 48), (8, 4, False, 48), (16, 6, False, 24),
                                             (16, 2, True, 48), (8, 1, True, 48)),
                         ids=("16-2", "8-4", "16-6-k24", "16-2-cluster", "8-1-cluster"))
@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_decode_bf16_split(gpu, fmt, mt, s, cluster, kt):
    """y = I @ W^T through decs + dsum, or decs summing in a cluster (K = 96: with 4 splits two CTAs of every
    row group have no K tile and must write zero partials; N = 40: a CTA's 128 rows mostly past N):
    bf16(element x block scale) x tensor scale, bit for bit."""
    _check_bf16_decode(gpu, _decs(fmt, mt, s, cluster, kt=kt), fmt)


@pytest.mark.parametrize("s,cluster,kt", ((4, False, 48), (3, False, 24), (2, True, 48)),
                         ids=("4", "3-k24", "2-cluster"))
@pytest.mark.parametrize("m", (5, 16), ids=lambda m: f"M{m}")
@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_linear_split(gpu, record_property, fmt, m, s, cluster, kt):
    """gelu(x @ W^T + bias) through decs (s K splits of K = 1000: 16 tiles, the last partial) + dsum (bias,
    epilogue), or decs summing in a cluster (the bias and epilogue its own), N = 200, within TOL * sum|x||w|."""
    _check_bf16_linear(gpu, record_property, _decs(fmt, 8 if m <= 8 else 16, s, cluster, bias=True, kt=kt), fmt, m)


@pytest.mark.parametrize("s", (1, 2))
@pytest.mark.parametrize("fmt", ("nvfp4", "mxfp8", "if4"))
def test_split_cluster_equals_dsum(gpu, fmt, s):
    """decs summing its K splits in a cluster gives dsum's outputs bit for bit (the same partials, added in
    split order, the bias and the epilogue after): M = 16, N = 1000 (a row group partly past N), K = 3000."""
    m, k, n = 16, 3000, 1000
    w, x, bias = layer_inputs(m, k, n, seed=s)
    q = quantize(w, fmt)
    got = []
    for cluster in (False, True):
        ks = _decs(fmt, 16, s, cluster, bias=True)
        gpu.require(ks)
        got.append(run_layer(gpu.module, ks, x.cuda(), q, "silu", bias.cuda()).cpu())
    _assert_bit_equal(got[1], got[0])


@pytest.mark.parametrize("s", (3, 6))
@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_decs_wide_equals_eight_warps(gpu, fmt, s):
    """decs with DECS_WARPS warps per CTA (the wide CTA: one staging of x for 24 row tiles) gives the 8-warp CTA's
    outputs at the same split bit for bit (the same tiles, the same sums in the same order): M = 5 and 16,
    N = 1000 (three CTAs of 384 rows per split, the third mostly past N), K = 3000 (the last K tile partial); and
    y = I @ W^T at K = 96 (CTAs with no K tile), bit for bit."""
    for m in (5, 16):
        w, x, _ = layer_inputs(m, 3000, 1000, seed=s + m)
        q = quantize(w, fmt)
        got = []
        for warps in (8, DECS_WARPS):
            ks = [DecSplit(w_format=fmt, mt=16, s=s, kt=24, warps=warps), DSum(s=s)]
            gpu.require(ks)
            got.append(run_layer(gpu.module, ks, x.cuda(), q).cpu())
        _assert_bit_equal(got[1], got[0])
    _check_bf16_decode(gpu, [DecSplit(w_format=fmt, mt=16, s=s, kt=24, warps=DECS_WARPS), DSum(s=s)], fmt)


@pytest.mark.parametrize("kd", [k for k in ring_variants() if k.kind == "decs" and k.ring != DECS_RING],
                         ids=lambda k: k.name)
def test_decs_deeper_ring(gpu, kd):
    """decs with a deeper register ring (DecSplit.ring, what `bench_cuda ring` compares) gives the selected
    ring's outputs bit for bit (the same tiles, the same order): M = 16, N = 1000, K = 3000 (the last K tile
    partial), and y = I @ W^T at K = 96 (CTAs with no K tile)."""
    def ks(ring):
        kr = dataclasses.replace(kd, ring=ring)
        return [kr] if kr.cluster else [kr, DSum(s=kr.s)]
    w, x, _ = layer_inputs(16, 3000, 1000, seed=kd.s)
    q = quantize(w, kd.w_format)
    got = []
    for ring in (DECS_RING, kd.ring):
        gpu.require(ks(ring))
        got.append(run_layer(gpu.module, ks(ring), x.cuda(), q).cpu())
    _assert_bit_equal(got[1], got[0])
    _check_bf16_decode(gpu, ks(kd.ring), kd.w_format)


@pytest.mark.parametrize("kd", [k for k in ring_variants() if k.kind == "decs" and k.cluster and not k.bias],
                         ids=lambda k: k.name)
def test_decs_cluster_twin(gpu, kd):
    """decs summing 3 to 8 K splits in a thread-block cluster (kinds.decs_cluster_twin, what `bench_cuda ring`
    compares with decs + dsum; a split count that does not divide the group's 128 rows leaves the last CTA a
    short share) gives decs + dsum's outputs at the same split bit for bit: M = 16, N = 1000 (a row group partly
    past N), K = 3000, with bias and SiLU."""
    w, x, bias = layer_inputs(16, 3000, 1000, seed=kd.s)
    q = quantize(w, kd.w_format)
    got = []
    for ks in ([dataclasses.replace(kd, cluster=False), DSum(s=kd.s, bias=True)],
               [dataclasses.replace(kd, bias=True)]):
        gpu.require(ks)
        got.append(run_layer(gpu.module, ks, x.cuda(), q, "silu", bias.cuda()).cpu())
    _assert_bit_equal(got[1], got[0])


def _rdec(fmt: str, na: int, s: int, bias: bool = False) -> list:
    return [TileA(rows=na, perm=True), RDec(w_format=fmt, na=na, s=s, bias=bias and s == 1)] + (
        [DSum(s=s, bias=bias)] if s > 1 else [])


@pytest.mark.parametrize("na,s", ((16, 1), (64, 2), (128, 1), (16, 4)), ids=lambda v: str(v))
@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_decode_bf16_rdec(gpu, fmt, na, s):
    """y = I @ W^T through tilea (permuted K) + rdec [+ dsum] (M = K = 96: 6 tiles of 16 rows of x, 2 of
    64 (the second partial) or one partial 128; two K tiles of 64, the second partial, one per split at
    s = 2, and at s = 4 two splits with no K tile, which must write zero partials; N = 40: one CTA of 128
    weight rows, mostly padding): bf16(element x block scale) x tensor scale, bit for bit."""
    _check_bf16_decode(gpu, _rdec(fmt, na, s), fmt)


@pytest.mark.parametrize("m,s", ((40, 1), (200, 4)), ids=lambda v: str(v))
@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_linear_rdec(gpu, record_property, fmt, m, s):
    """gelu(x @ W^T + bias) through tilea + rdec [+ dsum] at M = 40 (one 64-row tile of x, partial) and
    200 (one 256-row tile), N = 300 (three CTAs of 128 weight rows, the last partial), K = 1000 (16 K
    tiles of 64, the last partial; 4 splits of 4), the bias in rdec or in dsum, within TOL * sum|x||w|."""
    na = 64 if m <= 64 else 256
    _check_bf16_linear(gpu, record_property, _rdec(fmt, na, s, bias=True), fmt, m, n=300)



def _int8_every_code(k: int = 64) -> tuple["QTensor", int]:
    """MXINT8 weights [n, 64] holding every scale byte 0x00 .. 0xFE with every code -127..127 (each byte in 8
    blocks whose 256 codes are a permutation of 0..255, -128 = 0x80, which numerics never writes, replaced by
    0): first the bytes 7..253 (dec's FMA decode; padded to whole 16-row tiles with zero blocks of scale 1),
    then 0..6 and 254 (whose tiles take the float decode: bf16 subnormal products, 2^127), then rows of the
    NaN byte 0xFF (a partial row tile). Returns the weights and the number of finite rows."""
    g = torch.Generator().manual_seed(12)
    kb = k // 32

    def rows(bytes_, pad=True):
        blocks = []
        for c in bytes_:
            perm = torch.randperm(256, generator=g)
            perm = torch.where(perm == 0x80, 0, perm)
            blocks += [(c, b) for b in perm.reshape(8, 32)]
        while pad and len(blocks) % (16 * kb):
            blocks.append((127, torch.zeros(32, dtype=torch.int64)))
        sc = torch.tensor([c for c, _ in blocks], dtype=torch.uint8).reshape(-1, kb)
        cd = torch.stack([b for _, b in blocks]).to(torch.uint8).reshape(-1, kb * 32)
        return cd, sc

    parts = [rows(list(range(7, 254))), rows(list(range(7)) + [254]), rows([0xFF], pad=False)]
    fin = parts[0][0].shape[0] + parts[1][0].shape[0]
    codes, scales = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    return QTensor(get_format("mxint8"), codes, scales, None, (codes.shape[0], k), 1), fin


@pytest.mark.parametrize("kernels", list(_fp6_decoders("mxint8")))
def test_decode_bf16_int8_every_code(gpu, kernels):
    """y = I @ W^T through MXINT8's integer decode (dec1, dec, decs, rdec; the float decode for tiles holding a
    scale byte outside 7..253) for every scale byte and every code: bf16(q / 64 x scale), bit for bit (scale
    bytes < 7: bf16 subnormal products); the NaN scale byte's rows all NaN."""
    ks = _fp6_decoders("mxint8")[kernels]
    q, fin = _int8_every_code()
    k = q.shape[1]
    ref = bf16_weights(q, k).float()
    assert ref[:fin].isfinite().all() and ((ref[:fin].abs() < 2.0 ** -126) & (ref[:fin] != 0)).any()
    got = _decoded(gpu, ks, q)
    assert got[fin:].isnan().all()
    got, ref = got[:fin], ref[:fin]
    _assert_bit_equal(got, ref)
