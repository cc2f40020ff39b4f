"""Small builders for linalg/tensor/arith IR used by the lowerings.

`generic(...)` builds a `linalg.generic` from maps given as lists of dim
indices and a Python body; `Scalar` emits the float32 steps of
`mxc.numerics.elements` (floor_log2, exp2i, round_to_element) as arith, in the
same order, so lowered code and reference agree bit for bit.

Dynamic sizes: a tensor's leading (token) dimensions may be dynamic (model.py's
`get_dynamic_shapes()`); the last dimension, K or a block, is always static.
`shape_of` gives a dynamic size as the `index` value of a `tensor.dim` (created
at the insertion point), and every builder here takes such mixed shapes
(`Size`: an int or an index value), so the lowerings pass the leading sizes
through unchanged whether they are known or not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod as math_prod

from torch_mlir import ir
from torch_mlir.dialects import arith, linalg, math, tensor

from mxc.numerics.formats import ElementType
from mxc.numerics.rng import seed_word

F32 = ir.F32Type.get
I32 = lambda: ir.IntegerType.get_signless(32)  # noqa: E731
I8 = lambda: ir.IntegerType.get_signless(8)  # noqa: E731


Size = int | ir.Value  # a static size, or a dynamic one as an `index` value
DYN = ir.ShapedType.get_dynamic_size()


def static_sizes(shape: Sequence[Size]) -> list[int]:
    return [d if isinstance(d, int) else DYN for d in shape]


def dynamic_sizes(shape: Sequence[Size]) -> list[ir.Value]:
    return [d for d in shape if not isinstance(d, int)]


def ttype(shape: Sequence[Size], elem: ir.Type) -> ir.RankedTensorType:
    return ir.RankedTensorType.get(static_sizes(shape), elem)


def shape_of(v: ir.Value) -> list[Size]:
    """The sizes of a ranked tensor; a dynamic one as `tensor.dim` (an index value)."""
    t = ir.RankedTensorType(v.type)
    return [t.get_dim_size(i) if not t.is_dynamic_dim(i) else tensor.dim(v, arith.constant(ir.IndexType.get(), i))
            for i in range(t.rank)]


def is_static(v: ir.Value) -> bool:
    return ir.RankedTensorType(v.type).has_static_shape


def empty(shape: Sequence[Size], elem: ir.Type) -> ir.Value:
    return tensor.EmptyOp(list(shape), elem).result


def filled(shape: Sequence[int], value: float) -> ir.Value:
    """A float32 tensor of `shape` filled with `value`."""
    c = arith.ConstantOp(F32(), ir.FloatAttr.get(F32(), value)).result
    return linalg.fill(c, outs=[empty(shape, F32())])


class Const(int):
    """A constant index in an indexing map: `[0, Const(1), 2]` is (d0, d1, d2) -> (d0, 1, d2)."""


def _map(ndims: int, dims: Sequence[int]) -> ir.AffineMap:
    exprs = [ir.AffineConstantExpr.get(int(d)) if isinstance(d, Const) else ir.AffineDimExpr.get(d) for d in dims]
    return ir.AffineMap.get(ndims, 0, exprs)


def index(dim: int) -> ir.Value:
    """The loop index `dim` inside a linalg.generic body, as i32."""
    i = linalg.IndexOp(ir.IntegerAttr.get(ir.IntegerType.get_signless(64), dim)).result
    return arith.IndexCastOp(I32(), i).result


def generic(
    inputs: Sequence[ir.Value],
    inits: Sequence[ir.Value],
    dims: Sequence[Sequence[int]],
    iterators: Sequence[str],
    body: Callable[..., Sequence[ir.Value]],
) -> list[ir.Value]:
    """linalg.generic with indexing maps `dims` (one list of loop dims, or `Const`s, per operand)."""
    n = len(iterators)
    maps = ir.ArrayAttr.get([ir.AffineMapAttr.get(_map(n, d)) for d in dims])
    iters = ir.ArrayAttr.get(
        [ir.Attribute.parse(f"#linalg.iterator_type<{it}>") for it in iterators]
    )
    op = linalg.GenericOp([v.type for v in inits], list(inputs), list(inits), maps, iters)
    types = [ir.RankedTensorType(v.type).element_type for v in [*inputs, *inits]]
    block = op.regions[0].blocks.append(*types)
    with ir.InsertionPoint(block):
        linalg.YieldOp(list(body(*block.arguments)))
    return list(op.results)


def expand_last(v: ir.Value, inner: int) -> ir.Value:
    """[..., K] -> [..., K / inner, inner]."""
    s = shape_of(v)
    r = len(s)
    reassoc = [[i] for i in range(r - 1)] + [[r - 1, r]]
    out = [*s[:-1], s[-1] // inner, inner]
    return tensor.ExpandShapeOp(ttype(out, ir.RankedTensorType(v.type).element_type), v, reassoc, dynamic_sizes(out),
                                static_sizes(out)).result


def collapse_last(v: ir.Value) -> ir.Value:
    """[..., Ko, bs] -> [..., Ko * bs]."""
    s = list(ir.RankedTensorType(v.type).shape)  # (a collapse needs no dynamic size's value)
    r = len(s)
    reassoc = [[i] for i in range(r - 2)] + [[r - 2, r - 1]]
    out = [*s[:-2], s[-2] * s[-1]]
    return tensor.CollapseShapeOp(ttype(out, ir.RankedTensorType(v.type).element_type), v, reassoc).result


def collapse_leading(v: ir.Value) -> ir.Value:
    """[a, b, ..., K] -> [a * b * ..., K] (identity for rank 2; dynamic when a leading size is)."""
    s = list(ir.RankedTensorType(v.type).shape)
    if len(s) == 2:
        return v
    m = DYN if DYN in s[:-1] else math_prod(s[:-1])
    reassoc = [list(range(len(s) - 1)), [len(s) - 1]]
    return tensor.CollapseShapeOp(ttype([m, s[-1]], ir.RankedTensorType(v.type).element_type), v, reassoc).result


def expand_leading(v: ir.Value, lead: Sequence[Size]) -> ir.Value:
    """[M, N] -> [*lead, N] (identity when lead has one dim)."""
    s = shape_of(v)
    if len(lead) == 1:
        return v
    out = [*lead, s[-1]]
    reassoc = [list(range(len(lead))), [len(lead)]]
    return tensor.ExpandShapeOp(ttype(out, ir.RankedTensorType(v.type).element_type), v, reassoc, dynamic_sizes(out),
                                static_sizes(out)).result


def pad_last(v: ir.Value, size: int) -> ir.Value:
    """Zero-pad the last dim of a float32 tensor to `size`."""
    s = shape_of(v)
    if s[-1] == size:
        return v
    dest = filled([*s[:-1], size], 0.0)
    r = len(s)
    return tensor.InsertSliceOp(v, dest, [], dynamic_sizes(s), [], [0] * r, static_sizes(s), [1] * r).result


def slice_last(v: ir.Value, size: int, offset: int = 0) -> ir.Value:
    """`size` entries of the last dim from `offset` (the first `size` by default)."""
    s = shape_of(v)
    if s[-1] == size and offset == 0:
        return v
    r = len(s)
    out = [*s[:-1], size]
    return tensor.ExtractSliceOp(
        ttype(out, ir.RankedTensorType(v.type).element_type), v, [], dynamic_sizes(out), [], [0] * (r - 1) + [offset],
        static_sizes(out), [1] * r
    ).result


class Scalar:
    """arith emitters for float32 scalars inside a linalg body (mirrors numerics.elements)."""

    @staticmethod
    def f(v: float) -> ir.Value:
        return arith.ConstantOp(F32(), ir.FloatAttr.get(F32(), v)).result

    @staticmethod
    def i(v: int, width: int = 32) -> ir.Value:
        t = ir.IntegerType.get_signless(width)
        return arith.ConstantOp(t, ir.IntegerAttr.get(t, v)).result

    @staticmethod
    def cmpf(pred: str, a, b) -> ir.Value:
        return arith.CmpFOp(getattr(arith.CmpFPredicate, pred.upper()), a, b).result

    @staticmethod
    def cmpi(pred: str, a, b) -> ir.Value:
        return arith.CmpIOp(getattr(arith.CmpIPredicate, pred), a, b).result

    @staticmethod
    def select(c, a, b) -> ir.Value:
        return arith.SelectOp(c, a, b).result

    @classmethod
    def floor_log2(cls, a) -> ir.Value:
        """((bits(a) >> 23) & 0xFF) - 127 as i32."""
        bits = arith.BitcastOp(I32(), a).result
        e = arith.AndIOp(arith.ShRUIOp(bits, cls.i(23)).result, cls.i(0xFF)).result
        return arith.SubIOp(e, cls.i(127)).result

    @classmethod
    def exp2i(cls, e) -> ir.Value:
        """2**e for i32 e in [-127, 127], from bits."""
        ec = arith.MinSIOp(arith.MaxSIOp(e, cls.i(-126)).result, cls.i(127)).result
        normal = arith.BitcastOp(F32(), arith.ShLIOp(arith.AddIOp(ec, cls.i(127)).result, cls.i(23)).result).result
        return cls.select(cls.cmpi("slt", e, cls.i(-126)), cls.f(2.0**-127), normal)

    @classmethod
    def mul_exp2(cls, x, n) -> ir.Value:
        """x * 2**n for i32 n, exact also for subnormal x.

        IREE's CPU code runs with denormals flushed to zero, so a subnormal x
        is rebuilt from its integer mantissa: x = m * 2^-149, and m * 2^(n - 149)
        is computed from normal numbers only (anything below 2^-126 there
        rounds to zero in every element format anyway).
        """
        bits = arith.BitcastOp(I32(), x).result
        is_sub = cls.cmpi("eq", arith.AndIOp(bits, cls.i(0x7F800000)).result, cls.i(0))
        mant = arith.SIToFPOp(F32(), arith.AndIOp(bits, cls.i(0x7FFFFF)).result).result
        sub = math.CopySignOp(
            arith.MulFOp(mant, cls.exp2i(arith.SubIOp(n, cls.i(149)).result)).result, x
        ).result
        n1 = arith.MaxSIOp(n, cls.i(-126)).result  # 2^-127 itself is subnormal: multiply in two steps
        normal = arith.MulFOp(arith.MulFOp(x, cls.exp2i(n1)).result, cls.exp2i(arith.SubIOp(n, n1).result)).result
        return cls.select(is_sub, sub, normal)

    @classmethod
    def ceil_log2(cls, a) -> ir.Value:
        """ceil(log2(a)) for a > 0, subnormal a scaled by 2^64 first (numerics.elements.ceil_log2)."""
        tiny = cls.cmpf("olt", a, cls.f(2.0**-100))
        s = cls.select(tiny, cls.mul_exp2(a, cls.i(64)), a)
        mant = arith.AndIOp(arith.BitcastOp(I32(), s).result, cls.i(0x7FFFFF)).result
        e = arith.AddIOp(cls.floor_log2(s), arith.ExtUIOp(I32(), cls.cmpi("ne", mant, cls.i(0))).result).result
        return cls.select(tiny, arith.SubIOp(e, cls.i(64)).result, e)

    @classmethod
    def round_int(cls, t, u=None) -> ir.Value:
        """RNE, or stochastic (up when u < frac(t)) for t >= 0: numerics.elements.round_int."""
        if u is None:
            return math.RoundEvenOp(t).result
        f = math.FloorOp(t).result
        up = cls.cmpf("olt", u, arith.SubFOp(t, f).result)
        return arith.AddFOp(f, cls.select(up, cls.f(1.0), cls.f(0.0))).result

    @classmethod
    def round_to_element(cls, v, elem: ElementType, u=None) -> ir.Value:
        """RNE (or stochastic) to `elem`, saturating: the arith twin of numerics.elements.round_to_element."""
        a = arith.MinimumFOp(math.AbsFOp(v).result, cls.f(elem.max)).result
        if elem.kind == "int":
            t = arith.MulFOp(a, cls.f(2.0**elem.mbits)).result
            q = arith.MulFOp(cls.round_int(t, u), cls.f(2.0**-elem.mbits)).result
            return math.CopySignOp(q, v).result
        e = arith.MaxSIOp(cls.floor_log2(a), cls.i(elem.emin)).result
        up = cls.exp2i(arith.SubIOp(cls.i(elem.mbits), e).result)
        down = cls.exp2i(arith.SubIOp(e, cls.i(elem.mbits)).result)
        q = arith.MulFOp(cls.round_int(arith.MulFOp(a, up).result, u), down).result
        return math.CopySignOp(arith.MinimumFOp(q, cls.f(elem.max)).result, v).result

    @classmethod
    def encode(cls, q, elem: ElementType) -> ir.Value:
        """i32 code of a value representable in `elem` (numerics.elements.encode)."""
        if elem.kind == "int":
            return arith.FPToSIOp(I32(), arith.MulFOp(q, cls.f(2.0**elem.mbits)).result).result
        a = math.AbsFOp(q).result
        e = cls.floor_log2(a)
        bits = arith.BitcastOp(I32(), a).result
        mant = arith.AndIOp(arith.ShRUIOp(bits, cls.i(23 - elem.mbits)).result, cls.i((1 << elem.mbits) - 1)).result
        expf = arith.MaxSIOp(arith.AddIOp(e, cls.i(elem.bias)).result, cls.i(0)).result
        normal = arith.OrIOp(mant, arith.ShLIOp(expf, cls.i(elem.mbits)).result).result
        sub_v = math.RoundEvenOp(arith.MulFOp(a, cls.f(2.0 ** (elem.mbits - elem.emin))).result).result
        mag = cls.select(cls.cmpi("sge", e, cls.i(elem.emin)), normal, arith.FPToSIOp(I32(), sub_v).result)
        if elem.nan_code is not None:
            mag = cls.select(cls.cmpf("uno", q, q), cls.i(elem.nan_code), mag)
        if not elem.signed:
            return mag
        sign = arith.AndIOp(arith.ShRUIOp(arith.BitcastOp(I32(), q).result, cls.i(31)).result, cls.i(1)).result
        return arith.OrIOp(arith.ShLIOp(sign, cls.i(elem.bits - 1)).result, mag).result

    @classmethod
    def decode(cls, code, elem: ElementType) -> ir.Value:
        """float32 value of an i32 code (numerics.elements.decode_table), exact."""
        if elem.kind == "int":
            sh = cls.i(32 - elem.bits)
            q = arith.ShRSIOp(arith.ShLIOp(code, sh).result, sh).result
            return arith.MulFOp(arith.SIToFPOp(F32(), q).result, cls.f(2.0**-elem.mbits)).result
        mag = arith.AndIOp(code, cls.i((1 << (elem.bits - int(elem.signed))) - 1)).result
        e = arith.ShRUIOp(mag, cls.i(elem.mbits)).result
        m = arith.AndIOp(mag, cls.i((1 << elem.mbits) - 1)).result
        is_normal = cls.cmpi("sgt", e, cls.i(0))
        sig = cls.select(is_normal, arith.OrIOp(m, cls.i(1 << elem.mbits)).result, m)
        ex = arith.SubIOp(arith.MaxSIOp(e, cls.i(1)).result, cls.i(elem.bias + elem.mbits)).result
        val = arith.MulFOp(arith.SIToFPOp(F32(), sig).result, cls.exp2i(ex)).result
        if elem.nan_code is not None:
            val = cls.select(cls.cmpi("eq", mag, cls.i(elem.nan_code)), cls.f(float("nan")), val)
        if elem.signed:
            neg = cls.cmpi("ne", arith.AndIOp(code, cls.i(1 << (elem.bits - 1))).result, cls.i(0))
            val = cls.select(neg, arith.NegFOp(val).result, val)
        return val

    @classmethod
    def uniform(cls, idx, seed: int) -> ir.Value:
        """Stochastic rounding's u in (0, 1) for flat element index `idx` (i32): numerics.rng.uniform."""
        h = arith.XOrIOp(idx, cls.i(_i32(seed_word(seed)))).result
        for shift, mul in ((16, 0x85EBCA6B), (13, 0xC2B2AE35), (16, None)):
            h = arith.XOrIOp(h, arith.ShRUIOp(h, cls.i(shift)).result).result
            if mul is not None:
                h = arith.MulIOp(h, cls.i(_i32(mul))).result
        k = arith.OrIOp(arith.ShLIOp(arith.ShRUIOp(h, cls.i(9)).result, cls.i(1)).result, cls.i(1)).result
        return arith.MulFOp(arith.SIToFPOp(F32(), k).result, cls.f(2.0**-24)).result

    @classmethod
    def product(cls, v) -> ir.Value:
        """A product about to feed an add, with NaN read as 0: numerics.quantize.product.

        IREE's CPU backend compiles with FP contraction on, so `a * b + c`
        would become one FMA (a different rounding than the reference's). A
        select on the product is not a multiply, so LLVM cannot fuse across it.
        """
        return cls.select(cls.cmpf("uno", v, v), cls.f(0.0), v)

    @classmethod
    def is_nonfinite(cls, a) -> ir.Value:
        """a is NaN or ±Inf (for a >= 0 or any sign)."""
        return cls.cmpf("ueq", math.AbsFOp(a).result, cls.f(float("inf")))


def _i32(v: int) -> int:
    """A 32-bit pattern as the signed value an i32 attribute holds."""
    return v - (1 << 32) if v >= 1 << 31 else v
