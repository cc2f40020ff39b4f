"""MXFP8 x MXFP8 on cuda-sm90: the activation quantizer `actq` bit-identical to numerics (NaN, Inf,
zero, subnormal and saturating blocks), and `actq` + `qgmma` against the float64 reference."""

from __future__ import annotations

import pytest
import torch
from gpu_reference import QGMMA_TOL, close, layer_inputs, sm90, special_values, spread_matrix

from mxc.kernels.kinds import ActQ
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
    ks = sm90(m, w, a, True)
    gpu.require(ks)
    y = run_layer(gpu.module, ks, x.cuda(), q, "relu", bias.cuda())
    ok, worst = close(y, ref, mag, QGMMA_TOL)
    record_property("worst", worst)
    assert ok, f"{ks[-1].name}: max |y-ref|/(|x||w|) = {worst:.2e} (tol {QGMMA_TOL:g})"
