"""The CPU lowering (lower-mxq-to-linalg -> IREE llvm-cpu) gives the numerics reference's bits."""

import numpy as np
import pytest
import torch
from iree import runtime as rt
from torch_mlir import ir

from mxc.compiler.context import make_context
from mxc.compiler.iree_backend import compile_to_vmfb
from mxc.numerics import FORMATS, quantize
from mxc.passes import parse, run_pass
from mxc.passes._mxq_builders import quantized_types


def _bytes_type(t: ir.RankedTensorType) -> str:
    shape = list(t.shape)
    if str(t.element_type).startswith("f4"):
        shape[-1] //= 2
    return f"tensor<{'x'.join(map(str, shape))}xi8>"


def _run(text: str, *inputs: np.ndarray) -> list[np.ndarray]:
    ctx = make_context()
    with ctx, ir.Location.unknown():
        module = ir.Module.parse(text)
        for p in parse("lower-mxq-to-linalg"):
            run_pass(p, module)
        vmfb = compile_to_vmfb(str(module))
    config = rt.Config("local-task")
    mod = rt.VmModule.copy_buffer(config.vm_instance, vmfb)
    sys_ctx = rt.SystemContext(vm_modules=[rt.create_hal_module(config.vm_instance, config.device), mod],
                               config=config)
    out = sys_ctx.modules.module["main"](*[rt.asdevicearray(config.device, x) for x in inputs])
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def compiled_quantize(x: torch.Tensor, fmt_name: str):
    """(element bytes, scale codes, tensor scale) from the compiled quantizer."""
    fmt = FORMATS[fmt_name]
    m, k = x.shape
    with make_context(), ir.Location.unknown():
        e, s, ts = quantized_types([m], k, fmt)
        e, s = str(e), str(s)
        eb, sb = _bytes_type(ir.RankedTensorType(ir.Type.parse(e))), f"tensor<{m}x{s.split('x')[1]}xi8>"
    n = 3 if ts else 2
    rets = f"{eb}, {sb}" + (", tensor<f32>" if ts else "")
    text = f"""
func.func @main(%x: tensor<{m}x{k}xf32>) -> ({rets}) {{
  %q:{n} = "mxq.quantize"(%x) {{format = "{fmt_name}", block_size = {fmt.block_size} : i64, axis = 1 : i64,
      resultSegmentSizes = array<i32: 1, 1, {n - 2}>}} : (tensor<{m}x{k}xf32>) -> ({e}, {s}{", tensor<f32>" if ts else ""})
  %eb = "flow.tensor.bitcast"(%q#0) {{operandSegmentSizes = array<i32: 1, 0, 0>}} : ({e}) -> {eb}
  %sb = "flow.tensor.bitcast"(%q#1) {{operandSegmentSizes = array<i32: 1, 0, 0>}} : ({s}) -> {sb}
  return %eb, %sb{", %q#2" if ts else ""} : {rets}
}}"""
    return _run(text, x.numpy())


def special_inputs(k: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    rows = [
        torch.randn(k, generator=g),
        torch.randn(k, generator=g) * 1e4,
        torch.randn(k, generator=g) * 1e-5,
        torch.randn(k, generator=g) * 2.0**-130,  # subnormal float32 block
        torch.zeros(k),  # zero block
        torch.full((k,), 3e38),  # saturation at the top of float32
        torch.arange(k, dtype=torch.float32) * 0.25 - 4,  # exact grid points and ties
        -torch.arange(k, dtype=torch.float32) * 0.75,
        torch.where(torch.arange(k) % 5 == 0, torch.tensor(-0.0), torch.tensor(1e-3)),
    ]
    x = torch.stack(rows)
    x[1, 3] = float("nan")
    x[2, 40 % k] = float("inf")
    x[6, 1] = float("-inf")
    return x


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("k", [64, 70])
def test_quantize_bits_equal_reference(fmt, k):
    x = torch.cat([special_inputs(k), torch.randn(7, k) * torch.logspace(-3, 3, 7).unsqueeze(1)])
    if FORMATS[fmt].tensor_scale:  # the tensor amax spans rows: test specials and plain rows separately
        cases = [x[:9], x[9:], x[[0, 3, 4]]]
    else:
        cases = [x]
    for case in cases:
        ref = quantize(case, fmt)
        got = compiled_quantize(case, fmt)
        np.testing.assert_array_equal(got[0].view(np.uint8), ref.packed_elements().numpy())
        np.testing.assert_array_equal(got[1].view(np.uint8), ref.scales.numpy())
        if FORMATS[fmt].tensor_scale:
            assert got[2].item() == ref.tensor_scale.item()
