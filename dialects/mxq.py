"""The `mxq` dialect: block-scaled quantization on builtin tensors.

Defined in Python with `torch_mlir.dialects.ext` (IRDL-backed), loaded into the
context like any MLIR dialect. Tensors use MLIR's builtin small float types, so
a dump shows the real element types (`f4E2M1FN`, `f6E2M3FN`, `f8E8M0FNU`, ...;
`i8`/`i4` where MLIR has no type: MXINT8, IF4 and NVINT4 codes, IF4 and UE5M3
scales). Formats are named by string attributes holding a canonical format
spec, a name of the format table of `mxc.numerics` with optional options
(`"mxfp4{scale_rule=rceil,hadamard=32}"`, see `mxc.numerics.options`), or
"none". They are written by `spec_attr` and read only by `format_attr`, which
returns the parsed `FormatSpec` (None for "none"); the verifiers check every
shape and combination against the format table. Every op also refuses an
attribute it does not define (besides the dialect's discardable `mxq.*`
attributes of DISCARDABLE_ATTRS and other dialects' prefixed ones) and a
dynamic size other than a leading (token) dimension of an activation: weights,
scales along them and biases are static, and so is every last dimension (K, N,
the block count), which the lowerings compute with.

    %e, %s = mxq.quantize %x {format = "mxfp4", block_size = 32, axis = 1}
        : (tensor<4x64xf32>) -> (tensor<4x64xf4E2M1FN>, tensor<4x2xf8E8M0FNU>)

Ops (generic syntax in dumps):
  mxq.param           a named weight held outside the IR (an IREE parameter)
  mxq.matmul          a quantizable matmul: lhs[..., K] x rhs[N, K]^T (+ bias), named by `layer`
  mxq.quantize        x -> (elements, block scales[, fp32 tensor scale]) along the last axis
  mxq.dequantize      the inverse, to f32
  mxq.pack            quantized rows as rows of bytes (a KV cache held as codes); mxq.unpack the inverse
  mxq.scaled_matmul   OCP DotGeneral: sum over K blocks of scale_a * scale_b * sum(a_i * b_i)
  mxq.fused_matmul    quantize(x) -> scaled_matmul with offline weights -> bias -> activation
"""


import functools
from typing import Any

from torch_mlir import ir
from torch_mlir.dialects import ext
from torch_mlir.dialects.ext import AttributeDef, Operand, OperandDef, Result, ResultDef, Variadicity

from mxc.dialects.mxq_kernels import BUCKETS_ATTR, KERNELS_ATTR, LAUNCH_GROUP_ATTR, PATH_ATTR
from mxc.numerics.formats import NONE
from mxc.numerics.options import FormatSpec, parse_optional, spec_text
from mxc.numerics.quantize import row_nbytes

EPILOGUES = ("none", "relu", "gelu", "silu")
Tensor = ir.RankedTensorType
DYN = ir.ShapedType.get_dynamic_size()


