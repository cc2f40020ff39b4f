"""lower-mxq-to-linalg: mxq ops -> linalg + arith + tensor + math, bit-exact with mxc.numerics.

Quantization is integer/float32 arithmetic that mirrors `mxc.numerics` step by
step (`_quant.py`: block amax with NaN-propagating max, exponent from the
float32 bits, the four MX scale rules, power-of-two scaling built from bits,
`math.roundeven` or the counter-based stochastic rounding, saturation with
`minimumf`, Four Over Six / IF4 block choices, Hadamard butterflies); element
and scale values are rounded by our code before the final `arith.truncf` or
integer encode, which then only changes the type of an exactly representable
value. We do not rely on `arith.scaling_truncf` or `truncf` rounding (their
tie and special-value semantics are still moving upstream).

FP6 elements: IREE's CPU backend cannot store f6 types, so inside this pass
they are i8 codes. An f6 `mxq.param` (weights stored four codes per three
bytes) becomes an i8 param of the packed bytes plus an unpacking generic; other
f6 values cross op boundaries through `builtin.unrealized_conversion_cast`,
which `reconcile-unrealized-casts` removes at the end of the pass.

Contractions, option `contraction`:
* `decomposed` (default): dequantize both operands to f32 in elementwise
  generics, then a plain f32 contraction. IREE's llvm-cpu backend tiles and
  vectorizes this like any matmul and hoists the weight dequantization of
  constant weights; on 2 cores it ran ~60x faster than the 4-D form below
  (M=64, N=2048, K=768, one measurement; see README "Design notes").
* `scaled-generic`: the canonical block-scaled form (4-D generic over (M, N, Ko, Kb)) that IREE's
  scaled-contraction matcher knows: a 4-D generic over (M, N, Ko, Kb) with body
  `scaling_extf` x2 -> `mulf` -> `addf`. Used when both operands are MX formats
  (E8M0 scales); other cases fall back to `decomposed`. By IREE's upstream
  expansion code (not tested here), `scaling_extf` decodes E8M0 0x00 as 0, not 2^-127.

* `amx`: a fused matmul whose operands are exact in bf16 (`_amx.bf16_exact`: every format but IF4)
  runs on AMX tiles (`_amx.py`: a hand-written dispatch of LLVM's AMX intrinsics, products exact,
  float32 sums): the weights, decoded without the NV tensor scale, are rounded to bf16 (exactly) and
  laid out as AMX reads them, both at load time (IREE hoists them like any constant expression);
  quantized activations are converted likewise per call; float32 activations of weight-only layers
  are split into three bf16 parts that sum to them exactly (`_amx.split3`), all three accumulated; the
  tensor scales multiply the output. A 2-D `mxq.matmul` (float32 operands: a layer kept in high
  precision) splits both operands and adds the six part products that matter (`AmxGemm.pairs`). Other
  layers fall back to `decomposed`. Needs a CPU with AMX.
* `fma`: the `decomposed` form's float32 operands, contracted by mxc's register-blocked kernel
  (`_fma.py`: 4 x 24 micro-tiles of vector fused multiply-adds, the weight packed in 24-column panels at
  load time) instead of IREE's matmul code; every contraction of the pass. Needs AVX2 and FMA (x86-64).
* `dpbf16`: `fma`, except that a contraction whose two operands are exact in bf16 (a fused matmul whose
  weight and activation formats are `_amx.bf16_exact`, or weight-only with `act-dtype=bf16`; a scaled
  matmul of two such formats) runs the kernel's bf16 dot form (`FmaGemm(bf16=True)`: `vdpbf16ps`, two
  exact products per float32 lane and instruction) on the values decoded without the NV tensor scales,
  which multiply the output, as with `amx`. Needs AVX512-BF16 (x86-64).

`mxq.pack` / `mxq.unpack` (a KV cache of codes): shifts, masks and bitcasts into and out of
`mxc.numerics.row_bytes`' layout. A quantize read only by a pack, and an unpack read only by dequantizes, work
on i8 codes made and decoded by integer ops (`_quant.quantize(codes=True)`, `dequantize(codes=True)`): no f8/f4
value exists between them, so IREE's CUDA code (which cannot translate `arith.truncf` to those types) compiles
them, and the CPU does not emulate narrow-float conversions value by value.

A layer with a dynamic token dimension (model.py's `get_dynamic_shapes()`): `fma` runs its rows in blocks
of 64 (an `scf.for` around one static dispatch, the last block zero-padded: `_fma._contract_rows`); `amx`,
built for one static shape, leaves it to the `decomposed` form, whose IREE code takes any size.

Option `act-dtype=bf16` (`mxc compile --act-dtype bf16`): a weight-only fused matmul rounds its
activations (after any Hadamard rotation) to bf16 with `arith.truncf` and extends them back, which is
what cuda-sm90's `dec` and `wgmma` kernels multiply.
"""

