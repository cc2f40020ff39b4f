"""MXFP8 x MXFP8 on cuda-sm90: the activation quantizers `actq` (codes) and `tileq` (the codes' values as
bf16 tiles) bit-identical to numerics (NaN, Inf, zero, subnormal and saturating blocks), and `actq` +
`qgmma`, `tileq` + `rdec` [+ `dsum`] and `tileq` + `wdec` + `hgemm` against the float64 reference."""

from __future__ import annotations

import pytest
import torch
from gpu_reference import QGMMA_TOL, TOL, close, layer_inputs, special_values, spread_matrix

from mxc.kernels.kinds import ActQ, Qgmma, TileQ, prefill_kernels, rdec_kernels
from mxc.kernels.operands import QGMMA_FORMATS
from mxc.numerics.quantize import quantize
from mxc.runtime.cuda import run_kernels, run_layer


@pytest.mark.parametrize("a", QGMMA_FORMATS)
def test_actq(gpu, a):
    """Codes [M, K padded to 32] and E8M0 scales equal numerics.quantize's, K = 1000."""
    m, k = 64, 1000
    x = special_values(spread_matrix(m, k, 7))
    qa = quantize(x, a)
    ks = [ActQ(a_format=a)]
    gpu.require(ks)
    out = run_kernels(gpu.module, ks, {"x": x.cuda()}, m, 0, k)
    codes, scales = out["a"].cpu(), out["a_scales"].cpu()
    assert torch.equal(codes, qa.elements) and torch.equal(scales, qa.scales), (
        f"{(codes != qa.elements).sum().item()} codes, {(scales != qa.scales).sum().item()} scales differ")


@pytest.mark.parametrize("w", QGMMA_FORMATS)
@pytest.mark.parametrize("a", QGMMA_FORMATS)
def test_qgmma(gpu, record_property, a, w):
    """relu(x @ W^T + bias), M=300 K=1000 N=200, within QGMMA_TOL * sum|a||w| (FP8 tensor-core
    block sums)."""
    m, k, n = 300, 1000, 200
    wm, x, bias = layer_inputs(m, k, n, seed=3)
    q, qa = quantize(wm, w), quantize(x, a)
    xd, wd = qa.dequantize().double(), q.dequantize().double()
    ref = (xd @ wd.T + bias.double()).relu()
    mag = xd.abs() @ wd.abs().T + bias.double().abs()
    ks = [ActQ(a_format=a), Qgmma(w_format=w, a_format=a, bias=True)]
    gpu.require(ks)
    y = run_layer(gpu.module, ks, x.cuda(), q, "relu", bias.cuda())
    ok, worst = close(y, ref, mag, QGMMA_TOL)
    record_property("worst", worst)
    assert ok, f"{ks[-1].name}: max |y-ref|/(|x||w|) = {worst:.2e} (tol {QGMMA_TOL:g})"


def untile(a: torch.Tensor, m: int, k: int, rows: int, perm: bool) -> torch.Tensor:
    """tilea's / tileq's bf16 tiles (rows x 64 K, K-major core matrices of 8 rows x 16 bytes) -> [m, k]."""
    mt, kt = -(-m // rows), -(-k // 64)
    t = a.reshape(mt, kt, rows // 8, 8, 8, 8)  # [tile row, tile K, row group, K chunk, row, element]
    if perm:  # chunk c's element i holds K 16 (i / 2) + 2c + i % 2
        c, i = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
        out = torch.empty_like(t)
        out[..., (16 * (i // 2) + 2 * c + i % 2) // 8, :, (16 * (i // 2) + 2 * c + i % 2) % 8] = t[..., c, :, i]
        t = out
    return t.permute(0, 2, 4, 1, 3, 5).reshape(mt * rows, kt * 64)[:m, :k]


@pytest.mark.parametrize("rows,perm", ((128, False), (16, True), (64, True)), ids=lambda v: str(v))
@pytest.mark.parametrize("a", QGMMA_FORMATS)
def test_tileq(gpu, a, rows, perm):
    """tileq's bf16 tiles hold numerics' dequantized activations, value for value (bf16 holds every code
    x scale here), the padding zero; K = 1000, M = 70."""
    m, k = 70, 1000
    x = special_values(spread_matrix(m, k, 7))
    ref = quantize(x, a).dequantize()[:, :k]
    ks = [TileQ(a_format=a, rows=rows, perm=perm)]
    gpu.require(ks)
    out = run_kernels(gpu.module, ks, {"x": x.cuda()}, m, 0, k, fill=0x55)["a"].cpu()
    got = untile(out.view(torch.bfloat16), -(-m // rows) * rows, -(-k // 64) * 64, rows, perm).float()
    assert torch.equal(got[m:], torch.zeros_like(got[m:])) and torch.equal(got[:m, k:], torch.zeros_like(got[:m, k:]))
    same = (got[:m, :k] == ref) | (got[:m, :k].isnan() & ref.isnan())
    assert same.all(), f"{(~same).sum().item()} values differ, e.g. {got[:m, :k][~same][:4]} vs {ref[~same][:4]}"


@pytest.mark.parametrize("path", ("rdec-s1", "rdec-s4", "prefill"))
@pytest.mark.parametrize("w", QGMMA_FORMATS)
@pytest.mark.parametrize("a", QGMMA_FORMATS)
def test_pair_bf16_paths(gpu, record_property, a, w, path):
    """relu(x @ W^T + bias) with MXFP8 activations on the bf16 tensor cores: tileq + rdec [+ dsum] (M = 40,
    N = 300, one split; M = 200, 4 splits) and tileq + wdec + hgemm (M = 300), K = 1000, within TOL *
    sum|a||w| (exact products: float32 summation order only)."""
    m = {"rdec-s1": 40, "rdec-s4": 200, "prefill": 300}[path]
    k, n = 1000, 300
    wm, x, bias = layer_inputs(m, k, n, seed=3)
    q, qa = quantize(wm, w), quantize(x, a)
    xd, wd = qa.dequantize().double()[:, :k], q.dequantize().double()[:, :k]
    ref = (xd @ wd.T + bias.double()).relu()
    mag = xd.abs() @ wd.abs().T + bias.double().abs()
    if path == "prefill":
        ks = prefill_kernels(w, True, a)
    else:
        ks = rdec_kernels(w, True, m, n, k, a)
        ks[1:] = [type(ks[1])(w_format=w, na=ks[1].na, s=int(path[-1]), bias=path == "rdec-s1")] + (
            [] if path == "rdec-s1" else [type(ks[-1])(s=4, bias=True)])
    gpu.require(ks)
    y = run_layer(gpu.module, ks, x.cuda(), q, "relu", bias.cuda())
    ok, worst = close(y, ref, mag, TOL)
    record_property("worst", worst)
    assert ok, f"{'+'.join(kk.kind for kk in ks)}: max |y-ref|/(|x||w|) = {worst:.2e} (tol {TOL:g})"

