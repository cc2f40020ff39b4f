"""conv2d as a GEMM: im2col and the NCHW result, as linalg on builtin tensors.

A convolution x [N, C, H, W] * w [O, C, kh, kw] is the GEMM
patches [N*Ho*Wo, C*kh*kw] x w.reshape(O, C*kh*kw)^T, K ordered (C, kh, kw)
as `torch.nn.functional.unfold` orders it, so the block axis of both operands
runs over the reduction of the convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch_mlir import ir
from torch_mlir.dialects import tensor

from ._linalg import F32, empty, filled, generic, shape_of, ttype


@dataclass(frozen=True)
class Conv2dGeometry:
    """Static geometry of one aten.conv2d (groups == 1)."""

    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    @property
    def out_hw(self) -> tuple[int, int]:
        return tuple((size + 2 * p - d * (k - 1) - 1) // s + 1 for size, p, d, k, s in zip(
            (self.h, self.w), self.padding, self.dilation, (self.kh, self.kw), self.stride))

    @property
    def k(self) -> int:
        return self.c * self.kh * self.kw


def _pad(x: ir.Value, ph: int, pw: int) -> ir.Value:
    if ph == 0 and pw == 0:
        return x
    n, c, h, w = shape_of(x)
    dest = filled([n, c, h + 2 * ph, w + 2 * pw], 0.0)
    return tensor.InsertSliceOp(x, dest, [], [], [], [0, 0, ph, pw], [n, c, h, w], [1, 1, 1, 1]).result


def im2col(x: ir.Value, g: Conv2dGeometry) -> ir.Value:
    """x [N, C, H, W] -> patches [N*Ho*Wo, C*kh*kw] (zero padding, stride, dilation)."""
    xp = _pad(x, *g.padding)
    ho, wo = g.out_hw
    shape = [g.n, ho, wo, g.c, g.kh, g.kw]
    d = [ir.AffineDimExpr.get(i) for i in range(6)]
    (sh, sw), (dh, dw) = g.stride, g.dilation
    in_map = ir.AffineMap.get(6, 0, [d[0], d[3], d[1] * sh + d[4] * dh, d[2] * sw + d[5] * dw])
    out_map = ir.AffineMap.get_identity(6)
    from torch_mlir.dialects import linalg

    op = linalg.GenericOp([ttype(shape, F32())], [xp], [empty(shape, F32())],
                          ir.ArrayAttr.get([ir.AffineMapAttr.get(in_map), ir.AffineMapAttr.get(out_map)]),
                          ir.ArrayAttr.get([ir.Attribute.parse("#linalg.iterator_type<parallel>")] * 6))
    block = op.regions[0].blocks.append(F32(), F32())
    with ir.InsertionPoint(block):
        linalg.YieldOp([block.arguments[0]])
    m = g.n * ho * wo
    return tensor.CollapseShapeOp(ttype([m, g.k], F32()), op.result, [[0, 1, 2], [3, 4, 5]]).result


def flatten_weight(w: ir.Value, g: Conv2dGeometry) -> ir.Value:
    """w [O, C, kh, kw] -> [O, C*kh*kw] (seen through by the weight finder, so it is quantized offline)."""
    return tensor.CollapseShapeOp(ttype([g.o, g.k], F32()), w, [[0], [1, 2, 3]]).result


def to_nchw(y: ir.Value, g: Conv2dGeometry) -> ir.Value:
    """GEMM result [N*Ho*Wo, O] -> [N, O, Ho, Wo]."""
    ho, wo = g.out_hw
    y4 = tensor.ExpandShapeOp(ttype([g.n, ho, wo, g.o], F32()), y, [[0, 1, 2], [3]], [], [g.n, ho, wo, g.o]).result
    return generic([y4], [empty([g.n, g.o, ho, wo], F32())], [[0, 2, 3, 1], [0, 1, 2, 3]], ["parallel"] * 4,
                   lambda v, _: [v])[0]