from __future__ import annotations

import dataclasses
import functools

from torch_mlir import ir
from torch_mlir.dialects import arith, math
from torch_mlir.passmanager import PassManager

from mxc.dialects.mxq import ParamOp, format_attr
from mxc.numerics.formats import Format
from mxc.numerics.options import FormatSpec
from mxc.options import ActDtype, Contraction

from . import _amx, _fma
from . import _quant as Q
from ._linalg import (
    F32,
    I8,
    Scalar as S,
    collapse_leading,
    empty,
    expand_last,
    expand_leading,
    filled,
    generic,
    is_static,
    pad_last,
    shape_of,
    slice_last,
    ttype,
)
from .base import Pass, walk_ops


def _cast(v: ir.Value, t: ir.Type) -> ir.Value:
    return ir.Operation.create("builtin.unrealized_conversion_cast", results=[t], operands=[v]).result


def _results_of(op, *values) -> bool:
    """Whether every value (None skipped) is a result of `op`."""
    return all(v is None or (not isinstance(v.owner, ir.Block) and v.owner == op) for v in values)


def _i8_codes(v: ir.Value) -> ir.Value | None:
    """The i8 codes `v` (of a narrow float or scale type) was cast from by this pass, or None."""
    owner = v.owner
    if isinstance(owner, ir.Block) or owner.operation.name != "builtin.unrealized_conversion_cast":
        return None
    src = owner.operands[0]
    return src if str(ir.RankedTensorType(src.type).element_type) == "i8" else None


def _function_of(op) -> str:
    """The name of the func.func holding `op` ("" outside one)."""
    p = op.operation.parent
    while p is not None and p.name != "func.func":
        p = p.parent
    return "" if p is None else ir.StringAttr(p.attributes["sym_name"]).value


