"""The CPU lowering (lower-mxq-to-linalg -> IREE llvm-cpu) gives the numerics reference's bits."""

import numpy as np
import pytest
import torch
from iree import runtime as rt
from torch_mlir import ir

from mxc.compiler.context import make_context
from mxc.compiler.iree_backend import compile_to_vmfb
from mxc.numerics import FORMATS, FormatSpec, quantize
from mxc.passes import parse, run_pass
from mxc.passes._mxq_builders import quantized_types


def _bytes_type(t: ir.RankedTensorType) -> str:
    """The i8 type a quantize result is returned as: 4-bit codes packed two per byte, FP6 one code per byte."""
    shape = list(t.shape)
    if str(t.element_type) in ("f4E2M1FN", "i4"):
        shape[-1] //= 2
    return f"tensor<{'x'.join(map(str, shape))}xi8>"


def _as_bytes(v: str, t: str, bt: str) -> str:
    """IR line giving %{v}b: quantize result %{v} of type t as bt bytes.

    IREE stores no f6 type, so FP6 codes leave through a cast that the lowering folds away."""
    if t == bt:
        return f"%{v}b = tensor.cast %{v} : {t} to {bt}\n"
    if "xf6" in t:
        return f"%{v}b = builtin.unrealized_conversion_cast %{v} : {t} to {bt}\n"
    if "?" in t:  # the row count goes along as the source's and the result's dynamic size
        return (f"%{v}c0 = arith.constant 0 : index\n%{v}m = tensor.dim %{v}, %{v}c0 : {t}\n"
                f'%{v}b = "flow.tensor.bitcast"(%{v}, %{v}m, %{v}m) {{operandSegmentSizes = array<i32: 1, 1, 1>}} : '
                f"({t}, index, index) -> {bt}\n")
    return f'%{v}b = "flow.tensor.bitcast"(%{v}) {{operandSegmentSizes = array<i32: 1, 0, 0>}} : ({t}) -> {bt}\n'


def _compiled(text: str):
    """The module's `main`, compiled for the CPU after lower-mxq-to-linalg: numpy arrays in, out."""
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

    def main(*inputs: np.ndarray) -> list[np.ndarray]:
        out = sys_ctx.modules.module["main"](*[rt.asdevicearray(config.device, x) for x in inputs])
        return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]

    return main


def _run(text: str, *inputs: np.ndarray) -> list[np.ndarray]:
    return _compiled(text)(*inputs)


def compiled_quantize(x: torch.Tensor, spec: str):
    """(element bytes, scale codes, tensor scale) from the compiled quantizer for format spec `spec`."""
    return _run(_quantize_module(x.shape[0], x.shape[1], spec), x.numpy())


def _quantize_module(m: int | str, k: int, spec: str) -> str:
    """A module whose `main` quantizes an [m, k] float32 tensor (m "?": any row count) and returns the bytes."""
    fmt = FormatSpec.parse(spec).format
    with make_context(), ir.Location.unknown():
        e, s, ts = quantized_types([1], k, fmt)  # (one row, then the row count written in)
        eb = _bytes_type(e)
        e, s, eb = (str(t).replace("<1x", f"<{m}x") for t in (e, s, eb))
        sb = f"tensor<{m}x{s.split('x')[1]}xi8>"
    n = 3 if ts else 2
    rets = f"{eb}, {sb}" + (", tensor<f32>" if ts else "")
    text = f"""
func.func @main(%x: tensor<{m}x{k}xf32>) -> ({rets}) {{
  %e, %s{", %t" if ts else ""} = "mxq.quantize"(%x) {{format = "{spec}", block_size = {fmt.block_size} : i64,
      axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, {n - 2}>}}
      : (tensor<{m}x{k}xf32>) -> ({e}, {s}{", tensor<f32>" if ts else ""})
  {_as_bytes("e", e, eb)}  {_as_bytes("s", s, sb)}  return %eb, %sb{", %t" if ts else ""} : {rets}
}}"""
    return text


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


def _specs() -> list[str]:
    """Every format, and every option variant of each (one per option value)."""
    out = []
    for name, fmt in sorted(FORMATS.items()):
        out += [name, f"{name}{{rounding=stochastic,seed=7}}", f"{name}{{hadamard=32}}"]
        if fmt.family == "mx":
            out += [f"{name}{{scale_rule={r}}}" for r in ("rceil", "ceil", "even")]
        if fmt.choice:
            out += [f"{name}{{error_metric={m}}}" for m in ("mae", "max")]
    return out


def _assert_bits(case: torch.Tensor, spec: str):
    ref = quantize(case, spec)
    got = compiled_quantize(case, spec)
    np.testing.assert_array_equal(got[0].view(np.uint8), ref.packed_elements().numpy()
                                  if ref.fmt.element.bits != 6 else ref.elements.numpy(), err_msg="elements")
    np.testing.assert_array_equal(got[1].view(np.uint8), ref.scales.numpy(), err_msg="scales")
    if ref.fmt.tensor_scale:
        assert got[2].item() == ref.tensor_scale.item()


@pytest.mark.parametrize("spec", _specs())
@pytest.mark.parametrize("k", [64, 70])
def test_quantize_bits_equal_reference(spec, k):
    parsed = FormatSpec.parse(spec)
    fmt, opts = parsed.format, parsed.options
    if opts.hadamard and k % opts.hadamard:
        pytest.skip("hadamard needs K divisible by its size (a verifier error, tested in lit)")
    x = torch.cat([special_inputs(k), torch.randn(7, k) * torch.logspace(-3, 3, 7).unsqueeze(1)])
    if fmt.tensor_scale:  # the tensor amax spans rows: test specials and plain rows separately
        cases = [x[:9], x[9:], x[[0, 3, 4]]]
    else:
        cases = [x]
    for case in cases:
        _assert_bits(case, spec)