class MXQ(ext.Dialect, name="mxq"):
    """Block-scaled quantization dialect."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# The dialect's discardable attributes: what the passes record on mxq ops beside their own
# attributes. Any other `mxq.`-prefixed or unprefixed attribute on an mxq op is a verifier error;
# another dialect's prefixed attributes are that dialect's business (MLIR's convention).
DISCARDABLE_ATTRS = {
    "mxq.decision": "why the layer got its format (mxq-select-formats)",
    "mxq.layer": "the module path of an op without a `layer` attribute",
    "mxq.op": "what the op is when not a linear (conv2d; embedding on a torch op)",
    "mxq.sqnr_db": "a quantized weight's SQNR (on its mxq.param)",
    "mxq.source": "the parameter a quantized weight was computed from (on its mxq.param)",
    "mxq.nonfinite_blocks": "a quantized weight's NaN/Inf block count (on its mxq.param)",
    KERNELS_ATTR: "the CUDA kernels of a fused layer (mxq-legalize-cuda)",
    PATH_ATTR: "the CUDA path of a fused layer in words (mxq-legalize-cuda)",
    BUCKETS_ATTR: "the CUDA kernels of a dynamic row count's smaller buckets, by their largest M (mxq-legalize-cuda)",
    LAUNCH_GROUP_ATTR: "the first layer of the decode launch a fused layer shares with the others reading its input "
                       "(mxq-legalize-cuda)",
    "mxq.reason": "why a torch op stayed in high precision",
    "mxq.calibrate": "how a layer's weight codes are chosen: gptq, mr-gptq (mxq-select-formats)",
    "mxq.calibration": "a calibrated weight's record, JSON (mxq-calibrate-weights; on its quantize, then param)",
    "mxq.imported": "where a weight's codes came from when a checkpoint gave them, JSON (mxq-quantize-weights, "
                    "--checkpoint)",
    "mxq.s_enc": "the NV tensor scale a calibrated weight's codes were chosen with (on its quantize)",
}


def _segment_attrs(fields, kind, attr: str) -> tuple[str, ...]:
    """(`attr`,) when an op has an optional or variadic field of `kind`: the IRDL segment sizes."""
    return (attr,) if any(isinstance(f, kind) and f.variadicity != Variadicity.single for f in fields) else ()


def _known_attrs(cls) -> tuple[str, ...]:
    """The attributes an op of class `cls` defines itself, segment sizes included, in definition order."""
    own = tuple(f.name for f in cls._fields if isinstance(f, AttributeDef))
    return (own + _segment_attrs(cls._fields, OperandDef, "operandSegmentSizes")
            + _segment_attrs(cls._fields, ResultDef, "resultSegmentSizes"))


class _VerifiedOp(MXQ.Operation):
    """Base of verified ops: the checks every mxq op shares (no unknown attribute, static sizes but leading ones),
    then the subclass's `_check()`, which returns an error string or None."""

    def verify_invariants(self) -> bool:
        try:
            msg = self._check_attributes() or self._check_static() or self._check()
        except Exception as e:  # a malformed attribute is a verifier error, not a crash
            msg = f"malformed op: {e}"
        if msg:
            self.location.emit_error(f"'{self.OPERATION_NAME}' op {msg}")
            return False
        return True

    def _check(self) -> str | None:
        return None

    def _check_attributes(self) -> str | None:
        known = _known_attrs(type(self))
        for named in self.operation.attributes:
            name = named if isinstance(named, str) else named.name
            if name in known or name in DISCARDABLE_ATTRS:
                continue
            if "." in name and not name.startswith(MXQ.DIALECT_NAMESPACE + "."):
                continue  # another dialect's discardable attribute
            return (f"unknown attribute '{name}': {self.OPERATION_NAME} takes {', '.join(known)}, and the "
                    f"dialect's discardable {', '.join(DISCARDABLE_ATTRS)}")
        return None

    STATIC = ()  # operands/results that must be fully static (weights, their scales, biases)

    def _check_static(self) -> str | None:
        """Operands and results are ranked, their last dimension (K, N, a block count) static, and the
        fields of `STATIC` fully static: only the leading (token) dimensions of activations may be dynamic
        (model.py's get_dynamic_shapes()); the lowerings take those as tensor.dim values."""
        for f in type(self)._fields:
            if not isinstance(f, (OperandDef, ResultDef)):
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            t = value.type
            if not isinstance(t, ir.ShapedType):
                continue
            kind = "operand" if isinstance(f, OperandDef) else "result"
            if not t.has_rank:
                return f"{kind} '{f.name}' must be a ranked tensor, got {t}"
            if f.name in self.STATIC and not t.has_static_shape:
                return (f"{kind} '{f.name}' has a dynamic shape ({t}): a weight, its scales and a bias are "
                        "static (only the leading, token dimensions of activations may be dynamic)")
            if t.rank and t.is_dynamic_dim(t.rank - 1):
                return (f"{kind} '{f.name}' has a dynamic last dimension ({t}): the contraction axis and "
                        "the blocks along it must be static (only leading, token dimensions may be dynamic)")
        return None


def _str(attr) -> str:
    return ir.StringAttr(attr).value


def _int(attr) -> int:
    return ir.IntegerAttr(attr).value


@functools.cache
def _parse(text: str) -> FormatSpec | None:
    return parse_optional(text)


def format_attr(op, name: str, *, allow_none: bool = True) -> FormatSpec | None:
    """The FormatSpec an op's format attribute `name` holds, None for "none" (high precision).

    The one reader of the spec strings in the IR (parsed once per distinct
    text). Raises the numerics' ValueError for a malformed spec, and for "none"
    where `allow_none` is false.
    """
    text = _str(getattr(op, "operation", op).attributes[name])
    if text == NONE and not allow_none:
        FormatSpec.parse(text)  # raises: "none" is not a format
    return _parse(text)


