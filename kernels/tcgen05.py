"""Blackwell's block-scaled `tcgen05.mma`: kinds, operand codes and the instruction descriptor.

`idesc()` is a pure function of the PTX ISA's tables "Instruction descriptor for
.kind::mxf8f6f4" and "... for .kind::mxf4 and .kind::mxf4nvf4" (and the .kind::f16
table for the decode path); tests check it field by field and against the words
CUTLASS's `UMMA::make_instr_desc_block_scaled` builds. The kernels get the words as
compile-time constants (`Pair<FA, FB>`), so this is their only source.
"""

from __future__ import annotations

from dataclasses import dataclass

# PTX kind of each native pair (mxc.kernels.blockscaled.kind_of); F16 is the decode path (bf16 operands).
KIND_F16, KIND_MXF8F6F4, KIND_MXF4, KIND_MXF4NVF4 = 0, 1, 2, 3
KIND_NAMES = {KIND_F16: "f16", KIND_MXF8F6F4: "mxf8f6f4", KIND_MXF4: "mxf4", KIND_MXF4NVF4: "mxf4nvf4"}
# MMA K per instruction (elements) and the scale vector size (scales per row per MMA)
MMA_K = {KIND_F16: 16, KIND_MXF8F6F4: 32, KIND_MXF4: 64, KIND_MXF4NVF4: 64}
SCALE_VEC = {KIND_F16: 0, KIND_MXF8F6F4: 1, KIND_MXF4: 2, KIND_MXF4NVF4: 4}

# atype/btype codes. kind::mxf8f6f4: 3 bits; kind::mxf4(nvf4): E2M1 = 1 (2 bits); kind::f16: F16 0, BF16 1.
MXF8F6F4_TYPES = {"e4m3": 0, "e5m2": 1, "e2m3": 3, "e3m2": 4, "e2m1": 5}
MXF4_TYPES = {"e2m1": 1}
F16_TYPES = {"f16": 0, "bf16": 1}

# Field positions (bit offsets) of the block-scaled descriptor
SFB_ID_SHIFT, ATYPE_SHIFT, BTYPE_SHIFT = 4, 7, 10
NEG_A_BIT, NEG_B_BIT, MAJOR_A_BIT, MAJOR_B_BIT = 13, 14, 15, 16
N_SHIFT, SCALE_TYPE_BIT, M_SHIFT, SFA_ID_SHIFT, K96_BIT = 17, 23, 27, 29, 31
# kind::f16: D format at bits 4-5 (F32 = 1), M>>4 at bits 24-28
F16_DTYPE_SHIFT, F16_M_SHIFT = 4, 24


@dataclass(frozen=True)
class Desc:
    """An instruction descriptor: the kind and the word (the kernels OR the per-MMA scale selectors
    in at SFA_ID_SHIFT / SFB_ID_SHIFT)."""

    kind: int
    word: int


def idesc(kind: int, a: str, b: str, *, m: int = 128, n: int = 128, ue8m0: bool = True,
          sfa_id: int = 0, sfb_id: int = 0) -> int:
    """The 32-bit instruction descriptor of a dense, K-major, non-negated tcgen05.mma.

    kind: KIND_*; a, b: element type names (e4m3, e5m2, e2m3, e3m2, e2m1; bf16 / f16 for
    kind::f16); ue8m0: scale type (False = UE4M3, only with kind::mxf4nvf4).
    """
    if m not in (64, 128, 256) or (kind != KIND_F16 and m == 64):
        raise ValueError(f"M={m} is not a tcgen05.mma shape for kind {KIND_NAMES[kind]}")
    if n % 16 or not 16 <= n <= 256:
        raise ValueError(f"N={n} is not a tcgen05.mma shape (16..256, step 16)")
    if kind == KIND_F16:
        return (1 << F16_DTYPE_SHIFT | F16_TYPES[a] << ATYPE_SHIFT | F16_TYPES[b] << BTYPE_SHIFT
                | (n >> 3) << N_SHIFT | (m >> 4) << F16_M_SHIFT)
    table = MXF8F6F4_TYPES if kind == KIND_MXF8F6F4 else MXF4_TYPES
    if a not in table or b not in table:
        raise ValueError(f"kind::{KIND_NAMES[kind]} takes {sorted(table)}, not {a} x {b}")
    if not ue8m0 and kind != KIND_MXF4NVF4:
        raise ValueError("UE4M3 scales need kind::mxf4nvf4")
    vec = 4 if kind == KIND_MXF4NVF4 and not ue8m0 else 2 if kind != KIND_MXF8F6F4 else 1
    legal_ids = {1: (0, 1, 2, 3), 2: (0, 2), 4: (0,)}[vec]
    if sfa_id not in legal_ids or sfb_id not in legal_ids:
        raise ValueError(f"scale-factor ids for kind::{KIND_NAMES[kind]} are {legal_ids}")
    return (sfb_id << SFB_ID_SHIFT | table[a] << ATYPE_SHIFT | table[b] << BTYPE_SHIFT
            | (n >> 3) << N_SHIFT | int(ue8m0) << SCALE_TYPE_BIT | (m >> 7) << M_SHIFT | sfa_id << SFA_ID_SHIFT)


def fields(word: int) -> dict[str, int]:
    """A block-scaled descriptor split into the PTX table's fields (for tests and `mxc inspect`)."""
    def f(shift, bits):
        return (word >> shift) & ((1 << bits) - 1)

    return {"sfb_id": f(SFB_ID_SHIFT, 2), "atype": f(ATYPE_SHIFT, 3), "btype": f(BTYPE_SHIFT, 3),
            "negate_a": f(NEG_A_BIT, 1), "negate_b": f(NEG_B_BIT, 1), "a_major": f(MAJOR_A_BIT, 1),
            "b_major": f(MAJOR_B_BIT, 1), "n": f(N_SHIFT, 6) << 3, "ue8m0": f(SCALE_TYPE_BIT, 1),
            "m": f(M_SHIFT, 2) << 7, "sfa_id": f(SFA_ID_SHIFT, 2), "k96": f(K96_BIT, 1)}
