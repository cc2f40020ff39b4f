"""pad-attention-queries: an sdpa whose query count is dynamic runs at a static one, its queries zero-padded.

Run by `decompose-attention` (its option `max-queries`), which decomposes static attention only: IREE's fused
attention op is slow at a dynamic query count on the CPU (decompose_attention.py) and on the GPU (H200, a
Llama-3.2-1B-shaped prefill of 128 tokens: 820 us a layer, 13.1 of the prefill's 17.8 ms of kernel time;
padded to 256 and decomposed, two batch matmuls of 101 us). So a `--generate` prefill's attention over its
cache is padded and decomposed (SmolLM2-135M, 64-token prefill on 2 cores: 336-355 ms -> 231 ms; the 1B
model on the H200: 24.1 -> 21.4 ms at 128 tokens, 34.2 -> 23.8 ms at 255, 10.8 -> 17.2 ms at 16).

When the keys' count S is static and the compile knows that no call has more queries than S (option
`max-queries`, which the compile driver takes from torch.export's ranges; 0: unknown, nothing changes),
each such sdpa becomes

    q'    = constant_pad_nd(q, [0, 0, 0, S - L])          [B, H, S, E], zero rows past the L queries
    mask' = constant_pad_nd(mask, [0, 0, 0, S - L], 1)    a mask with a query dimension: the padded rows
                                                          see every key (no row of -inf, no NaN)
    out   = sdpa(q', k, v, mask')[:, :, :L]               static [B, H, S, Ev], then its first L rows

Each output row depends on its own query and mask row only (is_causal's mask too: top-left, so appending
rows moves no earlier one), so the L rows kept are the unpadded sdpa's.
"""

from __future__ import annotations

import dataclasses

from torch_mlir import ir

from .base import Pass, walk_ops
from .decompose_attention import SDPA, _Builder, _constant


def _dims(v: ir.Value) -> tuple[list[int | None], str] | None:
    """Sizes (None where dynamic) and element type of a !torch.vtensor value, or None."""
    text = str(v.type)
    if not text.startswith("!torch.vtensor<["):
        return None
    dims, dtype = text[len("!torch.vtensor<["):-1].rsplit("],", 1)
    return [None if d == "?" else int(d) for d in dims.split(",")] if dims else [], dtype


def _name(a) -> str:
    return a if isinstance(a, str) else a.name


def _vt(shape: list[int | None], dtype: str) -> ir.Type:
    return ir.Type.parse(f"!torch.vtensor<[{','.join('?' if d is None else str(d) for d in shape)}],{dtype}>")


@dataclasses.dataclass(frozen=True)
class PadAttentionQueries(Pass):
    name = "pad-attention-queries"
    max_queries: int = 0  # the most queries any call of an sdpa with a dynamic query count has (0: unknown)

    def run(self, module: ir.Operation) -> None:
        self.pad(module)

    def pad(self, module: ir.Operation) -> list[ir.Operation]:
        """Pad every sdpa that qualifies; the new (static) sdpa ops."""
        if self.max_queries <= 0:
            return []
        return [new for op in walk_ops(module, (SDPA,)) if (new := self._pad(op.operation)) is not None]

    def _pad(self, op: ir.Operation) -> ir.Operation | None:
        q, k, v, mask = list(op.operands)[:4]
        qd, kd, rd = _dims(q), _dims(k), _dims(op.result)
        if qd is None or kd is None or rd is None or len(qd[0]) != 4 or len(kd[0]) != 4:
            return None
        (qs, qt), (ks, _), (rs, rt) = qd, kd, rd
        s = ks[2]
        if qs[2] is not None or s is None or s < self.max_queries or None in (*qs[:2], qs[3], *rs[:2], rs[3]):
            return None
        md = None if _constant(mask) is None else _dims(mask)
        if _constant(mask) is not None and (md is None or len(md[0]) != 4 or md[0][2] not in (None, 1)):
            return None  # a mask whose query dimension we cannot pad to S
        b = _Builder()
        with op.location, ir.InsertionPoint(op):
            two, zero, one = b.const("int", 2), b.const("int", 0), b.const("int", 1)
            length = b.op("torch.aten.size.int", ir.Type.parse("!torch.int"), q, two)
            pad = b.op("torch.aten.sub.int", ir.Type.parse("!torch.int"), b.const("int", s), length)
            amounts = b.op("torch.prim.ListConstruct", ir.Type.parse("!torch.list<int>"), zero, zero, zero, pad)

            def padded(x, shape, dtype, value: float):
                dyn = b.op("torch.aten.constant_pad_nd", _vt(shape, dtype), x, amounts, b.const("float", value))
                return b.op("torch.tensor_static_info_cast", _vt([*shape[:2], s, shape[3]], dtype), dyn)

            operands = list(op.operands)
            operands[0] = padded(q, qs, qt, 0.0)
            if md is not None and md[0][2] is None:
                operands[3] = padded(mask, md[0], md[1], 1.0)
            full = ir.Operation.create(SDPA, results=[_vt([*rs[:2], s, rs[3]], rt)], operands=operands,
                                       attributes={n: op.attributes[n] for n in map(_name, op.attributes)})
            out = b.op("torch.aten.slice.Tensor", op.result.type, full.result, two, zero, length, one)
        op.result.replace_all_uses_with(out)
        op.erase()
        return full