def spec_attr(spec: FormatSpec | None) -> ir.StringAttr:
    """The attribute that carries `spec` in the IR: its canonical text, "none" for None."""
    return ir.StringAttr.get(spec_text(spec))


def _checked_format(op, name: str, block_size: int, allow_none: bool = False):
    """(spec, None), or (None, error string) for a spec that does not parse or has another block size."""
    try:
        spec = format_attr(op, name, allow_none=allow_none)
    except ValueError as e:
        return None, str(e)
    if spec is not None and spec.block_size != block_size:
        return None, f"format '{spec}' has block size {spec.block_size}, not {block_size}"
    return spec, None


def _check_quantized(spec: FormatSpec, bs: int, k: int, elements, scales, tensor_scale, lead, per_row=False):
    """Shared by quantize/dequantize/scaled/fused/pack/unpack: element, scale, tensor-scale types. `per_row`: the
    tensor scale may also be one per row, tensor<[*lead] x 1 x f32> (rows of several quantizes, a KV cache)."""
    fmt, hadamard = spec.format, spec.hadamard
    if hadamard and k % hadamard:
        return f"hadamard={hadamard} needs K divisible by {hadamard}, got K={k}"
    e, s = Tensor(elements.type), Tensor(scales.type)
    kp = _ceil_div(k, bs) * bs
    if list(e.shape) != [*lead, kp]:
        return f"elements must have shape {[*lead, kp]} (K={k} padded to the block size {bs}), got {list(e.shape)}"
    if str(e.element_type) != fmt.storage_mlir:
        return f"format '{spec}' stores {fmt.storage_mlir} elements, got {e.element_type}"
    if list(s.shape) != [*lead, kp // bs]:
        return f"scales must have shape {[*lead, kp // bs]} (one per block of {bs}), got {list(s.shape)}"
    if str(s.element_type) != fmt.scale.mlir:
        return f"format '{spec}' uses {fmt.scale.mlir} scales, got {s.element_type}"
    if fmt.tensor_scale and tensor_scale is None:
        return f"format '{spec}' needs a tensor_scale operand/result"
    if not fmt.tensor_scale and tensor_scale is not None:
        return f"format '{spec}' has no tensor scale"
    if tensor_scale is not None and str(tensor_scale.type) != "tensor<f32>":
        ts = Tensor(tensor_scale.type)
        if not (per_row and str(ts.element_type) == "f32" and list(ts.shape) == [*lead, 1]):
            rows = f" or one per row, tensor<{'x'.join('?' if d == DYN else str(d) for d in lead)}x1xf32>" \
                if per_row else ""
            return f"tensor_scale must be tensor<f32>{rows}, got {tensor_scale.type}"
    return None


class ParamOp(_VerifiedOp, name="param"):
    """A weight held outside the IR under `name` (written to the .irpa archive).

        %w = "mxq.param"() {name = "fc1.weight"} : () -> tensor<64x128xf32>
    """

    name: ir.StringAttr
    result: Result[Any]
    STATIC = ("result",)


class MatmulOp(_VerifiedOp, name="matmul"):
    """A quantizable matmul, not yet assigned formats: lhs[..., K] x rhs[N, K]^T + bias.

    `rhs` may also be batched, [B, N, K] against lhs [B, M, K] (aten.bmm).
    `layer` is the module path (e.g. "layers.3.mlp.down_proj").
    """

    lhs: Operand[Tensor]
    rhs: Operand[Tensor]
    layer: ir.StringAttr
    result: Result[Tensor]
    bias: Operand[Tensor] | None = None
    STATIC = ("rhs", "bias")

    def _check(self):
        lhs, rhs, res = Tensor(self.lhs.type), Tensor(self.rhs.type), Tensor(self.result.type)
        if rhs.rank not in (2, 3) or lhs.rank < 1:
            return "rhs must be [N, K] or [B, N, K]"
        if lhs.shape[-1] != rhs.shape[-1]:
            return f"contraction sizes differ: lhs K={lhs.shape[-1]}, rhs K={rhs.shape[-1]}"
        if rhs.rank == 3 and (lhs.rank != 3 or lhs.shape[0] != rhs.shape[0]):
            return "batched rhs [B, N, K] needs lhs [B, M, K] with the same B"
        expected = [*lhs.shape[:-1], rhs.shape[-2]]
        if list(res.shape) != expected:
            return f"result must have shape {expected}, got {list(res.shape)}"
        if self.bias is not None and list(Tensor(self.bias.type).shape) != [rhs.shape[-2]]:
            return f"bias must have shape [{rhs.shape[-2]}]"
        return None


class QuantizeOp(_VerifiedOp, name="quantize"):
    """Block-quantize along the last axis (the contraction axis), padding K with zeros."""

    input: Operand[Tensor]
    format: ir.StringAttr
    block_size: ir.IntegerAttr
    axis: ir.IntegerAttr
    elements: Result[Tensor]
    scales: Result[Tensor]
    tensor_scale: Result[Tensor] | None = None

    def _check(self):
        x = Tensor(self.input.type)
        if _int(self.axis) != x.rank - 1:
            return f"axis must be the innermost axis ({x.rank - 1}); transpose first"
        bs = _int(self.block_size)
        spec, err = _checked_format(self, "format", bs)
        return err or _check_quantized(spec, bs, x.shape[-1], self.elements, self.scales, self.tensor_scale,
                                       x.shape[:-1])


class DequantizeOp(_VerifiedOp, name="dequantize"):
    """Decode elements times block scales (times the tensor scale) to f32, K unpadded to `k`."""

    elements: Operand[Tensor]
    scales: Operand[Tensor]
    format: ir.StringAttr
    block_size: ir.IntegerAttr
    k: ir.IntegerAttr
    result: Result[Tensor]
    tensor_scale: Operand[Tensor] | None = None

    def _check(self):
        bs, k = _int(self.block_size), _int(self.k)
        res = Tensor(self.result.type)
        if res.shape[-1] != k:
            return f"result must have {k} elements along the last axis"
        spec, err = _checked_format(self, "format", bs)
        lead = res.shape[:-1]
        return err or _check_quantized(spec, bs, k, self.elements, self.scales, self.tensor_scale, lead,
                                       per_row=True)


def _rows_error(spec: FormatSpec, k: int, t, what: str) -> str | None:
    """Why `t` is not rows of `row_nbytes` i8 bytes of `spec` with K values (mxq.pack's result, unpack's input)."""
    t = Tensor(t)
    n = row_nbytes(spec.format, k)
    if str(t.element_type) != "i8" or t.shape[-1] != n:
        return f"{what} must be rows of {n} i8 bytes ('{spec}', K={k}), got {t}"
    return None


class PackOp(_VerifiedOp, name="pack"):
    """Quantized rows as rows of bytes (a KV cache's storage), `mxc.numerics.row_bytes`' layout: each row's
    packed elements (4-bit two per byte, 6-bit four per three), its block-scale codes, then (NV family) its
    FP32 tensor scale's four little-endian bytes. `tensor_scale`: one for all rows, or one per row.

        %b = mxq.pack %e, %s {format = "mxfp8", block_size = 32, k = 64}
            : (tensor<1x3x?x64xf8E4M3FN>, tensor<1x3x?x2xf8E8M0FNU>) -> tensor<1x3x?x66xi8>
    """

    elements: Operand[Tensor]
    scales: Operand[Tensor]
    format: ir.StringAttr
    block_size: ir.IntegerAttr
    k: ir.IntegerAttr
    result: Result[Tensor]
    tensor_scale: Operand[Tensor] | None = None

    def _check(self):
        bs, k = _int(self.block_size), _int(self.k)
        res = Tensor(self.result.type)
        spec, err = _checked_format(self, "format", bs)
        err = err or _rows_error(spec, k, res, "result")
        return err or _check_quantized(spec, bs, k, self.elements, self.scales, self.tensor_scale,
                                       res.shape[:-1], per_row=True)


class UnpackOp(_VerifiedOp, name="unpack"):
    """The inverse of mxq.pack: rows of bytes -> elements, block scales and (NV family) one tensor scale per row
    ([..., 1]), which mxq.dequantize takes as they are."""

    input: Operand[Tensor]
    format: ir.StringAttr
    block_size: ir.IntegerAttr
    k: ir.IntegerAttr
    elements: Result[Tensor]
    scales: Result[Tensor]
    tensor_scale: Result[Tensor] | None = None

    def _check(self):
        bs, k = _int(self.block_size), _int(self.k)
        x = Tensor(self.input.type)
        spec, err = _checked_format(self, "format", bs)
        err = err or _rows_error(spec, k, x, "input")
        if err:
            return err
        if self.tensor_scale is not None and list(Tensor(self.tensor_scale.type).shape) != [*x.shape[:-1], 1]:
            return "tensor_scale must be one per row, [..., 1]"
        return _check_quantized(spec, bs, k, self.elements, self.scales, self.tensor_scale, x.shape[:-1],
                                per_row=True)


class ScaledMatmulOp(_VerifiedOp, name="scaled_matmul"):
    """OCP DotGeneral: A[M, Kp] x B[N, Kp]^T with per-block scales, f32 result [M, N].

    The two operands may be different formats with the same block size.
    """

    a: Operand[Tensor]
    a_scales: Operand[Tensor]
    b: Operand[Tensor]
    b_scales: Operand[Tensor]
    a_format: ir.StringAttr
    b_format: ir.StringAttr
    block_size: ir.IntegerAttr
    result: Result[Tensor]
    STATIC = ("b", "b_scales")

    def _check(self):
        bs = _int(self.block_size)
        fa, err_a = _checked_format(self, "a_format", bs)
        fb, err_b = _checked_format(self, "b_format", bs)
        if err_a or err_b:
            return err_a or err_b
        if fa.format.tensor_scale or fb.format.tensor_scale:
            return "formats with a tensor scale are contracted by mxq.fused_matmul"
        a, b = Tensor(self.a.type), Tensor(self.b.type)
        if a.rank != 2 or b.rank != 2:
            return "operands must be [M, Kp] and [N, Kp]"
        k = a.shape[-1]
        return (
            _check_quantized(fa, bs, k, self.a, self.a_scales, None, [a.shape[0]])
            or _check_quantized(fb, bs, k, self.b, self.b_scales, None, [b.shape[0]])
            or (
                None
                if list(Tensor(self.result.type).shape) == [a.shape[0], b.shape[0]]
                else f"result must be [{a.shape[0]}, {b.shape[0]}]"
            )
        )


class FusedMatmulOp(_VerifiedOp, name="fused_matmul"):
    """quantize(x) along K -> block-scaled matmul with quantized weights -> + bias -> epilogue.

    x [..., K] stays high precision when `act_format` is "none" (weight-only).
    Weights are [N, Kp] elements, [N, Kp/bs] scales (and the tensor scale for NVFP4).
    """

    x: Operand[Tensor]
    w: Operand[Tensor]
    w_scales: Operand[Tensor]
    layer: ir.StringAttr
    act_format: ir.StringAttr
    w_format: ir.StringAttr
    block_size: ir.IntegerAttr
    epilogue: ir.StringAttr
    result: Result[Tensor]
    w_tensor_scale: Operand[Tensor] | None = None
    bias: Operand[Tensor] | None = None
    STATIC = ("w", "w_scales", "w_tensor_scale", "bias")

    def _check(self):
        bs = _int(self.block_size)
        fa, err_a = _checked_format(self, "act_format", bs, allow_none=True)
        fw, err_w = _checked_format(self, "w_format", bs)
        if err_a or err_w:
            return err_a or err_w
        if _str(self.epilogue) not in EPILOGUES:
            return f"epilogue must be one of {', '.join(EPILOGUES)}"
        if fa is not None and fa.hadamard != fw.hadamard:
            return "activations and weights must use the same hadamard rotation"
        x, w = Tensor(self.x.type), Tensor(self.w.type)
        n = w.shape[0]
        err = _check_quantized(fw, bs, x.shape[-1], self.w, self.w_scales, self.w_tensor_scale, [n])
        if err:
            return err
        if self.bias is not None and list(Tensor(self.bias.type).shape) != [n]:
            return f"bias must have shape [{n}]"
        if list(Tensor(self.result.type).shape) != [*x.shape[:-1], n]:
            return f"result must have shape {[*x.shape[:-1], n]}"
        return None


def load(context: ir.Context) -> None:
    """Load mxq into `context` (once per context)."""
    with context:
        if context.is_dialect_loaded(MXQ.DIALECT_NAMESPACE):
            return
        MXQ.load()
