"""Builders for mxq ops whose result types follow from the format table."""

from __future__ import annotations

from torch_mlir import ir

from mxc.dialects.mxq import DequantizeOp, PackOp, QuantizeOp, UnpackOp, spec_attr
from mxc.numerics.quantize import row_nbytes
from mxc.numerics.formats import Format
from mxc.numerics.options import FormatSpec


def _i64(v: int) -> ir.IntegerAttr:
    return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), v)


def quantized_types(lead: list[int], k: int, fmt: Format):
    """(elements, scales, tensor_scale or None) types for a [*lead, K] tensor in `fmt`."""
    ko = -(-k // fmt.block_size)
    elements = ir.RankedTensorType.get([*lead, ko * fmt.block_size], ir.Type.parse(fmt.storage_mlir))
    scales = ir.RankedTensorType.get([*lead, ko], ir.Type.parse(fmt.scale.mlir))
    ts = ir.RankedTensorType.get([], ir.F32Type.get()) if fmt.tensor_scale else None
    return elements, scales, ts


def quantize(x: ir.Value, spec: FormatSpec) -> QuantizeOp:
    """mxq.quantize of x [..., K] along K in `spec` (format and options)."""
    shape = list(ir.RankedTensorType(x.type).shape)
    e, s, ts = quantized_types(shape[:-1], shape[-1], spec.format)
    return QuantizeOp(
        x,
        format=spec_attr(spec),
        block_size=_i64(spec.block_size),
        axis=_i64(len(shape) - 1),
        elements=e,
        scales=s,
        tensor_scale=ts,
    )


def dequantize(elements: ir.Value, scales: ir.Value, tensor_scale, spec: FormatSpec, k: int) -> ir.Value:
    lead = list(ir.RankedTensorType(elements.type).shape)[:-1]
    return DequantizeOp(
        elements,
        scales,
        format=spec_attr(spec),
        block_size=_i64(spec.block_size),
        k=_i64(k),
        result=ir.RankedTensorType.get([*lead, k], ir.F32Type.get()),
        tensor_scale=tensor_scale,
    ).result


def quantize_dequantize(x: ir.Value, spec: FormatSpec) -> ir.Value:
    """The QDQ pair that marks `x` as quantized in `spec` (fake-quant form)."""
    q = quantize(x, spec)
    k = ir.RankedTensorType(x.type).shape[-1]
    return dequantize(q.elements, q.scales, q.tensor_scale, spec, k)


def pack(q: QuantizeOp, spec: FormatSpec, k: int) -> ir.Value:
    """mxq.pack of a quantize's results: i8 rows of `row_nbytes` bytes."""
    lead = list(ir.RankedTensorType(q.elements.type).shape)[:-1]
    return PackOp(q.elements, q.scales, format=spec_attr(spec), block_size=_i64(spec.block_size), k=_i64(k),
                  result=ir.RankedTensorType.get([*lead, row_nbytes(spec.format, k)], ir.IntegerType.get_signless(8)),
                  tensor_scale=q.tensor_scale).result


def unpack(rows: ir.Value, spec: FormatSpec, k: int) -> UnpackOp:
    """mxq.unpack of i8 rows: elements, scales and (NV family) a tensor scale per row."""
    lead = list(ir.RankedTensorType(rows.type).shape)[:-1]
    e, s, ts = quantized_types(lead, k, spec.format)
    if ts is not None:
        ts = ir.RankedTensorType.get([*lead, 1], ir.F32Type.get())
    return UnpackOp(rows, format=spec_attr(spec), block_size=_i64(spec.block_size), k=_i64(k), elements=e,
                    scales=s, tensor_scale=ts)