class _Fp6Bridge:
    """FP6 element tensors as i8 codes: unpack packed params once per function (a module of several entry
    points, --generate's prefill and decode, reads the same params from each), look through casts."""

    def __init__(self):
        self.params: dict[tuple[str, str], ir.Value] = {}  # (function, param name) -> the unpacked codes

    def codes(self, v: ir.Value, fmt: Format) -> ir.Value:
        if fmt.element.bits != 6:
            return v
        shape = shape_of(v)
        owner = v.owner
        if not isinstance(owner, ir.Block) and owner.operation.name == "mxq.param":
            name = ir.StringAttr(owner.attributes["name"]).value
            key = (_function_of(owner), name)
            if key not in self.params:
                with owner.location, ir.InsertionPoint(owner.operation):
                    packed = ParamOp(name=ir.StringAttr.get(name),
                                     result=ttype([*shape[:-1], shape[-1] * 3 // 4], I8()))
                    for key in list(owner.attributes):
                        key = key if isinstance(key, str) else key.name
                        if key.startswith("mxq."):
                            packed.operation.attributes[key] = owner.attributes[key]
                    self.params[key] = Q.unpack_fp6(packed.result)
            return self.params[key]
        if not isinstance(owner, ir.Block) and owner.operation.name == "builtin.unrealized_conversion_cast":
            return owner.operands[0]
        return _cast(v, ttype(shape, I8()))

    def erase_unused_params(self, module: ir.Operation) -> None:
        for op in walk_ops(module, "mxq.param"):
            t = ir.RankedTensorType(op.result.type)
            if str(t.element_type).startswith("f6") and not list(op.result.uses):
                op.operation.erase()


def contract(a: ir.Value, b: ir.Value) -> ir.Value:
    """a [M, K] x b [N, K]^T -> [M, N] (or batched [B, M, K] x [B, N, K]), f32 accumulation."""
    def body(x, y, acc):
        return [arith.AddFOp(acc, arith.MulFOp(x, y).result).result]

    sa, sb = shape_of(a), shape_of(b)
    if len(sa) == 3:
        out = filled([sa[0], sa[1], sb[1]], 0.0)
        dims = [[0, 1, 3], [0, 2, 3], [0, 1, 2]]
        return generic([a, b], [out], dims, ["parallel"] * 3 + ["reduction"], body)[0]
    return generic([a, b], [filled([sa[0], sb[0]], 0.0)], [[0, 2], [1, 2], [0, 1]],
                   ["parallel", "parallel", "reduction"], body)[0]


def scaled_contract(a_e, a_s, b_e, b_s) -> ir.Value:
    """The canonical 4-D block-scaled contraction (MX operands, E8M0 scales)."""
    ae, be = expand_last(a_e, 32), expand_last(b_e, 32)
    m, n = shape_of(ae)[0], shape_of(be)[0]

    def body(x, y, sx, sy, acc):
        fx = arith.ScalingExtFOp(F32(), x, sx).result
        fy = arith.ScalingExtFOp(F32(), y, sy).result
        return [arith.AddFOp(acc, arith.MulFOp(fx, fy).result).result]

    dims = [[0, 2, 3], [1, 2, 3], [0, 2], [1, 2], [0, 1]]
    return generic([ae, be, a_s, b_s], [filled([m, n], 0.0)], dims,
                   ["parallel", "parallel", "reduction", "reduction"], body)[0]


def epilogue(y: ir.Value, bias, act: str, scale=None) -> ir.Value:
    """y [M, N] (x scale, a rank-0 f32 tensor) (+ bias[N]) then the activation, elementwise."""
    if bias is None and act == "none" and scale is None:
        return y
    m, n = shape_of(y)

    def body(v, *rest):
        rest = list(rest)
        if scale is not None:
            v = arith.MulFOp(v, rest.pop(0)).result
        if bias is not None:
            v = arith.AddFOp(v, rest.pop(0)).result
        if act == "relu":
            v = arith.MaximumFOp(v, S.f(0.0)).result
        elif act == "silu":
            v = arith.DivFOp(v, arith.AddFOp(S.f(1.0), math.ExpOp(arith.NegFOp(v).result).result).result).result
        elif act == "gelu":
            erf = math.ErfOp(arith.MulFOp(v, S.f(0.7071067811865476)).result).result
            v = arith.MulFOp(arith.MulFOp(v, S.f(0.5)).result, arith.AddFOp(S.f(1.0), erf).result).result
        return [v]

    ins, dims = [y], [[0, 1]]
    for v, d in ((scale, []), (bias, [1])):
        if v is not None:
            ins.append(v)
            dims.append(d)
    return generic(ins, [empty([m, n], F32())], [*dims, [0, 1]], ["parallel", "parallel"], body)[0]


def _quantize(x: ir.Value, spec: FormatSpec, codes: bool = False):
    if spec.hadamard:
        x = Q.rotate(x, spec.hadamard)
    return Q.quantize(x, spec.format, spec.options, codes)


def _can_scale_generic(fmt: Format) -> bool:
    """MX formats whose elements IREE's scaling_extf takes (E8M0 scales, a float storage type)."""
    return fmt.family == "mx" and fmt.storage_mlir.startswith("f") and fmt.element.bits != 6


def _round_bf16(x: ir.Value) -> ir.Value:
    """An f32 tensor rounded to bf16 (arith.truncf: to nearest, ties to even) and extended back (exact)."""
    t = ir.RankedTensorType(x.type)
    b = arith.TruncFOp(ir.RankedTensorType.get(t.shape, ir.BF16Type.get()), x).result
    return arith.ExtFOp(t, b).result


def _times_scales(y: ir.Value, scales: list) -> ir.Value:
    """y [M, N] times the rank-0 float32 tensor scales (the NV formats'), elementwise."""
    scales = [s for s in scales if s is not None]
    if not scales:
        return y

    def body(v, *rest):
        for s in rest[:-1]:
            v = arith.MulFOp(v, s).result
        return [v]

    m, n = shape_of(y)
    return generic([y, *scales], [empty([m, n], F32())], [[0, 1]] + [[]] * len(scales) + [[0, 1]],
                   ["parallel", "parallel"], body)[0]


@dataclasses.dataclass(frozen=True)
class LowerMxqToLinalg(Pass):
    """Lower every mxq op except `mxq.param` (the IREE hand-off turns those into globals)."""

    name = "lower-mxq-to-linalg"
    contraction: Contraction = "decomposed"
    act_dtype: ActDtype = "f32"  # bf16: weight-only layers round their activations to bf16 (RNE) first

    def run(self, module: ir.Operation) -> None:
        fp6 = _Fp6Bridge()
        kernels: dict = {}  # the AMX / FMA dispatches' kernels, one per shape
        for name, fn in (
            ("mxq.fused_matmul", functools.partial(self._fused, kernels=kernels)),
            ("mxq.scaled_matmul", functools.partial(self._scaled, kernels=kernels)),
            ("mxq.matmul", functools.partial(self._matmul, kernels=kernels)),
            ("mxq.pack", self._pack),
            ("mxq.unpack", self._unpack),
            ("mxq.dequantize", self._dequantize),
            ("mxq.quantize", self._quantize),
        ):
            for op in walk_ops(module, name):
                if not any(list(r.uses) for r in op.results):  # (a quantize that mxq.pack lowered itself)
                    op.operation.erase()
                    continue
                with op.location, ir.InsertionPoint(op.operation):
                    new = fn(op, fp6)
                for old, value in zip(op.results, new):
                    old.replace_all_uses_with(value)
                op.operation.erase()
        fp6.erase_unused_params(module)
        for kind, exe_name in ((_amx.AmxGemm, _amx.EXECUTABLE), (_fma.FmaGemm, _fma.EXECUTABLE)):
            of_kind = [k for k in kernels.values() if isinstance(k, kind)]
            if of_kind:
                exe = ir.Operation.parse(_amx.executable(of_kind, exe_name))
                ir.InsertionPoint.at_block_begin(module.regions[0].blocks[0]).insert(exe)
        PassManager.parse("builtin.module(reconcile-unrealized-casts)", context=module.context).run(module)

    def _quantize(self, op, fp6):
        spec = format_attr(op, "format")
        e, s, ts = _quantize(op.input, spec)
        if spec.format.element.bits == 6:
            e = _cast(e, op.elements.type)
        return [e, s] + ([ts] if ts is not None else [])

    def _pack(self, op, fp6):
        """The rows of bytes of a quantize read only by this pack are made from i8 codes by integer ops (the
        quantize lowered here with `codes`): no narrow float type, which IREE's CUDA code cannot translate."""
        spec = format_attr(op, "format")
        fmt = spec.format
        nbytes = ir.RankedTensorType(op.result.type).shape[-1]
        q = op.elements.owner
        if (not isinstance(q, ir.Block) and q.operation.name == "mxq.quantize"
                and _results_of(q, op.scales, op.tensor_scale)
                and all(use.owner == op.operation for r in q.results for use in r.uses)):
            e, s, ts = _quantize(q.operands[0], format_attr(q, "format"), codes=True)
            return [Q.pack_rows(e, s, ts, fmt, nbytes)]
        return [Q.pack_rows(fp6.codes(op.elements, fmt), op.scales, op.tensor_scale, fmt, nbytes)]

    def _unpack(self, op, fp6):
        """Rows of bytes -> elements and scales: as i8 codes (bridged to the dialect's types by casts) when only
        mxq.dequantize reads them, which then decodes them with integer ops (`_dequantize`)."""
        fmt = format_attr(op, "format").format
        codes = Q.decodes_from_codes(fmt) and all(
            use.owner.name == "mxq.dequantize" for v in (op.elements, op.scales) for use in v.uses)
        e, s, ts = Q.unpack_rows(op.input, fmt, ir.IntegerAttr(op.k).value, codes)
        if codes:
            s = _cast(s, op.scales.type)
        if codes or fmt.element.bits == 6:
            e = _cast(e, op.elements.type)
        return [e, s] + ([ts] if ts is not None else [])

    def _dequantize(self, op, fp6):
        spec = format_attr(op, "format")
        fmt, k = spec.format, ir.IntegerAttr(op.k).value
        codes = _i8_codes(op.scales)  # mxq.unpack's codes (`_unpack`): decoded by integer ops
        if codes is not None:
            elements = _i8_codes(op.elements)
            elements = fp6.codes(op.elements, fmt) if elements is None else elements
            y = Q.dequantize(elements, codes, op.tensor_scale, fmt, codes=True)
        else:
            y = Q.dequantize(fp6.codes(op.elements, fmt), op.scales, op.tensor_scale, fmt)
        y = slice_last(y, k)
        return [Q.rotate(y, spec.hadamard) if spec.hadamard else y]

    def _contract(self, a: ir.Value, b: ir.Value, kernels: dict, exact_bf16: bool = False) -> ir.Value:
        """a [(B,) M, K] x b [(B,) N, K]^T in float32: the FMA kernel (`contraction=fma`, or `dpbf16`; a
        constant b's packing is hoisted to load time with its decode), its bf16 dot form (`dpbf16` where
        `exact_bf16`: every value of a and b is a bf16 value), or a linalg contraction."""
        if self.contraction in ("fma", "dpbf16") and (is_static(a) or len(shape_of(a)) == 2):
            bf16 = self.contraction == "dpbf16" and exact_bf16
            return _fma.contract(a, _fma.b_panels(b, bf16=bf16), shape_of(b)[-2], kernels)
        return contract(a, b)

    def _matmul(self, op, fp6, kernels: dict):
        lhs, rhs = op.lhs, op.rhs
        if len(shape_of(rhs)) == 3:
            return [self._contract(lhs, rhs, kernels)]
        lead = shape_of(lhs)[:-1]
        x2 = collapse_leading(lhs)
        if self.contraction == "amx" and is_static(x2):  # float32 operands: 3 bf16 parts each, 6 products
            (m, k), n = shape_of(x2), shape_of(rhs)[0]
            a = _amx.a_tiles(x2, _amx.pad32(m), _amx.pad32(k), 3, _amx.split3)
            y = _amx.contract(a, _amx.b_tiles(rhs, 3, _amx.split3), m, n, kernels)
        else:
            y = self._contract(x2, rhs, kernels)
        return [expand_leading(epilogue(y, op.bias, "none"), lead)]

    def _scaled(self, op, fp6, kernels: dict):
        fa, fb = format_attr(op, "a_format").format, format_attr(op, "b_format").format
        if self.contraction == "scaled-generic" and _can_scale_generic(fa) and _can_scale_generic(fb):
            return [scaled_contract(op.a, op.a_scales, op.b, op.b_scales)]
        a = Q.dequantize(fp6.codes(op.a, fa), op.a_scales, None, fa)
        exact = _amx.bf16_exact(fa) and _amx.bf16_exact(fb)
        return [self._contract(a, Q.dequantize(fp6.codes(op.b, fb), op.b_scales, None, fb), kernels, exact)]

    def _fused(self, op, fp6, kernels: dict):
        w_spec, act = format_attr(op, "w_format"), format_attr(op, "act_format")
        fw = w_spec.format
        x = op.x
        lead = shape_of(x)[:-1]
        x2 = collapse_leading(x)
        if w_spec.hadamard:  # weights were rotated offline; the activations are rotated here
            x2 = Q.rotate(x2, w_spec.hadamard)
        kp = shape_of(op.w)[-1]

        def weights():
            return Q.dequantize(fp6.codes(op.w, fw), op.w_scales, op.w_tensor_scale, fw)

        if (self.contraction == "amx" and is_static(x2) and _amx.bf16_exact(fw)
                and (act is None or _amx.bf16_exact(act.format))):
            y = self._amx_fused(op, fp6, x2, kp, act, kernels)
        elif self.contraction == "dpbf16" and _amx.operands_exact(fw, act and act.format, self.act_dtype):
            y = self._dpbf16_fused(op, fp6, x2, kp, act, kernels)
        elif act is None:
            if self.act_dtype == "bf16":  # what cuda-sm90's tensor-core kernels multiply
                x2 = _round_bf16(x2)
            y = self._contract(pad_last(x2, kp), weights(), kernels)
        else:
            fa = act.format
            a_e, a_s, a_ts = Q.quantize(x2, fa, act.options)
            if self.contraction == "scaled-generic" and _can_scale_generic(fa) and _can_scale_generic(fw):
                y = scaled_contract(a_e, a_s, op.w, op.w_scales)
            else:
                y = self._contract(Q.dequantize(a_e, a_s, a_ts, fa), weights(), kernels)
        y = epilogue(y, op.bias, ir.StringAttr(op.epilogue).value)
        return [expand_leading(y, lead)]

    def _amx_fused(self, op, fp6, x2: ir.Value, kp: int, act, kernels: dict) -> ir.Value:
        """The fused matmul on AMX tiles: bf16 operands (exact), the tensor scales on the output."""
        fw = format_attr(op, "w_format").format
        m, n = shape_of(x2)[0], shape_of(op.w)[0]
        m2, k2 = _amx.pad32(m), _amx.pad32(kp)
        b = _amx.b_tiles(Q.dequantize(fp6.codes(op.w, fw), op.w_scales, None, fw), 1, _amx.to_bf16)
        if act is None:
            if self.act_dtype == "bf16":
                a = _amx.a_tiles(_round_bf16(x2), m2, k2, 1, _amx.to_bf16)
            else:
                a = _amx.a_tiles(x2, m2, k2, 3, _amx.split3)
            scales = [op.w_tensor_scale]
        else:
            fa = act.format
            a_e, a_s, a_ts = Q.quantize(x2, fa, act.options)
            a = _amx.a_tiles(Q.dequantize(a_e, a_s, None, fa), m2, k2, 1, _amx.to_bf16)
            scales = [a_ts, op.w_tensor_scale]
        return _times_scales(_amx.contract(a, b, m, n, kernels), scales)

    def _dpbf16_fused(self, op, fp6, x2: ir.Value, kp: int, act, kernels: dict) -> ir.Value:
        """The fused matmul on the bf16 dot kernel (`contraction=dpbf16`): both operands' values exact in
        bf16 (the decode without the NV tensor scales; weight-only layers' activations rounded to bf16 by
        `act-dtype=bf16`), the tensor scales on the output."""
        fw = format_attr(op, "w_format").format
        w = Q.dequantize(fp6.codes(op.w, fw), op.w_scales, None, fw)
        if act is None:
            a, scales = pad_last(_round_bf16(x2), kp), [op.w_tensor_scale]
        else:
            fa = act.format
            a_e, a_s, a_ts = Q.quantize(x2, fa, act.options)
            a, scales = Q.dequantize(a_e, a_s, None, fa), [a_ts, op.w_tensor_scale]
        return _times_scales(self._contract(a, w, kernels, exact_bf16=True), scales)
