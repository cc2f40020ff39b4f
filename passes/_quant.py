"""linalg builders for quantize / dequantize / Hadamard: the IR twin of `mxc.numerics.quantize`.

Each function emits, as `linalg.generic` bodies of `arith`/`math`, the float32
steps of the numerics reference in the same order (see `_linalg.Scalar`), so
the compiled codes equal the reference's bit for bit. Element tensors use the
format's MLIR type where IREE's CPU backend stores it (f8E4M3FN, f8E5M2,
f4E2M1FN, i8, i4); FP6 elements, which IREE cannot store, are carried as one
i8 code per element here (`lower-mxq-to-linalg` bridges them to the dialect's
f6 types, and unpacks FP6 weights stored four per three bytes).
"""

from __future__ import annotations

from torch_mlir import ir
from torch_mlir.dialects import arith, math, tensor

from mxc.numerics import hadamard as nhad
from mxc.numerics.formats import E2M1, E4M3, INT4, Format
from mxc.numerics.options import QuantOptions
from mxc.numerics.quantize import IF4_INT_FLAG, IF4_INT_STEP, nv_block_target

from ._linalg import (
    F32,
    I8,
    I32,
    Const,
    Scalar as S,
    collapse_last,
    dynamic_sizes,
    empty,
    expand_last,
    filled,
    generic,
    index,
    pad_last,
    shape_of,
    slice_last,
    static_sizes,
    ttype,
)

E8M0_MLIR = "f8E8M0FNU"


def storage_type(fmt: Format) -> ir.Type:
    """The element type of `fmt`'s elements inside the lowering (FP6: i8 codes)."""
    if fmt.element.bits == 6:
        return I8()
    return ir.Type.parse(fmt.storage_mlir)


def _is_float_storage(fmt: Format) -> bool:
    return fmt.storage_mlir.startswith("f") and fmt.element.bits != 6


def store(q, fmt: Format) -> ir.Value:
    """An exactly representable float32 element value -> its storage element."""
    t = storage_type(fmt)
    if _is_float_storage(fmt):
        return arith.TruncFOp(t, q).result
    return arith.TruncIOp(t, S.encode(q, fmt.element)).result


def store_code(q, fmt: Format) -> ir.Value:
    """An exactly representable float32 element value -> its code as i8 (4-bit codes in the low nibble), by
    integer ops only: what `quantize(codes=True)` stores, no narrow float type involved."""
    code = S.encode(q, fmt.element)
    if fmt.element.bits < 8:
        code = arith.AndIOp(code, S.i((1 << fmt.element.bits) - 1)).result
    return arith.TruncIOp(I8(), code).result


def _code(e) -> ir.Value:
    """A storage element of integer type as a zero-extended i32 code."""
    return e if ir.IntegerType(e.type).width == 32 else arith.ExtUIOp(I32(), e).result


def load(e, fmt: Format) -> ir.Value:
    """A storage element -> its float32 value (IF4 is decoded by the caller, which knows the flag)."""
    if _is_float_storage(fmt):
        return arith.ExtFOp(F32(), e).result
    return S.decode(_code(e), fmt.element)


def _flat_index(shape: list) -> ir.Value:
    """Row-major flat index of the current loop point over `shape` (all loops), i32, wrapping."""
    idx = index(0)
    for d in range(1, len(shape)):
        size = S.i(shape[d]) if isinstance(shape[d], int) else arith.IndexCastOp(I32(), shape[d]).result
        idx = arith.AddIOp(arith.MulIOp(idx, size).result, index(d)).result
    return idx


def _uniform(shape, opts: QuantOptions):
    return S.uniform(_flat_index(shape), opts.seed) if opts.rounding == "stochastic" else None


def block_amax(xb: ir.Value) -> ir.Value:
    """max |x| over the last dim (NaN propagates, as torch.amax)."""
    s = shape_of(xb)
    r = len(s)

    def body(x, acc):
        return [arith.MaximumFOp(math.AbsFOp(x).result, acc).result]

    return generic([xb], [filled(s[:-1], 0.0)], [list(range(r)), list(range(r - 1))],
                   ["parallel"] * (r - 1) + ["reduction"], body)[0]


