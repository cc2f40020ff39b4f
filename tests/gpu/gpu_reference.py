"""What the GPU checks compare the kernels with: test matrices, float64 references, tolerances.

The kernels sum in float32 in their own order; the references are float64 sums of the same
dequantized products, so a layer's error is bounded relative to sum |x||w| (`close`).
"""

from __future__ import annotations

import torch

from mxc.kernels import Kernel
from mxc.numerics.elements import decode
from mxc.numerics.options import FormatSpec
from mxc.numerics.quantize import QTensor
from mxc.targets import GemmLayer, get_target

TOL = 2e-6  # |y - ref| <= TOL * sum|x||w|: float32 accumulation order (K ~ 1000)
BS_TOL = 4e-6  # the twin: exact bf16 products (element x scale), float32 sums, tensor scales after


def sm90(m: int, weights: str, acts: str | None, bias: bool) -> list[Kernel]:
    """The kernels cuda-sm90 selects for a layer."""
    layer = GemmLayer("check", m, FormatSpec.parse(weights), acts and FormatSpec.parse(acts), bias)
    ks = get_target("cuda-sm90").select(layer)
    assert not isinstance(ks, str), ks
    return ks


def spread_matrix(n: int, k: int, seed: int) -> torch.Tensor:
    """Random rows of spread magnitudes with a zero block, subnormals and a row near float32's top."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) * torch.exp(torch.randn(n, 1, generator=g))
    w[0, :40] = 0.0  # a zero block
    w[1, :16] = torch.tensor([2.0**-130, -(2.0**-140), 1e-38] * 5 + [0.0])  # subnormals
    w[2, :] *= 1e30
    return w


def special_values(x: torch.Tensor) -> torch.Tensor:
    """x with a NaN block, an Inf block and a block that saturates the FP8 formats (rows 3, 4, 5)."""
    x[3, 64:96] = float("nan")
    x[4, 96:128] = float("inf")
    x[5, 128:160] = 500.0
    return x



def epilogue(v: torch.Tensor, name: str) -> torch.Tensor:
    """The kernels' epilogues (mxc.kernels.EPILOGUES) in float64."""
    if name == "relu":
        return torch.relu(v)
    if name == "gelu":
        return (v * 0.5) * (1 + torch.erf(v * 0.7071067811865476))
    if name == "silu":
        return v / (1 + torch.exp(-v))
    return v


def close(y: torch.Tensor, ref: torch.Tensor, mag: torch.Tensor, tol: float) -> tuple[bool, float]:
    """|y - ref| <= tol * mag elementwise (mag = |x| @ |W|^T + |bias|, the sum's scale); the worst
    |y - ref| / mag."""
    err = (y.double().cpu() - ref).abs()
    ratio = (err / (mag * tol + 1e-30)).max().item()
    return ratio <= 1.0, (err / (mag + 1e-30)).max().item()


def bf16_weights(q: QTensor, k: int) -> torch.Tensor:
    """The decoded weights as the bf16 kernels hold them: bf16(element x block scale), tensor scale after."""
    if q.tensor_scale is None:
        bsv = q.scale_values()
    else:
        bsv = decode(q.scales & (0x7F if q.fmt.scale.flag else 0xFF), q.fmt.scale.element)
    vals = q.element_values().unflatten(-1, (-1, q.fmt.block_size)) * bsv.unsqueeze(-1)
    wd = vals.flatten(-2)[:, :k].bfloat16().double()
    return wd * (q.tensor_scale.double() if q.tensor_scale is not None else 1)


def layer_inputs(m: int, k: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights [n, k], activations [m, k] and bias [n], standard normal."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g), torch.randn(m, k, generator=g), torch.randn(n, generator=g)