@pytest.mark.parametrize("spec", ["mxfp4", "mxfp6_e2m3", "mxfp8{scale_rule=rceil}", "mxint8", "nvfp4",
                                  "nvfp4{rounding=stochastic,seed=7}", "if4", "nvfp4_4over6",
                                  "mxfp4{hadamard=32}", "fp4_ue5m3", "nvint4"])
def test_dynamic_row_count_gives_the_reference_bits(spec):
    """A quantize compiled for [?, K] (model.py's get_dynamic_shapes()) gives the reference's bits at every row
    count it is called with, from one compiled module."""
    k = 64
    main = _compiled(_quantize_module("?", k, spec))
    x = torch.cat([special_inputs(k), torch.randn(7, k) * torch.logspace(-3, 3, 7).unsqueeze(1)])
    for rows in (x[:1], x[9:], x[:5], x):
        ref = quantize(rows, spec)
        got = main(rows.numpy())
        np.testing.assert_array_equal(got[0].view(np.uint8), ref.packed_elements().numpy()
                                      if ref.fmt.element.bits != 6 else ref.elements.numpy(), err_msg="elements")
        np.testing.assert_array_equal(got[1].view(np.uint8), ref.scales.numpy(), err_msg="scales")
        if ref.fmt.tensor_scale:
            assert got[2].item() == ref.tensor_scale.item()


def _rows_module(k: int, spec: str) -> str:
    """`main(x [?, k] f32, rows [?, B] i8)`: mxq.pack of x's quantize, and mxq.dequantize of mxq.unpack(rows)."""
    from mxc.numerics import row_nbytes

    parsed = FormatSpec.parse(spec)
    fmt, bs = parsed.format, parsed.format.block_size
    nb = row_nbytes(fmt, k)
    with make_context(), ir.Location.unknown():
        e, s, ts = (str(t).replace("<1x", "<?x") if t is not None else None for t in quantized_types([1], k, fmt))
    n = 1 if ts else 0
    return f"""
func.func @main(%x: tensor<?x{k}xf32>, %rows: tensor<?x{nb}xi8>) -> (tensor<?x{nb}xi8>, tensor<?x{k}xf32>) {{
  %e, %s{", %t" if ts else ""} = "mxq.quantize"(%x) {{format = "{spec}", block_size = {bs} : i64,
      axis = 1 : i64, resultSegmentSizes = array<i32: 1, 1, {n}>}}
      : (tensor<?x{k}xf32>) -> ({e}, {s}{", " + ts if ts else ""})
  %b = "mxq.pack"(%e, %s{", %t" if ts else ""}) {{format = "{spec}", block_size = {bs} : i64, k = {k} : i64,
      operandSegmentSizes = array<i32: 1, 1, {n}>}} : ({e}, {s}{", " + ts if ts else ""}) -> tensor<?x{nb}xi8>
  %ue, %us{", %ut" if ts else ""} = "mxq.unpack"(%rows) {{format = "{spec}", block_size = {bs} : i64, k = {k} : i64,
      resultSegmentSizes = array<i32: 1, 1, {n}>}}
      : (tensor<?x{nb}xi8>) -> ({e}, {s}{", tensor<?x1xf32>" if ts else ""})
  %y = "mxq.dequantize"(%ue, %us{", %ut" if ts else ""}) {{format = "{spec}", block_size = {bs} : i64, k = {k} : i64,
      operandSegmentSizes = array<i32: 1, 1, {n}>}} : ({e}, {s}{", tensor<?x1xf32>" if ts else ""}) -> tensor<?x{k}xf32>
  return %b, %y : tensor<?x{nb}xi8>, tensor<?x{k}xf32>
}}"""


@pytest.mark.parametrize("spec", [*sorted(n for n in FORMATS if n != "none"), "nvfp4{rounding=stochastic,seed=7}",
                                  "mxfp4{hadamard=32}"])
def test_pack_and_unpack_rows_equal_the_reference(spec):
    """mxq.pack gives numerics.row_bytes' bytes (a KV cache's rows); mxq.unpack -> mxq.dequantize gives
    from_row_bytes(...).dequantize() bit for bit (float32 subnormals flushed, as IREE's CPU code does), rows of
    several quantizes (NV: a tensor scale per row) at once, at any row count of one compiled module."""
    from mxc.numerics import from_row_bytes, row_bytes

    k = 64
    main = _compiled(_rows_module(k, spec))
    x = torch.cat([special_inputs(k), torch.randn(7, k) * torch.logspace(-3, 3, 7).unsqueeze(1)])
    stored = torch.cat([row_bytes(quantize(x[i:i + 4], spec)) for i in range(0, len(x), 4)])  # 4 quantizes
    for rows in (x[:1], x[9:], x):
        b, y = main(rows.numpy(), stored[:len(rows)].view(torch.int8).numpy())
        np.testing.assert_array_equal(b.view(np.uint8), row_bytes(quantize(rows, spec)).numpy(), err_msg="bytes")
        ref = from_row_bytes(stored[:len(rows)], spec, k).dequantize()
        ref = torch.where(ref.abs() < 2.0**-126, ref * 0, ref)  # IREE's CPU code flushes f32 subnormals (README)
        nan = ref.isnan().numpy()  # (any NaN: a Hadamard rotation's NaN sign is not specified)
        np.testing.assert_array_equal(np.isnan(y), nan, err_msg="NaN")
        np.testing.assert_array_equal(y.view(np.uint32)[~nan], ref.numpy().view(np.uint32)[~nan], err_msg="values")
