"""Small builders for linalg/tensor/arith IR used by the lowerings.

`generic(...)` builds a `linalg.generic` from maps given as lists of dim
indices and a Python body; `Scalar` emits the float32 steps of
`mxc.numerics.elements` (floor_log2, exp2i, round_to_element) as arith, in the
same order, so lowered code and reference agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch_mlir import ir
from torch_mlir.dialects import arith, linalg, math, tensor

from mxc.numerics.formats import ElementType

F32 = ir.F32Type.get
I32 = lambda: ir.IntegerType.get_signless(32)  # noqa: E731
I8 = lambda: ir.IntegerType.get_signless(8)  # noqa: E731


def ttype(shape: Sequence[int], elem: ir.Type) -> ir.RankedTensorType:
    return ir.RankedTensorType.get(list(shape), elem)


def shape_of(v: ir.Value) -> list[int]:
    return list(ir.RankedTensorType(v.type).shape)


def empty(shape: Sequence[int], elem: ir.Type) -> ir.Value:
    return tensor.EmptyOp(list(shape), elem).result


def filled(shape: Sequence[int], value: float) -> ir.Value:
    """A float32 tensor of `shape` filled with `value`."""
    c = arith.ConstantOp(F32(), ir.FloatAttr.get(F32(), value)).result
    return linalg.fill(c, outs=[empty(shape, F32())])


def _map(ndims: int, dims: Sequence[int]) -> ir.AffineMap:
    return ir.AffineMap.get(ndims, 0, [ir.AffineDimExpr.get(d) for d in dims])


def generic(
    inputs: Sequence[ir.Value],
    inits: Sequence[ir.Value],
    dims: Sequence[Sequence[int]],
    iterators: Sequence[str],
    body: Callable[..., Sequence[ir.Value]],
) -> list[ir.Value]:
    """linalg.generic with indexing maps `dims` (one list of loop dims per operand)."""
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
    return tensor.ExpandShapeOp(ttype(out, ir.RankedTensorType(v.type).element_type), v, reassoc, [], out).result


def collapse_last(v: ir.Value) -> ir.Value:
    """[..., Ko, bs] -> [..., Ko * bs]."""
    s = shape_of(v)
    r = len(s)
    reassoc = [[i] for i in range(r - 2)] + [[r - 2, r - 1]]
    out = [*s[:-2], s[-2] * s[-1]]
    return tensor.CollapseShapeOp(ttype(out, ir.RankedTensorType(v.type).element_type), v, reassoc).result


def collapse_leading(v: ir.Value) -> ir.Value:
    """[a, b, ..., K] -> [a * b * ..., K] (identity for rank 2)."""
    s = shape_of(v)
    if len(s) == 2:
        return v
    m = 1
    for d in s[:-1]:
        m *= d
    reassoc = [list(range(len(s) - 1)), [len(s) - 1]]
    return tensor.CollapseShapeOp(ttype([m, s[-1]], ir.RankedTensorType(v.type).element_type), v, reassoc).result


def expand_leading(v: ir.Value, lead: Sequence[int]) -> ir.Value:
    """[M, N] -> [*lead, N] (identity when lead has one dim)."""
    s = shape_of(v)
    if len(lead) == 1:
        return v
    out = [*lead, s[-1]]
    reassoc = [list(range(len(lead))), [len(lead)]]
    return tensor.ExpandShapeOp(ttype(out, ir.RankedTensorType(v.type).element_type), v, reassoc, [], out).result


def pad_last(v: ir.Value, size: int) -> ir.Value:
    """Zero-pad the last dim of a float32 tensor to `size`."""
    s = shape_of(v)
    if s[-1] == size:
        return v
    dest = filled([*s[:-1], size], 0.0)
    r = len(s)
    return tensor.InsertSliceOp(v, dest, [], [], [], [0] * r, s, [1] * r).result


def slice_last(v: ir.Value, size: int) -> ir.Value:
    """The first `size` entries of the last dim."""
    s = shape_of(v)
    if s[-1] == size:
        return v
    r = len(s)
    out = [*s[:-1], size]
    return tensor.ExtractSliceOp(
        ttype(out, ir.RankedTensorType(v.type).element_type), v, [], [], [], [0] * r, out, [1] * r
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
        return cls.select(is_sub, sub, arith.MulFOp(x, cls.exp2i(n)).result)

    @classmethod
    def round_to_element(cls, v, elem: ElementType) -> ir.Value:
        """RNE to `elem`, saturating: the arith twin of numerics.elements.round_to_element."""
        a = arith.MinimumFOp(math.AbsFOp(v).result, cls.f(elem.max)).result
        e = arith.MaxSIOp(cls.floor_log2(a), cls.i(elem.emin)).result
        up = cls.exp2i(arith.SubIOp(cls.i(elem.mbits), e).result)
        down = cls.exp2i(arith.SubIOp(e, cls.i(elem.mbits)).result)
        q = arith.MulFOp(math.RoundEvenOp(arith.MulFOp(a, up).result).result, down).result
        return math.CopySignOp(q, v).result

    @classmethod
    def is_nonfinite(cls, a) -> ir.Value:
        """a is NaN or ±Inf (for a >= 0 or any sign)."""
        return cls.cmpf("ueq", math.AbsFOp(a).result, cls.f(float("inf")))