def tensor_amax_finite(x: ir.Value) -> ir.Value:
    """max |x| over the finite entries of the whole tensor, as tensor<f32>."""
    r = len(shape_of(x))

    def body(v, acc):
        a = math.AbsFOp(v).result
        return [arith.MaximumFOp(S.select(S.is_nonfinite(a), S.f(0.0), a), acc).result]

    return generic([x], [filled([], 0.0)], [list(range(r)), []], ["reduction"] * r, body)[0]


def _blocks(x: ir.Value, fmt: Format) -> ir.Value:
    k = shape_of(x)[-1]
    kp = -(-k // fmt.block_size) * fmt.block_size
    return expand_last(pad_last(x, kp), fmt.block_size)


# ----------------------------------------------------------------------------- MX


def mx_exponent(a, fmt: Format, rule: str) -> ir.Value:
    """numerics.quantize.mx_scale_exponent for one block amax, before clamping."""
    elem = fmt.element
    if rule == "floor":
        return arith.SubIOp(S.floor_log2(a), S.i(elem.emax)).result
    if rule == "ceil":
        return arith.SubIOp(S.ceil_log2(a), S.i(elem.emax)).result
    if rule == "rceil":
        tiny = S.cmpf("olt", a, S.f(2.0**-100))
        t = arith.MulFOp(S.select(tiny, S.mul_exp2(a, S.i(64)), a), S.f(1 / elem.max)).result
        return arith.SubIOp(S.ceil_log2(t), S.select(tiny, S.i(64), S.i(0))).result
    drop = 23 - elem.mbits  # even
    bits = arith.AddIOp(arith.BitcastOp(I32(), a).result, S.i(1 << (drop - 1))).result
    bits = arith.AndIOp(bits, S.i(~((1 << drop) - 1))).result
    return arith.SubIOp(S.floor_log2(arith.BitcastOp(F32(), bits).result), S.i(elem.emax)).result


def quantize_mx(x: ir.Value, fmt: Format, opts: QuantOptions, codes: bool = False):
    """x [..., K] f32 -> (elements [..., Kp], E8M0 scales [..., Ko]) by `opts.scale_rule`; `codes`: both as i8
    codes."""
    xb = _blocks(x, fmt)
    shape = shape_of(xb)
    r = len(shape)
    amax = block_amax(xb)
    e8m0 = I8() if codes else ir.Type.parse(E8M0_MLIR)

    def scale_body(a, _):
        e = mx_exponent(a, fmt, opts.scale_rule)
        e = arith.MinSIOp(arith.MaxSIOp(e, S.i(-127)).result, S.i(127)).result
        e = S.select(S.cmpf("oeq", a, S.f(0.0)), S.i(-127), e)
        code = arith.TruncIOp(I8(), S.select(S.is_nonfinite(a), S.i(255), arith.AddIOp(e, S.i(127)).result)).result
        return [code if codes else arith.BitcastOp(e8m0, code).result]

    lead = list(range(r - 1))
    scales = generic([amax], [empty(shape[:-1], e8m0)], [lead, lead], ["parallel"] * (r - 1), scale_body)[0]

    def elem_body(v, s, _):
        code = arith.ExtUIOp(I32(), s if codes else arith.BitcastOp(I8(), s).result).result
        u = _uniform(shape, opts)
        q = S.round_to_element(S.mul_exp2(v, arith.SubIOp(S.i(127), code).result), fmt.element, u)
        q = S.select(S.cmpi("eq", code, S.i(255)), S.f(0.0), q)
        return [store_code(q, fmt) if codes else store(q, fmt)]

    full = list(range(r))
    elements = generic([xb, scales], [empty(shape, I8() if codes else storage_type(fmt))], [full, lead, full],
                       ["parallel"] * r, elem_body)[0]
    return collapse_last(elements), scales, None


# ----------------------------------------------------------------------------- NV family


def _tensor_scales(x: ir.Value, fmt: Format):
    """(S_enc, S_dec) as tensor<f32>: numerics.quantize.nv_tensor_scale."""
    def body(amax, _enc, _dec):
        s = arith.DivFOp(S.f(fmt.tensor_scale_max * fmt.element.max), amax).result
        ok = arith.AndIOp(S.cmpf("one", math.AbsFOp(s).result, S.f(float("inf"))),
                          S.cmpf("ogt", amax, S.f(0.0))).result
        s_enc = S.select(ok, s, S.f(1.0))
        return [s_enc, arith.DivFOp(S.f(1.0), s_enc).result]

    return generic([tensor_amax_finite(x)], [filled([], 0.0), filled([], 0.0)], [[], [], []], [], body)


def _candidate(v, s, dec, fmt: Format, u):
    """(element value, dequantized value) of x=v with block scale value s (numerics _candidate)."""
    sd = arith.MulFOp(s, dec).result
    q = S.round_to_element(arith.MulFOp(v, arith.DivFOp(S.f(1.0), sd).result).result, fmt.element, u)
    q = S.select(S.cmpf("oeq", s, S.f(0.0)), S.f(0.0), q)
    return q, arith.MulFOp(q, sd).result


def _int_candidate(v, s, dec, u):
    """IF4's INT half (numerics _int_candidate)."""
    sd = arith.MulFOp(s, dec).result
    t = arith.MulFOp(arith.MulFOp(v, arith.DivFOp(S.f(1.0), sd).result).result, S.f(7 / 6)).result
    q = math.CopySignOp(arith.MinimumFOp(S.round_int(math.AbsFOp(t).result, u), S.f(7.0)).result, t).result
    q = S.select(S.cmpf("oeq", s, S.f(0.0)), S.f(0.0), q)
    return q, arith.MulFOp(arith.MulFOp(q, S.f(IF4_INT_STEP)).result, sd).result


def _err_step(deq, x, acc, metric: str):
    """acc combined with the error of one dequantized value (numerics.quantize.block_error)."""
    d = arith.SubFOp(S.product(deq), x).result
    a = math.AbsFOp(d).result
    if metric == "max":
        return arith.MaximumFOp(acc, a).result
    return arith.AddFOp(acc, S.product(arith.MulFOp(d, d).result) if metric == "mse" else a).result


def quantize_nv(x: ir.Value, fmt: Format, opts: QuantOptions, codes: bool = False):
    """x [..., K] f32 -> (elements, block scales, FP32 S_dec): NVFP4 recipe, Four Over Six, IF4; `codes`: elements
    and block scales as i8 codes."""
    selem = fmt.scale.element
    s_enc, s_dec = _tensor_scales(x, fmt)
    xb = _blocks(x, fmt)
    shape = shape_of(xb)
    r = len(shape)
    full, lead = list(range(r)), list(range(r - 1))
    amax = block_amax(xb)
    target = nv_block_target(fmt, opts)
    four = fmt.choice == "4over6"

    def scale_vals(a, enc, *_):
        s6 = S.round_to_element(arith.MulFOp(arith.DivFOp(a, S.f(target)).result, enc).result, selem)
        if not four:
            return [s6]
        return [s6, S.round_to_element(arith.MulFOp(arith.DivFOp(a, S.f(4.0)).result, enc).result, selem)]

    n_s = 2 if four else 1
    svals = generic([amax, s_enc], [filled(shape[:-1], 0.0) for _ in range(n_s)], [lead, [], *[lead] * n_s],
                    ["parallel"] * (r - 1), scale_vals)
    errs = []
    if fmt.choice:
        def err_body(v, *args):
            s6, alt_s, dec = (args[0], args[1], args[2]) if four else (args[0], None, args[1])
            acc6, acc_alt = args[-2], args[-1]
            u = _uniform(shape, opts)
            _, d6 = _candidate(v, s6, dec, fmt, u)
            _, dalt = _candidate(v, alt_s, dec, fmt, u) if four else _int_candidate(v, s6, dec, u)
            return [_err_step(d6, v, acc6, opts.error_metric), _err_step(dalt, v, acc_alt, opts.error_metric)]

        errs = generic([xb, *svals, s_dec], [filled(shape[:-1], 0.0), filled(shape[:-1], 0.0)],
                       [full, *[lead] * n_s, [], lead, lead], ["parallel"] * (r - 1) + ["reduction"], err_body)

    def pick_of(rest):
        return S.cmpf("olt", rest[-1], rest[-2]) if fmt.choice else None  # alt strictly better

    def elem_body(v, a, *rest):
        svs, dec = rest[:n_s], rest[n_s]
        pick = pick_of(rest[n_s + 1 : n_s + 1 + len(errs)])
        u = _uniform(shape, opts)
        s = S.select(pick, svs[1], svs[0]) if four else svs[0]
        q, _ = _candidate(v, s, dec, fmt, u)
        if fmt.choice == "if4":
            qi, _ = _int_candidate(v, s, dec, u)
            code = S.select(pick, arith.AndIOp(S.encode(qi, INT4), S.i(0xF)).result, S.encode(q, E2M1))
            out = arith.TruncIOp(elem_t, code).result
            zero = S.i(0, 8 if codes else 4)
        elif codes:
            out, zero = store_code(q, fmt), S.i(0, 8)
        else:
            out = store(q, fmt)
            zero = store(S.f(0.0), fmt)
        return [S.select(S.is_nonfinite(a), zero, out)]

    ins = [xb, amax, *svals, s_dec, *errs]
    dims = [full, lead, *[lead] * n_s, [], *[lead] * len(errs), full]
    elem_t = I8() if codes else storage_type(fmt)
    elements = generic(ins, [empty(shape, elem_t)], dims, ["parallel"] * r, elem_body)[0]

    scale_t = I8() if codes else ir.Type.parse(fmt.scale.mlir)

    def scale_body(a, *rest):
        svs = rest[:n_s]
        pick = pick_of(rest[n_s : n_s + len(errs)])
        s = S.select(pick, svs[1], svs[0]) if four else svs[0]
        if fmt.scale.mlir == E4M3.mlir and not codes:
            nan = arith.BitcastOp(scale_t, S.i(selem.nan_code, 8)).result
            return [S.select(S.is_nonfinite(a), nan, arith.TruncFOp(scale_t, s).result)]
        code = S.encode(s, selem)
        if fmt.scale.flag:
            code = arith.OrIOp(code, S.select(pick, S.i(IF4_INT_FLAG), S.i(0))).result
        code = S.select(S.is_nonfinite(a), S.i(selem.nan_code), code)
        return [arith.TruncIOp(scale_t, code).result]

    scales = generic([amax, *svals, *errs], [empty(shape[:-1], scale_t)], [lead] * (2 + n_s + len(errs)),
                     ["parallel"] * (r - 1), scale_body)[0]
    return collapse_last(elements), scales, s_dec


def quantize(x: ir.Value, fmt: Format, opts: QuantOptions, codes: bool = False):
    """(elements, scales, S_dec or None) of x [..., K] f32, which the caller has already rotated. `codes`: elements
    and scales as i8 codes made by integer ops, no narrow float type (for mxq.pack; IREE's CUDA code cannot
    translate `arith.truncf` to those types)."""
    return quantize_nv(x, fmt, opts, codes) if fmt.tensor_scale else quantize_mx(x, fmt, opts, codes)


# ----------------------------------------------------------------------------- dequantize


def _scale_value(s, fmt: Format, codes: bool = False) -> ir.Value:
    """float32 value of one block-scale element (E8M0 NaN code -> NaN), without the tensor scale; `codes`: `s` is
    its i8 code."""
    if fmt.scale.name == "e8m0":
        code = arith.ExtUIOp(I32(), s if codes else arith.BitcastOp(I8(), s).result).result
        sc = S.exp2i(arith.SubIOp(code, S.i(127)).result)
        return S.select(S.cmpi("eq", code, S.i(255)), S.f(float("nan")), sc)
    if fmt.scale.mlir == E4M3.mlir and not codes:
        return arith.ExtFOp(F32(), s).result
    code = _code(s)
    if fmt.scale.flag:
        code = arith.AndIOp(code, S.i(0x7F)).result
    return S.decode(code, fmt.scale.element)


def _element_value(e, s, fmt: Format, codes: bool = False) -> ir.Value:
    if codes:  # an i8 code: decoded by integer ops (IF4 does not take this path: see `decodes_from_codes`)
        return S.decode(_code(e), fmt.element)
    if fmt.choice != "if4":
        return load(e, fmt)
    flag = S.cmpi("ne", arith.AndIOp(_code(s), S.i(IF4_INT_FLAG)).result, S.i(0))
    ints = arith.MulFOp(arith.SIToFPOp(F32(), arith.ExtSIOp(I32(), e).result).result, S.f(IF4_INT_STEP)).result
    return S.select(flag, ints, S.decode(_code(e), E2M1))


def decodes_from_codes(fmt: Format) -> bool:
    """Whether `dequantize(codes=True)` takes `fmt`: every format but IF4 (whose INT blocks need the scale's flag;
    its i4/i8 storage has no narrow float type anyway)."""
    return fmt.choice != "if4"


def dequantize(elements: ir.Value, scales: ir.Value, tensor_scale, fmt: Format, codes: bool = False) -> ir.Value:
    """Elements [..., Kp] x scales -> f32 [..., Kp] (padding kept; callers slice and un-rotate).

    An NV format's tensor scale: tensor<f32>, or one per row [..., 1]; None: the values without it (element x
    block scale). `codes`: elements and scales are i8 codes (mxq.unpack's), decoded by integer ops instead of
    conversions from narrow float types, which IREE's CPU code emulates one value at a time."""
    eb = expand_last(elements, fmt.block_size)
    r = len(shape_of(eb))
    full, lead = list(range(r)), list(range(r - 1))
    with_ts = fmt.tensor_scale and tensor_scale is not None

    def body(e, s, *rest):
        sc = _scale_value(s, fmt, codes)
        if with_ts:
            sc = arith.MulFOp(sc, rest[0]).result
        return [arith.MulFOp(_element_value(e, s, fmt, codes), sc).result]

    ins, dims = [eb, scales], [full, lead]
    if with_ts:  # one tensor scale, or one per row (mxq.unpack's)
        per_row = ir.RankedTensorType(tensor_scale.type).rank
        ins, dims = ins + [tensor_scale], dims + [list(range(r - 2)) + [Const(0)] if per_row else []]
    return collapse_last(generic(ins, [empty(shape_of(eb), F32())], dims + [full], ["parallel"] * r, body)[0])


# ----------------------------------------------------------------------------- Hadamard, FP6


def _reshape(v: ir.Value, shape: list, reassoc: list[list[int]], expand: bool) -> ir.Value:
    t = ttype(shape, ir.RankedTensorType(v.type).element_type)
    if expand:
        return tensor.ExpandShapeOp(t, v, reassoc, dynamic_sizes(shape), static_sizes(shape)).result
    return tensor.CollapseShapeOp(t, v, reassoc).result


def rotate(x: ir.Value, n: int) -> ir.Value:
    """x [..., K] f32 times blockdiag(H_n): numerics.hadamard.rotate's butterflies, then the norm."""
    y = expand_last(x, n)  # [..., B, n]
    base = shape_of(y)[:-1]
    r0 = len(base)
    s = 1
    while s < n:
        shape = [*base, n // (2 * s), 2, s]
        reassoc = [[i] for i in range(r0)] + [[r0, r0 + 1, r0 + 2]]
        z = _reshape(y, shape, reassoc, expand=True)
        outer = list(range(r0 + 1))

        def body(a, b, _):
            j = index(r0 + 1)
            return [S.select(S.cmpi("eq", j, S.i(0)), arith.AddFOp(a, b).result, arith.SubFOp(a, b).result)]

        z = generic([z, z], [empty(shape, F32())],
                    [[*outer, Const(0), r0 + 2], [*outer, Const(1), r0 + 2], list(range(r0 + 3))],
                    ["parallel"] * (r0 + 3), body)[0]
        y = _reshape(z, [*base, n], reassoc, expand=False)
        s *= 2
    r = len(shape_of(y))
    norm = nhad.norm(n)
    y = generic([y], [empty(shape_of(y), F32())], [list(range(r))] * 2, ["parallel"] * r,
                lambda v, _: [arith.MulFOp(v, S.f(norm)).result])[0]
    return collapse_last(y)


def unpack_fp6(packed: ir.Value) -> ir.Value:
    """i8 [..., 3G] (four 6-bit codes per three bytes, little-endian) -> i8 codes [..., 4G]."""
    pb = expand_last(packed, 3)  # [..., G, 3]
    shape = shape_of(pb)
    r = len(shape)
    outer = list(range(r - 1))

    def body(b0, b1, b2, _):
        w = arith.OrIOp(_code(b0), arith.ShLIOp(_code(b1), S.i(8)).result).result
        w = arith.OrIOp(w, arith.ShLIOp(_code(b2), S.i(16)).result).result
        sh = arith.MulIOp(index(r - 1), S.i(6)).result
        return [arith.TruncIOp(I8(), arith.AndIOp(arith.ShRUIOp(w, sh).result, S.i(0x3F)).result).result]

    out_shape = [*shape[:-1], 4]
    dims = [[*outer, Const(0)], [*outer, Const(1)], [*outer, Const(2)], list(range(r))]
    codes = generic([pb, pb, pb], [empty(out_shape, I8())], dims, ["parallel"] * r, body)[0]
    return collapse_last(codes)


# ----------------------------------------------------------------------------- rows of bytes (mxq.pack / unpack)


def _int_type(bits: int) -> ir.Type:
    return ir.IntegerType.get_signless(bits)


def _byte_code(e: ir.Value) -> ir.Value:
    """A storage element or scale (float or integer type, 4 or 8 bits) -> its code as i32."""
    if not isinstance(e.type, ir.IntegerType):
        e = arith.BitcastOp(_int_type(_width(e.type)), e).result
    return _code(e)


def _width(t: ir.Type) -> int:
    text = str(t)
    return 4 if text.startswith("f4") else 8


def _from_byte(b: ir.Value, t: ir.Type) -> ir.Value:
    """An i32 code -> the storage type `t` (i8/i4 or a float type of that width)."""
    width = ir.IntegerType(t).width if isinstance(t, ir.IntegerType) else _width(t)
    v = arith.TruncIOp(_int_type(width), b).result
    return v if isinstance(t, ir.IntegerType) else arith.BitcastOp(t, v).result


def _bytes_of(v: ir.Value) -> ir.Value:
    """[..., n] codes of 8-bit types -> i8 [..., n]."""
    s = shape_of(v)
    r = len(s)
    return generic([v], [empty(s, I8())], [list(range(r))] * 2, ["parallel"] * r,
                   lambda x, _: [arith.TruncIOp(I8(), _byte_code(x)).result])[0]


def _packed_elements(e: ir.Value, fmt: Format) -> ir.Value:
    """Element storage (FP6: i8 codes) [..., Kp] -> numerics' packed_elements bytes, i8."""
    bits = fmt.element.bits
    if bits == 8:
        return _bytes_of(e)
    per = 2 if bits == 4 else 4
    g = expand_last(e, per)  # [..., G, per]
    shape = shape_of(g)
    r = len(shape)
    outer = list(range(r - 1))
    if bits == 4:
        def body4(lo, hi, _):
            w = arith.OrIOp(_byte_code(lo), arith.ShLIOp(_byte_code(hi), S.i(4)).result).result
            return [arith.TruncIOp(I8(), w).result]

        return generic([g, g], [empty(shape[:-1], I8())], [[*outer, Const(0)], [*outer, Const(1)], outer],
                       ["parallel"] * (r - 1), body4)[0]

    def body6(c0, c1, c2, c3, _):  # numerics.pack_fp6: w = c0 | c1<<6 | c2<<12 | c3<<18, bytes w, w>>8, w>>16
        w = _byte_code(c0)
        for c, sh in ((c1, 6), (c2, 12), (c3, 18)):
            w = arith.OrIOp(w, arith.ShLIOp(_byte_code(c), S.i(sh)).result).result
        sh = arith.MulIOp(index(r - 1), S.i(8)).result
        return [arith.TruncIOp(I8(), arith.ShRUIOp(w, sh).result).result]

    out = [*shape[:-1], 3]
    maps = [[*outer, Const(i)] for i in range(4)] + [list(range(r))]
    return collapse_last(generic([g] * 4, [empty(out, I8())], maps, ["parallel"] * r, body6)[0])


def _tensor_scale_bytes(ts: ir.Value, lead: list) -> ir.Value:
    """A tensor scale (tensor<f32>, or one per row [*lead, 1]) -> its four little-endian bytes per row, [*lead, 4]."""
    r = len(lead) + 1
    per_row = bool(ir.RankedTensorType(ts.type).rank)

    def body(t, _):
        w = arith.BitcastOp(I32(), t).result
        return [arith.TruncIOp(I8(), arith.ShRUIOp(w, arith.MulIOp(index(r - 1), S.i(8)).result).result).result]

    return generic([ts], [empty([*lead, 4], I8())], [[*range(r - 1), Const(0)] if per_row else [], list(range(r))],
                   ["parallel"] * r, body)[0]


def _insert_last(part: ir.Value, dest: ir.Value, offset: int) -> ir.Value:
    s = shape_of(part)
    r = len(s)
    return tensor.InsertSliceOp(part, dest, [], dynamic_sizes(s), [], [0] * (r - 1) + [offset], static_sizes(s),
                                [1] * r).result


def pack_rows(elements: ir.Value, scales: ir.Value, tensor_scale, fmt: Format, nbytes: int) -> ir.Value:
    """mxq.pack: numerics.row_bytes' layout, i8 [..., nbytes] (elements in the lowering's storage: FP6 i8 codes)."""
    parts = [_packed_elements(elements, fmt), _bytes_of(scales)]
    lead = shape_of(scales)[:-1]
    if fmt.tensor_scale:
        parts.append(_tensor_scale_bytes(tensor_scale, lead))
    out, offset = empty([*lead, nbytes], I8()), 0
    for part in parts:
        out = _insert_last(part, out, offset)
        offset += ir.RankedTensorType(part.type).shape[-1]
    return out


def _unpacked_elements(packed: ir.Value, fmt: Format, codes: bool = False) -> ir.Value:
    """Inverse of _packed_elements: i8 bytes -> element storage (FP6: i8 codes; `codes`: i8 codes of any format)."""
    bits = fmt.element.bits
    t = I8() if codes else storage_type(fmt)
    if bits == 6:
        return unpack_fp6(packed)
    s = shape_of(packed)
    r = len(s)
    if bits == 8 and codes:
        return packed
    if bits == 8:
        return generic([packed], [empty(s, t)], [list(range(r))] * 2, ["parallel"] * r,
                       lambda b, _: [_from_byte(_code(b), t)])[0]

    def body(b, _):
        sh = arith.MulIOp(index(r), S.i(4)).result
        return [_from_byte(arith.AndIOp(arith.ShRUIOp(_code(b), sh).result, S.i(0xF)).result, t)]

    out = generic([packed], [empty([*s, 2], t)], [list(range(r)), list(range(r + 1))], ["parallel"] * (r + 1),
                  body)[0]
    return collapse_last(out)


def unpack_rows(rows: ir.Value, fmt: Format, k: int, codes: bool = False):
    """mxq.unpack: i8 [..., nbytes] rows -> (elements in the lowering's storage, scales, tensor scale per row
    [..., 1] or None); `codes`: elements and scales as i8 codes (for `dequantize(codes=True)`)."""
    kp = -(-k // fmt.block_size) * fmt.block_size
    ne, ko = kp * fmt.element.bits // 8, kp // fmt.block_size
    elements = _unpacked_elements(slice_last(rows, ne), fmt, codes)
    sb = slice_last(rows, ko, ne)
    s = shape_of(sb)
    r = len(s)
    scale_t = I8() if codes else ir.Type.parse(fmt.scale.mlir)
    scales = sb if codes else generic([sb], [empty(s, scale_t)], [list(range(r))] * 2, ["parallel"] * r,
                                      lambda b, _: [_from_byte(_code(b), scale_t)])[0]
    if not fmt.tensor_scale:
        return elements, scales, None
    tb = slice_last(rows, 4, ne + ko)
    lead = s[:-1]
    outer = list(range(r - 1))

    def body(b0, b1, b2, b3, _):
        w = _code(b0)
        for b, sh in ((b1, 8), (b2, 16), (b3, 24)):
            w = arith.OrIOp(w, arith.ShLIOp(_code(b), S.i(sh)).result).result
        return [arith.BitcastOp(F32(), w).result]

    ts = generic([tb] * 4, [empty([*lead, 1], F32())], [[*outer, Const(i)] for i in range(4)] + [[*outer, Const(0)]],
                 ["parallel"] * (r - 1), body)[0]
    return elements, scales, ts
