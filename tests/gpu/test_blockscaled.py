"""The block-scaled skeleton (mxc_bs.cuh) with its sm_90a atom, the code the sm_100a kernels share:
`bsq` bit-identical to numerics in the tile and 128x4 layouts, and the twins of `bsmma` (every
native pair) and `bsdec` (every weight format) against the float64 reference."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from gpu_reference import BS_TOL, bf16_weights, close, epilogue, layer_inputs, special_values, spread_matrix

from mxc.kernels.catalog import native_pair_kernels
from mxc.kernels.kinds import BsDec, BsQ
from mxc.kernels.layouts import unswizzle_128x4, untile_codes
from mxc.kernels.operands import BS_ACT_FORMATS, BS_TILE, NV_ACT, WEIGHT_FORMATS, native_pairs, pair_kind
from mxc.kernels.tcgen05 import KIND_NAMES
from mxc.numerics.quantize import quantize
from mxc.runtime.cuda import run_kernels, run_layer

ARCH = "sm_90a"  # the twins: the skeleton with its wgmma atom


def _quantizers(a: str, unit: int | None = None):
    """[amax,] bsq of the pair (a, a), bsq writing tiles of `unit` elements per 16 bytes."""
    ks = native_pair_kernels(a, a, True, ARCH)[:-1]
    return [dataclasses.replace(k, unit=unit) if unit and isinstance(k, BsQ) else k for k in ks]


def _bsq_cases():
    """(format, input, unit): every activation format on special values (M = 200, K = 1000 padded to
    1024), the NV formats also on normal data (64 x 704); MXFP4 in packed (32) and unpacked (16) units."""
    cases = [(a, "special") for a in BS_ACT_FORMATS]
    cases += [(a, f"normal{i}") for i, a in enumerate(NV_ACT)]
    return [pytest.param(a, data, ue, id=f"{a}-{data}-u{ue}")
            for a, data in cases for ue in sorted({16, 32} if a == "mxfp4" else {_quantizers(a)[-1].unit})]


def _bsq_input(data: str) -> torch.Tensor:
    if data == "special":
        return special_values(spread_matrix(200, 1000, 7))
    g = torch.Generator().manual_seed(8)  # the i-th NV format takes the (i+1)-th draw
    for _ in range(int(data.removeprefix("normal")) + 1):
        x = torch.randn(64, 704, generator=g)
    return x


@pytest.mark.parametrize("a, data, ue", _bsq_cases())
def test_bsq(gpu, a, data, ue):
    """Tiled codes and 128x4 scales equal numerics.quantize's; the outputs start as garbage (0xAB), so
    the padding must be written; the amax partials' max is the finite amax numerics scales by."""
    x = _bsq_input(data)
    m, k = x.shape
    ks = _quantizers(a, ue)
    gpu.require(ks)
    qa = quantize(x, a)
    out = run_kernels(gpu.module, ks, {"x": x.cuda()}, m, 0, k, fill=0xAB)
    codes = untile_codes(out["a"].cpu(), m, qa.elements.shape[1], qa.fmt.element.bits, ue)
    bs, kp = qa.fmt.block_size, -(-k // BS_TILE) * BS_TILE
    scales = unswizzle_128x4(out["a_scales"].cpu().reshape(-1, kp // bs // 4, 512), m, kp // bs)
    scales = scales[:, :qa.scales.shape[1]]
    bad = scales != qa.scales
    assert torch.equal(codes, qa.elements) and torch.equal(scales, qa.scales), (
        f"kind::{KIND_NAMES[pair_kind(a, a)]}: {(codes != qa.elements).sum().item()} codes, "
        f"{bad.sum().item()} scales differ; first at {torch.nonzero(bad)[:3].tolist()}: "
        f"{scales[bad][:6].tolist()} vs {qa.scales[bad][:6].tolist()}")
    if "a_tensor_scale" in out:
        finite = x.abs()[torch.isfinite(x)].max().item()
        amax = out["a_tensor_scale"].max().item()
        assert amax == finite, f"amax {amax:.6g} vs {finite:.6g}"


@pytest.mark.parametrize("a, w", [pytest.param(a, w, id=f"{a}-{w}") for a, w in native_pairs()])
def test_bsmma(gpu, record_property, a, w):
    """silu(x @ W^T + bias) through [amax,] bsq + bsmma, M=300 K=1000 N=200 (K not a multiple of
    128, M and N not of the tile), within BS_TOL * sum|x||w|."""
    m, k, n = 300, 1000, 200
    wm, x, bias = layer_inputs(m, k, n, seed=5)
    q, qa = quantize(wm, w), quantize(x, a)
    xd, wd = qa.dequantize().double()[:, :k], q.dequantize().double()[:, :k]
    ref = epilogue(xd @ wd.T + bias.double(), "silu")
    mag = xd.abs() @ wd.abs().T + bias.double().abs()
    ks = native_pair_kernels(a, w, True, ARCH)
    gpu.require(ks)
    y = run_layer(gpu.module, ks, x.cuda(), q, "silu", bias.cuda())
    ok, worst = close(y, ref, mag, BS_TOL)
    record_property("worst", worst)
    assert ok, f"{ks[-1].name}: max |y-ref|/(|x||w|) = {worst:.2e} (tol {BS_TOL:g})"


@pytest.mark.parametrize("fmt", WEIGHT_FORMATS)
def test_bsdec(gpu, record_property, fmt):
    """relu(x @ W^T + bias) through bf16 bsq + bsdec (weights decoded to bf16 in shared memory),
    M=300 K=1000 N=200, within BS_TOL * sum|x||w|."""
    m, k, n = 300, 1000, 200
    wm, x, bias = layer_inputs(m, k, n, seed=6)
    q = quantize(wm, fmt)
    xd, wd = x.bfloat16().double(), bf16_weights(q, k)
    ref = epilogue(xd @ wd.T + bias.double(), "relu")
    mag = xd.abs() @ wd.abs().T + bias.double().abs()
    ks = [BsQ(a_format="bf16"), BsDec(w_format=fmt, bias=True)]
    gpu.require(ks)
    y = run_layer(gpu.module, ks, x.cuda(), q, "relu", bias.cuda())
    ok, worst = close(y, ref, mag, BS_TOL)
    record_property("worst", worst)
    assert ok, f"{ks[-1].name}: max |y-ref|/(|x||w|) = {worst:.2e} (tol {BS_TOL:g})"
