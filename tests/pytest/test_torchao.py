"""Cross-check against torchao's MX and NVFP4 emulation (an independent implementation)."""

import pytest
import torch

from mxc.numerics import fake_quantize

mx_tensor = pytest.importorskip("torchao.prototype.mx_formats.mx_tensor")
nvfp4_tensor = pytest.importorskip("torchao.prototype.mx_formats.nvfp4_tensor")

MX = {"mxfp8": torch.float8_e4m3fn, "mxfp8_e5m2": torch.float8_e5m2, "mxfp6_e2m3": "fp6_e2m3",
      "mxfp6_e3m2": "fp6_e3m2", "mxfp4": torch.float4_e2m1fn_x2}


@pytest.mark.parametrize("rule", ["floor", "rceil", "ceil", "even"])
@pytest.mark.parametrize("fmt", sorted(MX))
def test_mx_formats_and_scale_rules_agree_with_torchao(fmt, rule):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 256, generator=g) * torch.logspace(-4, 4, 64).unsqueeze(1)
    mode = mx_tensor.ScaleCalculationMode(rule)
    ref = mx_tensor.MXTensor.to_mx(x, MX[fmt], 32, scaling_mode=mode).dequantize(torch.float32)
    assert torch.equal(fake_quantize(x, fmt, scale_rule=rule), ref)


def test_nvfp4_agrees_with_torchao():
    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(1))
    scale = nvfp4_tensor.per_tensor_amax_to_scale(x.abs().amax())
    ref = nvfp4_tensor.NVFP4Tensor.to_nvfp4(x, per_tensor_scale=scale).dequantize(torch.float32)
    assert torch.equal(fake_quantize(x, "nvfp4"), ref)
