"""How the kernels' operands are laid out: which format pairs the block-scaled MMA takes natively,
16-byte units of the tiles, their sizes, and the weights re-packed into them.

Shared by the kernel kinds (`kinds.py`), the targets' kernel selection, the lowering that re-packs
weights, and the GPU runner.
"""

from __future__ import annotations

from dataclasses import dataclass

from mxc.numerics.formats import FORMATS, get_format

from . import tcgen05 as tc

BS_TILE = 128  # the block-scaled skeleton's tiles: 128 x 128 (mxc_bs.cuh)
TILEQ_FORMATS = ("mxfp8", "mxfp8_e5m2")  # activation formats cuda-sm90's tileq quantizes (with weights in these)
MX_NATIVE = ("mxfp8", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4")  # kind::mxf8f6f4 / mxf4
NV_ACT = ("nvfp4", "nvfp4_4over6")  # activations for kind::mxf4nvf4 (Four Over Six is NVFP4 on the wire)
NV_WEIGHT = ("nvfp4", "nvfp4_4over6")
BS_ACT_FORMATS = MX_NATIVE + NV_ACT  # what `bsq` quantizes
WEIGHT_FORMATS = tuple(FORMATS)  # the decode path takes every format of the table


def pair_kind(a_format: str, w_format: str) -> int | None:
    """The tcgen05 kind that multiplies these activation x weight formats natively, or None."""
    if a_format in MX_NATIVE and w_format in MX_NATIVE:
        return tc.KIND_MXF4 if a_format == w_format == "mxfp4" else tc.KIND_MXF8F6F4
    if a_format in NV_ACT and w_format in NV_WEIGHT:
        return tc.KIND_MXF4NVF4
    return None


def native_pairs() -> list[tuple[str, str]]:
    """Every (activation, weight) format pair with a block-scaled tcgen05 kind."""
    return [(a, w) for a in BS_ACT_FORMATS for w in WEIGHT_FORMATS if pair_kind(a, w) is not None]


def unit_elements(fmt: str, kind: int | None) -> int:
    """Elements per 16-byte unit of an operand's tiles (mxc.kernels.layouts): bf16 8; packed FP4 32
    (kind::mxf4 / mxf4nvf4, and the decode path's 4-bit formats); 16 otherwise (FP8, FP6, and FP4
    unpacked for kind::mxf8f6f4)."""
    if fmt == "bf16":
        return 8
    bits = get_format(fmt).element.bits
    return 32 if bits == 4 and kind != tc.KIND_MXF8F6F4 else 16


def pair_desc(a_format: str, w_format: str) -> tc.Desc:
    """The instruction descriptor of the kernel for this pair (kind::f16 for the decode path)."""
    kind = pair_kind(a_format, w_format)
    if kind is None:
        return tc.Desc(tc.KIND_F16, tc.idesc(tc.KIND_F16, "bf16", "bf16"))
    ea, ew = get_format(a_format).element.name, get_format(w_format).element.name
    return tc.Desc(kind, tc.idesc(kind, ea, ew, ue8m0=kind != tc.KIND_MXF4NVF4))


def one_code(fmt) -> int:
    """A scale code of `fmt` whose value is 1 (the padding's scale)."""
    import numpy as np

    from mxc.numerics.elements import decode_table

    if fmt.scale.name == "e8m0":
        return 127
    table = decode_table(fmt.scale.element).numpy()
    return int(np.flatnonzero(table == 1.0)[0])


def tile_weights(codes, scales, fmt: str, ue: int, k: int):
    """Weight codes [N, >=K] (one per element) and scale codes [N, ceil(K/bs)] -> the bsmma / bsdec
    tiles (mxc.kernels.layouts): codes in 128 x 128 tiles of 16-byte units of `ue`, scales in 128x4
    chunks padded with the scale code of 1."""
    from . import layouts

    f = get_format(fmt)
    return (layouts.tile_codes(codes, f.element.bits, ue),
            layouts.tile_scales(scales, k, f.block_size, one_code(f)))


class IntOps:
    """Size and grid arithmetic on Python ints (the IR twin, for a dynamic row count, is lower-mxq-to-cuda's
    `_IndexOps`)."""

    @staticmethod
    def cdiv(a, b):
        return -(-a // b)

    @staticmethod
    def div(a, b):
        return a // b

    @staticmethod
    def mul(a, b):
        return a * b

    @staticmethod
    def max(a, b):
        return max(a, b)

    @staticmethod
    def min(a, b):
        return min(a, b)


INT = IntOps()


def tiled_sizes(fmt: str, ue: int, rows, k: int, ops=INT) -> tuple:
    """Bytes of an operand [rows, k] in the tiles (bsq's outputs, the re-packed weights): (codes,
    scales), rows and k padded to 128; scales 0 for bf16."""
    rk = ops.mul(ops.mul(ops.cdiv(rows, BS_TILE), BS_TILE), -(-k // BS_TILE) * BS_TILE)
    return ops.div(ops.mul(rk, 16), ue), (0 if fmt == "bf16" else ops.div(rk, get_format(fmt).block_size))


# ---------------------------------------------------------------- weight layouts
@dataclass(frozen=True)
class Tiles:
    """The block-scaled skeleton's weight layout: 128 x 128 tiles of 16-byte units of `ue` elements,
    scales in 128x4 chunks (`layouts.tile_codes`)."""

    ue: int

    @property
    def suffix(self) -> str:
        """What the re-packed weights' names end with (`<name>.<suffix>` in the weight store)."""
        return f"t{self.ue}"

    def sizes(self, fmt: str, rows: int, k: int) -> tuple[int, int]:
        return tiled_sizes(fmt, self.ue, rows, k)

    def pack(self, codes, scales, fmt: str, k: int):
        return tile_weights(codes, scales, fmt, self.ue, k)


def fast_e2m1(fmt: str) -> bool:
    """Whether `dec` decodes the format's elements by E2M1's integer ops (plain E2M1 elements: not IF4's
    per-block INT4, which takes `fast_if4`'s table decode), from the bit-scattered fragment layout."""
    f = get_format(fmt)
    return f.element.name == "e2m1" and f.choice != "if4"


def fast_if4(fmt: str) -> bool:
    """Whether the dec kernels decode the format's elements by table lookups (IF4: FP and INT blocks alike
    as sign x a per-scale-byte table of 8 bf16 magnitudes, from the IF4 fragment layout)."""
    return get_format(fmt).choice == "if4"


def fast_tab4(fmt: str) -> bool:
    """Whether the dec kernels decode the format's 4-bit codes by table lookups (sign x a per-scale-byte table
    of 8 bf16 magnitudes, from the sign-magnitude IF4 fragment layout): IF4 (FP and INT blocks alike) and
    NVINT4 (INT4 in [-7, 7], UE4M3 scales: its two's complement codes re-encoded)."""
    f = get_format(fmt)
    return fast_if4(fmt) or (f.element.name == "int4" and f.scale.name == "ue4m3" and f.choice is None)


def fast_int8(fmt: str) -> bool:
    """Whether the dec kernels decode the format's elements by integer ops and one bf16 FMA from sign-magnitude
    bytes (`layouts.int8_sign_magnitude`): MXINT8 (INT8 q / 64, E8M0 scales)."""
    f = get_format(fmt)
    return f.element.name == "int8" and f.scale.name == "e8m0"


def fast_fp6(fmt: str) -> bool:
    """Whether the dec kernels decode the format's elements by integer ops from the FP6 fragment layout
    (`layouts.fp6_bits`): FP6 (E2M3, E3M2) with E8M0 scales."""
    f = get_format(fmt)
    return f.element.name in ("e2m3", "e3m2") and f.scale.name == "e8m0"


def fast_fp8(fmt: str) -> bool:
    """Whether `dec1` decodes the format's elements by integer ops: FP8 (E4M3, E5M2) with E8M0 scales.
    Not special-cased there: E4M3's NaN code and E5M2's Inf / NaN codes (numerics gives a block holding
    a NaN or Inf a NaN scale, which is)."""
    f = get_format(fmt)
    return f.element.name in ("e4m3", "e5m2") and f.scale.name == "e8m0"


# The E2M1 bit layout that Fragments.of gives and the library's kernels decode (layouts.E2M1_BITS).
E2M1_LAYOUT = 2


@dataclass(frozen=True)
class Fragments:
    """The decode kernels' weight layout: 16 x 64 tiles in the order of the A fragments of mma.sync
    (and of wgmma with A in registers), scales per tile (`layouts.frag_codes`); `e2m1`: each MMA step's
    eight codes bit-scattered into the positions the integer decode reads, 2 (E2M1_LAYOUT) the current
    layout (`layouts.E2M1_BITS`), 1 (or True) the first (`layouts.E2M1_BITS_V1`, which earlier artifacts'
    kernels read), 0 (or False) none; `if4`:
    IF4's or NVINT4's codes sign-magnitude in every block (`layouts.if4_sign_magnitude`), bit-scattered into the
    positions its table decode reads (`layouts.IF4_BITS`); `fp6`: FP6 codes in the positions its integer
    decode reads (`layouts.fp6_bits`, by the element's mantissa bits); `int8`: MXINT8's codes sign-magnitude
    (`layouts.int8_sign_magnitude`), bytes where the plain layout has them; `group`: that many row tiles
    side by side per K tile (rdec: a CTA's 128 rows in one copy)."""

    e2m1: int = 0
    group: int = 1
    if4: bool = False
    fp6: bool = False
    int8: bool = False

    @classmethod
    def of(cls, fmt: str, group: int = 1) -> "Fragments":
        """The layout a decode kernel reads `fmt` in: each integer or table decode the format has."""
        return cls(e2m1=E2M1_LAYOUT if fast_e2m1(fmt) else 0, group=group, if4=fast_tab4(fmt), fp6=fast_fp6(fmt),
                   int8=fast_int8(fmt))

    @property
    def suffix(self) -> str:
        return ("f16x64" + ("", "e", "e2")[int(self.e2m1)] + ("i" if self.if4 else "") + ("s" if self.fp6 else "")
                + ("m" if self.int8 else "")
                + (f"g{self.group}" if self.group > 1 else ""))

    def sizes(self, fmt: str, rows: int, k: int) -> tuple[int, int]:
        from . import layouts

        f = get_format(fmt)
        tiles = -(-rows // (layouts.FRAG_R * self.group)) * self.group * -(-k // layouts.FRAG_K)
        return tiles * 32 * 32 * f.element.bits // 8, tiles * layouts.FRAG_R * (layouts.FRAG_K // f.block_size)

    def pack(self, codes, scales, fmt: str, k: int):
        from . import layouts

        f = get_format(fmt)
        if self.if4:
            codes = layouts.if4_sign_magnitude(codes, scales, f.block_size, all_int=not fast_if4(fmt))
        if self.int8:
            codes = layouts.int8_sign_magnitude(codes)
        scatter = ("if4" if self.if4 else f"fp6m{f.element.mbits}" if self.fp6
                   else {0: False, 1: "e2m1v1", 2: "e2m1"}[int(self.e2m1)])
        return (layouts.frag_codes(codes, f.element.bits, scatter=scatter, group=self.group),
                layouts.frag_scales(scales, k, f.block_size, one_code(f), group=self.group))


WeightLayout = Tiles | Fragments


def layout_recipe(layout: WeightLayout) -> dict:
    """A weight layout as JSON (a WeightStore recipe's), and back with `layout_of`."""
    if isinstance(layout, Tiles):
        return {"tiles": layout.ue}
    e2m1 = int(layout.e2m1)  # the first E2M1 layout's recipe as earlier artifacts wrote it: true
    return {"fragments": bool(e2m1) if e2m1 < 2 else e2m1,
            **({"group": layout.group} if layout.group > 1 else {}), **({"if4": True} if layout.if4 else {}),
            **({"fp6": True} if layout.fp6 else {}), **({"int8": True} if layout.int8 else {})}


def layout_of(recipe: dict) -> WeightLayout:
    if "tiles" in recipe:
        return Tiles(recipe["tiles"])
    e2m1 = int(recipe["fragments"])
    if e2m1 not in (0, 1, E2M1_LAYOUT):
        from mxc.errors import MxcError

        raise MxcError(f"weights packed in E2M1 fragment layout {e2m1}, which this mxc does not know (it packs "
                         f"layouts 1 and {E2M1_LAYOUT}): compile the model again with this mxc, or use the mxc "
                         "that compiled it")
    return Fragments(e2m1, recipe.get("group", 1), recipe.get("if4", False), recipe.get("fp6", False),
                     recipe.get("int8", False))
