"""MXFP8 x MXFP8 on cuda-sm90: the activation quantizer `tileq` (the codes' values as bf16 tiles)
bit-identical to numerics (NaN, Inf, zero, subnormal and saturating blocks), and `tileq` + `rdec`
[+ `dsum`] against the float64 reference."""

from __future__ import annotations

import pytest
import torch
from gpu_reference import TOL, close, layer_inputs, sm90, special_values, spread_matrix

from mxc.kernels.kinds import TileQ, rdec_kernels
from mxc.kernels.operands import TILEQ_FORMATS
from mxc.numerics.quantize import quantize
from mxc.runtime.cuda import run_kernels, run_layer


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


@pytest.mark.parametrize("rows,perm", ((16, True), (64, True), (256, True)), ids=lambda v: str(v))
@pytest.mark.parametrize("a", TILEQ_FORMATS)
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


@pytest.mark.parametrize("path", ("selected", "rdec-s1", "rdec-s4", "rdec-m300"))
@pytest.mark.parametrize("w", TILEQ_FORMATS)
@pytest.mark.parametrize("a", TILEQ_FORMATS)
def test_pair_bf16_paths(gpu, record_property, a, w, path):
    """relu(x @ W^T + bias) with MXFP8 activations on the bf16 tensor cores: what cuda-sm90 selects at M = 5,
    tileq + rdec [+ dsum] (M = 40, N = 300, one split; M = 200, 4 splits; M = 300 as selected: two 256-row
    tiles of x, the second partial), K = 1000, within TOL * sum|a||w| (exact products: float32 summation order only)."""
    m = {"selected": 5, "rdec-s1": 40, "rdec-s4": 200, "rdec-m300": 300}[path]
    k, n = 1000, 300
    wm, x, bias = layer_inputs(m, k, n, seed=3)
    q, qa = quantize(wm, w), quantize(x, a)
    xd, wd = qa.dequantize().double()[:, :k], q.dequantize().double()[:, :k]
    ref = (xd @ wd.T + bias.double()).relu()
    mag = xd.abs() @ wd.abs().T + bias.double().abs()
    if path in ("selected", "rdec-m300"):
        ks = sm90(m, w, a, True)
    else:
        ks = rdec_kernels(w, True, m, n, k, a)
        ks[1:] = [type(ks[1])(w_format=w, na=ks[1].na, s=int(path[-1]), bias=path == "rdec-s1")] + (
            [] if path == "rdec-s1" else [type(ks[-1])(s=4, bias=True)])
    gpu.require(ks)
    y = run_layer(gpu.module, ks, x.cuda(), q, "relu", bias.cuda())
    ok, worst = close(y, ref, mag, TOL)
    record_property("worst", worst)
    assert ok, f"{'+'.join(kk.kind for kk in ks)}: max |y-ref|/(|x||w|) = {worst:.2e} (tol {TOL:g})"

