"""The kernel kinds: one class each, owning its name, bindings, constants, grid, shared memory and the
C++ call its `extern "C"` wrapper makes.

Hopper's (sm_90a, `mxc_sm90*.cuh`): `Dec` (weight-only, M <= 16: weights in fragment tiles decoded in
registers to bf16, mma.sync, r row tiles per CTA sharing the activations' loads; at M = 1 the `dec1` kernel: x
staged as bf16 per warp, a ring of tiles in flight, one wave of CTAs with equal shares of the row tiles),
`Dec1B` (M = 1 where K <= 16384, `use_dec1b`: dec1's decode with the weights moved by bulk copies into a ring
of shared-memory stages), `DecSplit` [+ `DSum`] (weight-only, 2 <= M <= 16, large layers: dec's tiles with K
split across CTAs that share their activations in shared memory, then the sum, in a thread-block cluster or by
dsum), `Gemv` (weight-only, M <= 16, f32 FMA: cuda-sm100's decode kernel, plain CUDA), `TileA` /
`TileQ` + `RDec` [+ `DSum`] (weight-only from M = 17, and MXFP8 x MXFP8: the activations as bf16
tiles, the weights in fragment tiles decoded in registers by the consumer warps into wgmma's A operand, K
split across CTAs). The block-scaled skeleton's
(`mxc_bs.cuh`, sm_100a with the tcgen05 atom, sm_90a with its wgmma twin): `Amax` (the NV activations'
tensor scale), `BsQ` (activations to tiles of codes + 128x4 scales, or bf16 tiles), `BsMma` (codes x codes),
`BsDec` (bf16 x decoded weights).

Buffers are named alike across kinds, so a layer's kernels connect by name (`launches.py`): `x` the
layer's float32 activations, `a` / `a_scales` / `a_tensor_scale` the GEMM's activation operand as a
pre-kernel writes it, `w` / `w_scales` / `w_tensor_scale` / `bias` the layer's constants, `y` the
output. The grid is written once, over an `ops` object: Python ints here (`INT`), and MLIR `arith`
ops in lower-mxq-to-cuda, which builds each export's workgroup-count region from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from mxc.numerics.formats import get_format

from . import tcgen05 as tc
from .operands import (BS_TILE, INT, Fragments, Tiles, WeightLayout, fast_e2m1, fast_fp6, fast_fp8, fast_int8,
                       fast_tab4, pair_kind, tiled_sizes, unit_elements)

EPILOGUES = {"none": 0, "relu": 1, "gelu": 2, "silu": 3}
GEMV_MAX_M = 16  # decode shapes; larger M takes a GEMM kernel
GEMV_MT = (1, 4, 16)  # rows of x per pass of the gemv variants
DEC_MT = (1, 8, 16)  # rows of x per CTA of the dec variants (one n8 MMA tile, 1 or 8 rows used; two)
DEC_ROWS = 16  # weight rows of a dec fragment tile (the MMA's M)
DEC_R = (1, 2, 4)  # 16-row tiles per dec CTA (mt > 1): each load of x serves r of them
DEC_RING = 2  # K tiles of weights in flight per dec warp (mt > 1; 3 or 4 measured no faster on the H200)
DEC_MIN_CTAS = 200  # dec takes the most row tiles per CTA that still leave this many CTAs (2 per SM fit)
DEC1_SMS = 132  # dec1's largest grid is the CTAs an H100 / H200 SXM (132 SMs) holds at once
BS_STAGES = 3  # bulk-copy slots of the block-scaled skeleton (mxc_bs.cuh)
AMAX_CTAS = 128  # the amax kernel's CTAs: partial maxima its readers reduce (mxc_bs.cuh)
ARCHS = ("sm_90a", "sm_100a")
CTYPES = {"f32": "float", "bf16": "__nv_bfloat16", "i8": "uint8_t"}


class Binding(NamedTuple):
    """One buffer parameter: its name, whether the kernel writes it, its element type (CTYPES)."""

    name: str
    writes: bool
    dtype: str


@dataclass(frozen=True)
class Kernel:
    """One kernel variant. Subclasses set `kind` and implement `bindings`, `grid` and `call`."""

    kind: ClassVar[str] = ""
    arch: ClassVar[str] = "sm_90a"
    threads: ClassVar[int] = 256
    ctas_per_sm: ClassVar[int] = 1  # __launch_bounds__ minimum CTAs per SM: wgmma-style kernels take every register
    # What a layer's run-time numerics gain from this kernel beyond float32 summation order:
    # "bf16 activations" (runtime/compare.py sets its tolerance from it).
    rounding: ClassVar[str | None] = None

    @property
    def name(self) -> str:
        raise NotImplementedError

    def bindings(self) -> list[Binding]:
        """The buffers in parameter order; outputs last."""
        raise NotImplementedError

    def constants(self) -> list[str]:
        """The i32 constants after the buffers; `epi` is the epilogue's code (EPILOGUES)."""
        return ["M", "N", "K", "epi"]

    def outputs(self, m, n: int, k: int, ops=INT) -> dict[str, list]:
        """The shapes of the buffers it writes, for an [m, k] x [n, k]^T layer (`ops` as for `grid`: m may be
        an IR value)."""
        raise NotImplementedError

    def grid(self, m, n, k, ops=INT) -> tuple:
        """Workgroup counts for an [m, k] x [n, k]^T layer (ints, or IR values with lowering's ops)."""
        raise NotImplementedError

    @property
    def smem(self) -> int:
        """Dynamic shared memory bytes (the export's workgroup_local_memory)."""
        return 0

    def call(self) -> str:
        """The C++ statement of the wrapper's body."""
        raise NotImplementedError

    def weight_layout(self) -> WeightLayout | None:
        """How the kernel reads `w` and `w_scales`: None as stored, else the layout they are re-packed
        into at compile time (`operands.Tiles`, `operands.Fragments`)."""
        return None

    @property
    def path(self) -> str | None:
        """How a layer whose last kernel this is runs, in words (the manifest's `path`)."""
        return None

    @property
    def cluster_dims(self) -> tuple[int, int, int] | None:
        """Compile-time thread-block cluster dimensions (the wrapper's `__cluster_dims__`), None for none."""
        return None

    def to_dict(self) -> dict:
        """The variant as plain data (the `mxq.kernels` attribute, the manifest)."""
        return {"kind": self.kind, "name": self.name, **dataclasses.asdict(self)}

    @staticmethod
    def from_dict(d: dict) -> "Kernel":
        """The inverse of to_dict (the `name` key is checked, not needed)."""
        cls = KINDS.get(d.get("kind"))
        if cls is None:
            raise ValueError(f"unknown kernel kind {d.get('kind')!r} (kinds: {', '.join(KINDS)})")
        fields = {f.name for f in dataclasses.fields(cls)}
        k = cls(**{key: v for key, v in d.items() if key in fields})
        if d.get("name", k.name) != k.name:
            raise ValueError(f"kernel {d['name']!r} does not match its fields (they name {k.name!r})")
        return k


def _gemm_bindings(ins: list[str], tensor_scales: set[str]) -> list[Binding]:
    dtype = {n: "f32" if n in tensor_scales or n in ("x", "bias") else "i8" for n in ins}
    return [Binding(n, False, dtype[n]) for n in ins] + [Binding("y", True, "f32")]


def _weights(w_format: str, bias: bool) -> list[str]:
    ts = ["w_tensor_scale"] if get_format(w_format).tensor_scale else []
    return ["w", "w_scales", *ts] + (["bias"] if bias else [])


def _tiles(m, n, ops) -> tuple:
    return (ops.cdiv(n, BS_TILE), ops.cdiv(m, BS_TILE), 1)


# ---------------------------------------------------------------- Hopper (sm_90a)
def _fast8(w_format: str) -> bool:
    """FP8, FP6 and MXINT8 codes (E8M0 scales), which the dec kernels decode by integer ops and one bf16
    multiply or FMA (24 or 32 bytes per lane and fragment tile)."""
    return fast_fp8(w_format) or fast_fp6(w_format) or fast_int8(w_format)


def _fast4(w_format: str) -> bool:
    """4-bit codes the dec kernels decode by integer ops: plain E2M1 (bit tricks), IF4 and NVINT4 (table
    lookups)."""
    return fast_e2m1(w_format) or fast_tab4(w_format)


@dataclass(frozen=True)
class _Decode(Kernel):
    """What the decode-shape kernels (M <= 16) share: x and the layer's weights in, y out, a name and a
    C++ call with `mt` rows of x per pass or CTA."""

    w_format: str = ""
    bias: bool = False
    mt: int = 1
    arch: str = "sm_90a"

    @property
    def name(self) -> str:
        return f"mxc_{self.kind}_{self.w_format}_m{self.mt}" + ("_bias" if self.bias else "")

    def bindings(self) -> list[Binding]:
        return _gemm_bindings(["x", *_weights(self.w_format, self.bias)], {"w_tensor_scale"})

    def outputs(self, m, n, k, ops=INT):
        return {"y": [m, n]}

    def _call(self, template: str, fn: str = "") -> str:
        ts = "w_tensor_scale" if get_format(self.w_format).tensor_scale else "nullptr"
        args = ", ".join(a for a in (f"F_{self.w_format}", template, str(self.bias).lower()) if a)
        return (f"mxc::{fn or self.kind}<{args}>(x, w, w_scales, {ts}, "
                f"{'bias' if self.bias else 'nullptr'}, y, M, N, K, epi);")


@dataclass(frozen=True)
class Gemv(_Decode):
    """Weight-only at decode shapes (M <= 16): each warp decodes two weight rows in registers, f32 FMA."""

    kind = "gemv"
    ctas_per_sm = 2  # two CTAs of 128 registers: latency hidden by warps
    mt: int = 1  # rows of x per pass

    def grid(self, m, n, k, ops=INT):
        return (ops.cdiv(n, 2 * self.threads // 32), 1, 1)  # two columns per warp

    def call(self) -> str:
        return self._call(f"{self.mt}, 2")

    @property
    def path(self) -> str:
        return "decode: weights in registers, f32 FMA (M <= 16)"


@dataclass(frozen=True)
class Dec(_Decode):
    """Weight-only at decode shapes (M <= 16) on the tensor cores: each warp streams its share of K
    for r tiles of 16 weight rows (a two-deep ring), decodes them in registers to bf16 (integer ops
    for E2M1, FP8, FP6 and MXINT8, exact; table lookups for IF4 and NVINT4, IF4's INT blocks rounded as the
    float decode rounds them), multiplies by bf16 activations with mma.sync m16n8k16, f32 accumulators;
    each load of the activations serves the r tiles; the CTA's warps sum in shared memory (a fixed
    order), the NV tensor scale and the epilogue after. mt = 1 is `dec1` (M = 1, the
    decode step): x staged once per warp as bf16 in shared memory, a ring of weight tiles in flight
    per warp, a grid no larger than the GPU holds at once whose CTAs take equal shares of the 16-row
    tiles, FP8 elements decoded by integer ops too (exact); it also runs M > 1, one row of x per CTA
    row (the GPU tests' x = I)."""

    kind = "dec"
    rounding = "bf16 activations"
    mt: int = 8  # rows of x per CTA (DEC_MT)
    r: int = 1  # 16-row weight tiles per CTA, mt > 1 (DEC_R; `dec_rows` picks it from N)

    @property
    def name(self) -> str:
        return super().name + (f"_r{self.r}" if self.r > 1 else "")

    @property
    def ctas_per_sm(self) -> int:
        # one n8 tile: 4 CTAs of 64 registers (32 warps per SM keep the weight stream in flight; MXINT8
        # at 64 registers without spills, ptxas, not measured); two: 2 CTAs of 128 registers (at 64 the
        # activations of both tiles spill)
        # dec1 (mt = 1): E2M1, IF4 and NVINT4 16 warps per CTA, 2 CTAs of 64 registers (IF4 and NVINT4 as
        # E2M1: the same bytes per weight, an integer decode; NVINT4's set from ptxas -v, 64 registers, no
        # spills, not measured); FP8 8 warps, 4 CTAs of 64 (at 16 warps one register spills); FP6 and
        # MXINT8 (integer decodes) 8 warps, 3 CTAs of 80 (at 64 FP6 spills 20 bytes, MXINT8 spills: its
        # float-decode fallback; ptxas, not measured)
        # r > 1 (r row tiles per CTA, dec_max_rows): 2 CTAs of 128 registers
        if self.mt == 1:
            return 2 if _fast4(self.w_format) else 4 if fast_fp8(self.w_format) else 3
        fast = _fast4(self.w_format) or _fast8(self.w_format)
        if self.r == 1:
            return (4 if fast else 3) if self.mt == 8 else 2
        return 2

    @property
    def threads(self) -> int:  # dec1 of E2M1, IF4, NVINT4 codes: 16 warps splitting K (at N = 4096, 32 warps per SM)
        return 512 if self.mt == 1 and _fast4(self.w_format) else 256

    def grid(self, m, n, k, ops=INT):
        if self.mt == 1:  # dec1: at most the CTAs the GPU holds at once, each ceil(row tiles / grid) row tiles
            tiles = ops.cdiv(n, DEC_ROWS)
            return (ops.cdiv(tiles, ops.cdiv(tiles, DEC1_SMS * self.ctas_per_sm)), m, 1)
        tiles = ops.cdiv(n, DEC_ROWS)
        return (tiles if self.r == 1 else ops.cdiv(tiles, self.r), ops.cdiv(m, self.mt), 1)

    def weight_layout(self):
        return Fragments.of(self.w_format)

    def call(self) -> str:
        return (self._call(str(self.threads // 32), "dec1") if self.mt == 1
                else self._call(f"{self.mt}, {self.r}, {DEC_RING}"))

    @property
    def path(self) -> str:
        return "decode: weights to bf16 in registers, mma.sync (M <= 16)"


DEC1B_KMAX, DEC1B_RPC = 16384, 8  # dec1b's largest K (x staged whole) and row tiles per CTA (mxc_sm90_prefill.cuh)
# dec1b_kernel's (warps, tpw, stages, cpsm), every format: two K tiles per warp and stage, 4 stages
# (`bench_cuda dec1b` on an H100: the fastest of DEC1B_VARIANTS, or tied, for the 5 formats it ran; Dec1B)
DEC1B_SHAPE = (16, 2, 4, 1)
DEC1B_DIAGS = (2, 3)  # Dec1B's measurement variants (`bench_cuda ring`); DecSplit's: DECS_DIAGS


def _alternatives(values: tuple) -> str:
    """(2, 3, 4) -> '2, 3 or 4': the measurement variants in an error message."""
    return ", ".join(map(str, values[:-1])) + f" or {values[-1]}"


@dataclass(frozen=True)
class Dec1B(_Decode):
    """dec1 (M = 1) with the weights moved by the TMA engine: one producer thread streams the CTA's row
    tiles (one contiguous run of codes and one of scales) through a ring of `stages` stages of up to
    warps x tpw K tiles of one row tile by bulk copies, `warps` consumer warps decode them in registers as
    dec1 does (mma.sync m16n8k16 against x in shared memory as bf16, each warp staging the K tiles of x it
    reads), keep one row tile's sums at a time and leave them in shared memory, summed in warp order at the
    end. K <= DEC1B_KMAX; at most DEC1B_RPC row tiles per CTA, so the grid is one wave (`cpsm` CTAs per SM)
    where that holds them, more waves past it.

    cuda-sm90 selects it at M = 1 where `use_dec1b` says (K <= DEC1B_KMAX), for every weight format
    (`bench_cuda dec1b` on an H100, 2026-12-05, since each warp stages only its own tiles of x: the default
    shape, two K tiles per warp and stage, ahead of dec1 for NVFP4, MXFP4, IF4, MXFP6 and MXFP8 at 8192^2,
    14336 x 4096 and 4096 x 14336 but MXFP8 at 14336 x 4096, level: 24.9 vs 24.8 us; MXFP4, which dec1 had
    been ahead of, by 2-9 %; README "CUDA target").
    Its first version measured level with dec1 under `ncu` on the H200 (NVFP4 14336 x 4096: 20.7 vs 20.3 us
    at the profiler's clocks, both bound by instruction issue, DRAM at 34 %); this one has ~25 % fewer
    instructions per K tile (stages of one row tile, offsets computed once). `bench_cuda ring` (H100,
    2026-12-06) times it against its measurement variants (`diag`): the ring alone streams at 97-98 % of the
    bandwidth after a fixed ~3.5 us per call; the consumers add 0.8-1.6 us at NVFP4, half of it the decode."""

    kind = "dec1b"
    rounding = "bf16 activations"
    warps: int = DEC1B_SHAPE[0]
    tpw: int = DEC1B_SHAPE[1]
    stages: int = DEC1B_SHAPE[2]
    cpsm: int = DEC1B_SHAPE[3]
    diag: int = 0  # measurement variants (wrong outputs; `bench_cuda ring`): 2 no decode, 3 the ring alone

    def __post_init__(self):
        if not 8 <= self.warps <= 31 or self.tpw < 1 or self.stages < 2 or self.cpsm < 1:
            raise ValueError(f"dec1b: 8 to 31 consumer warps (256 threads fill the decode's table; with the producer "
                             f"warp a CTA holds at most 1024 threads), tpw >= 1, stages >= 2, cpsm >= 1; got warps "
                             f"{self.warps}, tpw {self.tpw}, stages {self.stages}, cpsm {self.cpsm}")
        if self.diag not in (0, *DEC1B_DIAGS):
            raise ValueError(f"dec1b: diag 0 (the kernel), {_alternatives(DEC1B_DIAGS)} (its measurement variants); "
                             f"got {self.diag}")

    @property
    def name(self) -> str:
        return (f"mxc_dec1b_{self.w_format}_w{self.warps}t{self.tpw}s{self.stages}c{self.cpsm}"
                + (f"_diag{self.diag}" if self.diag else "")
                + ("_bias" if self.bias else ""))

    @property
    def threads(self) -> int:
        return 32 * (self.warps + 1)

    @property
    def ctas_per_sm(self) -> int:
        return self.cpsm

    @property
    def smem(self) -> int:
        stage = self.warps * self.tpw * sum(self.weight_layout().sizes(self.w_format, 16, 64))  # fragment tiles
        return self.stages * stage + 2 * DEC1B_KMAX + DEC1B_RPC * self.warps * 16 * 4 + 16 * self.stages

    def grid(self, m, n, k, ops=INT):
        # one wave of ceil(tiles / grid) row tiles per CTA (as dec1) up to DEC1B_RPC; more CTAs past it
        tiles = ops.cdiv(n, DEC_ROWS)
        return (ops.max(ops.cdiv(tiles, ops.cdiv(tiles, DEC1_SMS * self.cpsm)), ops.cdiv(tiles, DEC1B_RPC)), m, 1)

    def weight_layout(self):
        return Fragments.of(self.w_format)

    def call(self) -> str:
        ts = "w_tensor_scale" if get_format(self.w_format).tensor_scale else "nullptr"
        return (f"mxc::dec1b<F_{self.w_format}, {self.warps}, {self.tpw}, {self.stages}, {str(self.bias).lower()}, "
                f"{self.diag}>(x, w, w_scales, {ts}, {'bias' if self.bias else 'nullptr'}, y, M, N, K, epi);")

    @property
    def path(self) -> str:
        return "decode: weights by bulk copies into shared memory, decoded to bf16 in registers, mma.sync (M = 1)"


def dec1b_kernel(w_format: str, bias: bool = False) -> Dec1B:
    """dec1b's variant for a weight format (DEC1B_SHAPE: warps, K tiles per warp and stage, stages, CTAs per SM)."""
    warps, tpw, stages, cpsm = DEC1B_SHAPE
    return Dec1B(w_format=w_format, bias=bias, warps=warps, tpw=tpw, stages=stages, cpsm=cpsm)


# (warps, tpw, stages, cpsm) that `bench_cuda dec1b` compares: the selected shape and 8 stages. (The other shapes
# compared until 2026-12-06, 8 to 28 warps and 1 to 4 tiles per warp and stage, were each slower than or level
# with the selected one on the H100 and the H200; the producer's L2 prefetch ahead of the ring, 1 to 16 stages,
# was slower still: docs/cuda-sm90-log.md.)
DEC1B_VARIANTS = ((16, 2, 4, 1), (16, 2, 8, 1))
SM90_SMEM_PER_SM = 233472  # shared memory of an H100 / H200 SM (228 KB), 1 KB of it reserved per CTA


def use_dec1b(k: int) -> bool:
    """Whether cuda-sm90 runs a weight-only M = 1 layer of reduction size k (0: unknown) with dec1b rather than
    dec1 (which stages x in chunks, so takes any K)."""
    return 0 < k <= DEC1B_KMAX


def dec1b_variants(w_format: str, bias: bool = False) -> list[Dec1B]:
    """The variants of DEC1B_VARIANTS whose shared memory (the decode's table included) fits their CTAs per SM,
    the stages cut to fit (at least 3)."""
    out = []
    for warps, tpw, stages, cpsm in DEC1B_VARIANTS:
        while stages > 2:
            k = Dec1B(w_format=w_format, bias=bias, warps=warps, tpw=tpw, stages=stages, cpsm=cpsm)
            if cpsm * (k.smem + 4096 + 1024) <= SM90_SMEM_PER_SM:
                out.append(k)
                break
            stages -= 1
    return out


def dec_max_rows(w_format: str, mt: int) -> int:
    """The most row tiles per dec CTA that run at 2 CTAs of 128 registers per SM: for the integer
    decodes, 4 (one n8 tile of x) or 2 (two; E2M1), 2 (FP8 and MXINT8 codes, 32 bytes per lane and tile;
    FP6, 24; IF4 and NVINT4 (table decode), whose tables take 8 registers per row tile: 4 row tiles spill at
    128). Every weight format has an integer decode now; the float decode (1 row tile: it needed more
    registers; measured on the H200, `bench_cuda dec-rows`: 2 or 4 row tiles at one CTA per SM ran slower
    than 1 at two) is kept for formats without one. IF4's, NVINT4's, FP6's and MXINT8's choices are not
    measured: FP6 at mt = 16, r = 2 takes 112 registers, MXINT8 123, no spills."""
    if fast_e2m1(w_format):
        return 4 if mt == 8 else 2
    return 2 if _fast8(w_format) or fast_tab4(w_format) else 1


def dec_rows(n: int, w_format: str, mt: int) -> int:
    """Row tiles per dec CTA (mt > 1) for N = n: the most (up to dec_max_rows) that leaves DEC_MIN_CTAS
    CTAs; the activations are loaded once per CTA and K tile, so more rows per CTA means fewer loads."""
    tiles = -(-n // DEC_ROWS)
    cap = dec_max_rows(w_format, mt)
    return max((r for r in DEC_R if r <= cap and -(-tiles // r) >= DEC_MIN_CTAS), default=1)


# decs, as measured on the H200 (README, "M = 2-16"): a ring of 4 K tiles of weights per warp (8: no faster),
# 1 row tile per warp; the CTA holds its K range of the activations, at most 48 K tiles (2 CTAs per SM) or 24
# (3 CTAs per SM: 24 warps). decs_splits prefers a split that fills one wave with more CTAs: 3 CTAs per SM at
# about one wave ran 4-10 % faster than 2 (NVFP4 M = 16: 8192^2 s = 6 20.7 vs 21.5 us at s = 4; 14336 x 4096
# s = 3 19.9 vs 21.5; 4096 x 14336 s = 12 18.6 vs 19.5); past one wave slower (s = 8 at 8192^2: 24.3 us)
DECS_KT = 48  # K tiles (of 64) of activations a decs CTA holds in shared memory (MT x 48 x 144 bytes): 2 per SM
DECS_KT3 = 24  # ... when its K range fits this many: 3 CTAs per SM
DECS_ROW = 64 * 2 + 16  # bytes per row of x per K tile there (a 16-byte pad: no bank conflicts)
DECS_RING = 4  # K tiles of weights in flight per warp
DECS_SPLITS = (1, 2, 3, 4, 6, 8, 12, 16)
DECS_MIN_CTAS = 200  # the first choice: the fewest splits giving this many CTAs
DECS_MIN_TILES = 12  # a one-wave split takes at least this many K tiles per CTA (4096^2, M = 16: s = 12 of 6
# tiles 9.6 us vs s = 8 at 2 CTAs per SM 9.0)
DECS_WARPS8 = 8  # warps (16-row weight tiles) of a decs CTA: 3 CTAs per SM where 24 K tiles are held
DECS_WARPS = 24  # ... of a wide decs CTA, one per SM (the same 24 warps): one staging of x for 24 row tiles
DECS_WIDE_MIN_CTAS = 108  # wide decs where a one-wave split keeps at least this many of the 132 SMs busy
# (measured on an H100, 2026-12-06, M = 16, NVFP4 / IF4 / MXFP8 against 8 warps at 3 CTAs per SM, same splits:
# 1.0-1.7 us faster at 8192^2 (s = 6, 132 CTAs), 14336 x 4096 (s = 3, 114) and 4096 x 14336 (s = 12, 132);
# 12 warps at 2 CTAs per SM in between; docs/cuda-sm90-log.md)
DECS_PATH = "decode, K split across CTAs: weights to bf16 in registers, mma.sync (M <= 16)"
# decs sums its K splits in a thread-block cluster up to this many splits, past it through dsum: measured on the
# H200 (`bench_cuda dec-rows`, M = 4 and 16), 1 and 2 splits ran 1-5 % faster than decs + dsum (32768 x 2048,
# 14336 and 16384 x 4096; equal at 28672 x 4096); clusters of 4 and 8 at 2 CTAs of 110 KB per SM do not all fit
# at once (ncu: 62 active clusters of 4, 8192^2 needs 64), and the second wave cost 1.5-1.7x; on an H100 on
# 2026-12-06 (`bench_cuda ring`, decs_cluster_twin) clusters of 6 and 8 ran 1.4-1.6x decs + dsum's time, 3 level
DECS_CLUSTER_MAX = 2
DECS_CLUSTER_LIMIT = 8  # the largest cluster a plain launch gets (the portable size): what decs can be built for
DECS_MIN_NK = 4096 * 4096  # smaller layers keep the one-kernel dec (decs measured from 4096 x 4096 up)
DECS_DIAGS = (2, 3, 4)  # DecSplit's measurement variants (`bench_cuda ring`)


def decs_splits(n: int, k: int) -> tuple[int, int] | None:
    """(K splits, K tiles of activations a CTA holds) of the decs kernel for an N x K layer; None when K is too
    long for shared memory. First the fewest splits that give DECS_MIN_CTAS CTAs (128 weight rows each) holding
    48 K tiles; then, where a split of at least DECS_MIN_TILES K tiles per CTA fits more CTAs into one wave (3
    per SM where its range fits 24 tiles, else 2), the one that fits the most."""
    groups, kt = -(-n // (DEC_ROWS * 8)), -(-k // 64)
    fits = [s for s in DECS_SPLITS if -(-kt // s) <= DECS_KT]
    if not fits:
        return None
    s0 = next((s for s in fits if groups * s >= DECS_MIN_CTAS), fits[-1])
    best = (groups * s0, s0, DECS_KT)
    for s in fits:
        ct = -(-kt // s)
        if ct < DECS_MIN_TILES:
            continue
        held, per_sm = (DECS_KT3, 3) if ct <= DECS_KT3 else (DECS_KT, 2)
        if best[0] < groups * s <= DEC1_SMS * per_sm:
            best = (groups * s, s, held)
    return best[1:]


def decs_wide_split(n: int, k: int) -> int | None:
    """K splits of a wide decs (DECS_WARPS warps, one CTA per SM, DECS_KT3 K tiles held) for an N x K layer: the
    one-wave split (at most DEC1_SMS CTAs) with the most CTAs, each range DECS_MIN_TILES to DECS_KT3 K tiles;
    None where it would leave more than DEC1_SMS - DECS_WIDE_MIN_CTAS SMs idle."""
    groups, kt = -(-n // (DEC_ROWS * DECS_WARPS)), -(-k // 64)
    cands = [s for s in DECS_SPLITS if s > DECS_CLUSTER_MAX and DECS_MIN_TILES <= -(-kt // s) <= DECS_KT3
             and groups * s <= DEC1_SMS]
    s = max(cands, key=lambda s: groups * s, default=None)
    return s if s is not None and groups * s >= DECS_WIDE_MIN_CTAS else None


def use_decs(m: int, n: int, k: int, w_format: str) -> tuple[int, int, int] | None:
    """(K splits, K tiles held, warps per CTA) when cuda-sm90 runs a weight-only layer with decs (else None:
    dec): 2 <= M <= 16, N x K >= DECS_MIN_NK, K short enough; not at M <= 8 where dec takes 4 row tiles per CTA
    (E2M1 at N >= 12800: dec measured 1.89x cuBLAS bf16 vs 1.74x at 14336 x 4096, M = 4). At M > 8 the wide
    CTA where decs_wide_split finds a split (measured at M = 16 only), else decs_splits' 8 warps."""
    if not 2 <= m <= 16 or n * k < DECS_MIN_NK:
        return None
    if m <= 8 and dec_rows(n, w_format, 8) == 4:
        return None
    wide = decs_wide_split(n, k) if m > 8 else None
    if wide is not None:
        return wide, DECS_KT3, DECS_WARPS
    split = decs_splits(n, k)
    return None if split is None else (*split, DECS_WARPS8)


@dataclass(frozen=True)
class DecSplit(_Decode):
    """Weight-only at decode shapes (2 <= M <= 16) with K split across CTAs: a CTA's `warps` warps (8, or
    DECS_WARPS: one CTA per SM) take as many different 16-row weight tiles (dec's fragment tiles and decodes)
    over one of s K ranges, whose activations the CTA converts once to bf16 into shared memory and all its
    warps read. With `cluster`
    the s CTAs of a row group are one thread-block cluster: each keeps its partial sums in shared memory
    and, after a cluster barrier, sums 1/s of the group's rows over the s CTAs' partials (distributed
    shared memory) in split order, adds the bias and writes y (cuda-sm90 selects it up to DECS_CLUSTER_MAX splits;
    it builds up to DECS_CLUSTER_LIMIT). Without, each warp
    writes its rows' partial sums to the workspace `ws` [s, M, N], which `dsum` reduces in the same order
    (the bias is dsum's)."""

    kind = "decs"
    rounding = "bf16 activations"
    mt: int = 16
    s: int = 4  # K splits (grid z)
    cluster: bool = False
    kt: int = DECS_KT  # K tiles (of 64) of activations a CTA holds: its shared memory, so its CTAs per SM
    ring: int = DECS_RING  # K tiles of weights in flight per warp (registers)
    diag: int = 0  # measurement variants (wrong outputs; `bench_cuda ring`): 2 no decode, 3 the weights' loads alone,
    # 4 no activations staged (the kernel's code, skipped at run time)
    warps: int = DECS_WARPS8  # 16-row weight tiles per CTA, one per warp (DECS_WARPS: the wide CTA, one per SM)

    @property
    def threads(self) -> int:
        return 32 * self.warps

    @property
    def ctas_per_sm(self) -> int:  # 48 K tiles held: 2 (108 KB of activations at mt = 16); 24: 3; DECS_WARPS per SM
        return min(3 if self.kt <= DECS_KT3 else 2, DECS_WARPS // self.warps)

    def __post_init__(self):
        if self.cluster and self.s > DECS_CLUSTER_LIMIT:
            raise ValueError(f"decs sums at most {DECS_CLUSTER_LIMIT} K splits in a cluster (the portable cluster "
                             f"size), got s = {self.s}")
        if self.bias and not self.cluster:
            raise ValueError("decs: without a cluster the bias is dsum's")
        if self.diag not in (0, *DECS_DIAGS):
            raise ValueError(f"decs: diag 0 (the kernel), {_alternatives(DECS_DIAGS)} (its measurement variants); "
                             f"got {self.diag}")
        if self.ring < 2:
            raise ValueError(f"decs: at least 2 K tiles of weights in flight per warp; got ring {self.ring}")
        if self.warps not in (DECS_WARPS8, DECS_WARPS) or (self.cluster and self.warps != DECS_WARPS8):
            raise ValueError(f"decs: {DECS_WARPS8} or {DECS_WARPS} warps per CTA (a cluster: {DECS_WARPS8}); "
                             f"got {self.warps}"
                             + (" with a cluster" if self.cluster else ""))

    @property
    def name(self) -> str:
        return (f"mxc_decs_{self.w_format}_m{self.mt}_s{self.s}" + (f"_k{self.kt}" if self.kt != DECS_KT else "")
                + ("_c" if self.cluster else "") + (f"_u{self.ring}" if self.ring != DECS_RING else "")
                + (f"_w{self.warps}" if self.warps != DECS_WARPS8 else "") + (f"_diag{self.diag}" if self.diag else "")
                + ("_bias" if self.bias else ""))

    def bindings(self) -> list[Binding]:
        if self.cluster:
            return super().bindings()
        ins = ["x", *_weights(self.w_format, False)]
        return [Binding(n, False, "f32" if n in ("x", "w_tensor_scale") else "i8") for n in ins] + [
            Binding("ws", True, "f32")]

    def constants(self) -> list[str]:
        return ["M", "N", "K", "epi"] if self.cluster else ["M", "N", "K"]

    def outputs(self, m, n, k, ops=INT):
        return {"y": [m, n]} if self.cluster else {"ws": [self.s, m, n]}

    def grid(self, m, n, k, ops=INT):
        return (ops.cdiv(n, DEC_ROWS * self.warps), ops.cdiv(m, self.mt), self.s)

    @property
    def cluster_dims(self):
        return (1, 1, self.s) if self.cluster else None

    @property
    def smem(self) -> int:
        return self.kt * self.mt * DECS_ROW

    def weight_layout(self):
        return Fragments.of(self.w_format)

    def call(self) -> str:
        ts = "w_tensor_scale" if get_format(self.w_format).tensor_scale else "nullptr"
        tpl = f"F_{self.w_format}, {self.mt}, 1, {self.s}, {self.ring}, {self.kt}"
        # the template's trailing DIAG and WARPS, each given only where it or the one after is not the default
        tail = (self.diag, self.warps) if self.warps != DECS_WARPS8 else (self.diag,) if self.diag else ()
        diag = "".join(f", {v}" for v in tail)
        if self.cluster:
            return (f"mxc::decs<{tpl}, true, {str(self.bias).lower()}{diag}>(x, w, w_scales, {ts}, "
                    f"{'bias' if self.bias else 'nullptr'}, y, M, N, K, epi);")
        tpl += (", false, false" + diag) if diag else ""
        return f"mxc::decs<{tpl}>(x, w, w_scales, {ts}, nullptr, ws, M, N, K, 0);"

    @property
    def path(self) -> str | None:
        return DECS_PATH + ", the K splits summed in a thread-block cluster" if self.cluster else None


@dataclass(frozen=True)
class DSum(Kernel):
    """decs's second kernel: y = epilogue(the s partial sums in order + bias)."""

    kind = "dsum"
    ctas_per_sm = 4
    s: int = 4
    bias: bool = False

    @property
    def name(self) -> str:
        return f"mxc_dsum_s{self.s}" + ("_bias" if self.bias else "")

    def bindings(self) -> list[Binding]:
        return [Binding("ws", False, "f32")] + ([Binding("bias", False, "f32")] if self.bias else []) + [
            Binding("y", True, "f32")]

    def constants(self) -> list[str]:
        return ["M", "N", "epi"]

    def outputs(self, m, n, k, ops=INT):
        return {"y": [m, n]}

    def grid(self, m, n, k, ops=INT):
        return (ops.cdiv(ops.mul(m, n), self.threads), 1, 1)

    def call(self) -> str:
        return f"mxc::dsum<{self.s}, {str(self.bias).lower()}>(ws, {'bias' if self.bias else 'nullptr'}, y, M, N, epi);"

    @property
    def path(self) -> str:
        return DECS_PATH


def decs_kernels(w_format: str, mt: int, s: int, kt: int, warps: int = DECS_WARPS8,
                 bias: bool = False) -> list[Kernel]:
    """A decs layer's kernels for a split from use_decs (or decs_splits): one cluster launch up to
    DECS_CLUSTER_MAX splits, else decs + dsum."""
    if s <= DECS_CLUSTER_MAX:
        return [DecSplit(w_format=w_format, mt=mt, s=s, kt=kt, cluster=True, bias=bias)]
    return [DecSplit(w_format=w_format, mt=mt, s=s, kt=kt, warps=warps), DSum(s=s, bias=bias)]


RING_SHAPES = ((8192, 8192), (14336, 4096), (4096, 14336))  # (N, K) of `bench_cuda ring`: the M = 1 and 16 aims'
RING_FORMATS = ("nvfp4", "mxfp8")  # its formats (their bytes per weight differ by 1.83x)


def decs_cluster_twin(kd: DecSplit, k: int) -> DecSplit | None:
    """decs + dsum's kernel `kd` (reduction size k) summing its K splits in a thread-block cluster instead of dsum:
    at most DECS_CLUSTER_LIMIT splits (fewer CTAs, each with a longer K range), the K tiles of activations held
    the fewest that fit it; None where kd already sums in a cluster or a K range would not fit."""
    if kd.cluster:
        return None
    s = min(kd.s, DECS_CLUSTER_LIMIT)
    ct = -(-(-(-k // 64)) // s)
    if ct > DECS_KT:
        return None
    return dataclasses.replace(kd, s=s, kt=DECS_KT3 if ct <= DECS_KT3 else DECS_KT, cluster=True, warps=DECS_WARPS8)


DECS_RING_TRY = (6,)  # a deeper register ring of decs that `bench_cuda ring` compares (4-bit weights: MXFP8's
# ring of 6, or 4-bit's of 8, spills registers at 3 CTAs per SM)


def ring_variants() -> list[Kernel]:
    """The variants `bench_cuda ring` times, in the GPU library: the measurement variants (diag 2: no decode;
    3: the weights' stream alone; decs's 4: no activations staged) of dec1b for RING_FORMATS and of the decs
    kernels cuda-sm90 selects at M = 16 for RING_SHAPES; those decs kernels summing their K splits in a cluster
    instead of dsum (up to DECS_CLUSTER_LIMIT splits); and (4-bit weights) with DECS_RING_TRY K tiles in flight per
    warp."""
    out: list[Kernel] = [dataclasses.replace(dec1b_kernel(f), diag=d) for f in RING_FORMATS for d in DEC1B_DIAGS]
    for f in RING_FORMATS:
        for n, k in RING_SHAPES:
            split = use_decs(16, n, k, f)
            if split is not None:
                kd = next(kk for kk in decs_kernels(f, 16, *split) if isinstance(kk, DecSplit))
                out += [dataclasses.replace(kd, diag=d) for d in DECS_DIAGS]
                twin = decs_cluster_twin(kd, k)
                if twin is not None:
                    out += [twin, dataclasses.replace(twin, bias=True)]
                if get_format(f).element.bits == 4:
                    out += [dataclasses.replace(kd, ring=u) for u in DECS_RING_TRY]
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------- the activations' tiles (mxc_sm90_prefill.cuh)
# (The prefill path, tilea + wdec + hgemm, was removed on 2026-12-06: rdec at one K split measured faster at
# M = 2048 and 4096 in 29 of 30 cells on an H100 and in all 6 on an H200, `bench_cuda rdec`; the kernel log.)
PF_M, PF_K = 128, 64  # tilea's / tileq's rows per tile by default, and K per tile (rdec's K tile)


def _pf_tiled(rows, r: int, k: int, ops=INT) -> list:
    """The shape of an operand written as bf16 tiles of r rows x PF_K: rows and K padded to the tile."""
    return [ops.mul(ops.cdiv(rows, r), r), -(-k // PF_K) * PF_K]


def _pf_grid(rows, r: int, k, per: int, threads: int, ops) -> tuple:
    """The grid of tilea / tileq: one thread per `per` values of the ceil(rows / r) x ceil(K / PF_K) tiles."""
    items = ops.mul(ops.mul(ops.cdiv(rows, r), ops.cdiv(k, PF_K)), r * PF_K // per)
    return (ops.cdiv(items, threads), 1, 1)


@dataclass(frozen=True)
class TileA(Kernel):
    """The activations as bf16 tiles: x f32 -> bf16 (RNE) tiles of `rows` rows x PF_K, zero-padded; `perm`:
    K permuted inside each tile as the fragment tiles permute it (rdec's operand)."""

    kind = "tilea"
    ctas_per_sm = 2
    rounding = "bf16 activations"
    rows: int = PF_M
    perm: bool = False

    @property
    def name(self):
        return "mxc_tilea" + (f"_r{self.rows}" if self.rows != PF_M else "") + ("p" if self.perm else "")

    def bindings(self):
        return [Binding("x", False, "f32"), Binding("a", True, "bf16")]

    def constants(self):
        return ["M", "K"]

    def outputs(self, m, n, k, ops=INT):
        return {"a": _pf_tiled(m, self.rows, k, ops)}

    def grid(self, m, n, k, ops=INT):  # one thread per 8 values
        return _pf_grid(m, self.rows, k, 8, self.threads, ops)

    def call(self):
        return f"mxc::tilea<{self.rows}, {str(self.perm).lower()}>(x, a, M, K);"


@dataclass(frozen=True)
class TileQ(TileA):
    """MX activations for the bf16 GEMMs: x f32 -> quantized to `a_format` (codes and E8M0 scales bit for
    bit as numerics chooses them with the default options) -> held dequantized as tilea's bf16 tiles (exact
    but below bf16's subnormal range), `rows` x PF_K, `perm` as tilea."""

    kind = "tileq"
    rounding = None
    a_format: str = ""

    @property
    def name(self):
        return f"mxc_tileq_{self.a_format}_r{self.rows}" + ("p" if self.perm else "")

    def grid(self, m, n, k, ops=INT):  # one thread per row of a 64-K tile
        return _pf_grid(m, self.rows, k, PF_K, self.threads, ops)

    def call(self):
        return f"mxc::tileq<E_{self.a_format}, F_{self.a_format}, {self.rows}, {str(self.perm).lower()}>(x, a, M, K);"


SMEM_MAX = 232448  # dynamic shared memory a CTA may take on sm_90 (227 KB)


# ---------------------------------------------------------------- rdec (mxc_sm90_prefill.cuh)
RDEC_NA = (16, 32, 64, 128, 256)  # rows of x per rdec CTA: the wgmma's N
RDEC_SPLITS = (1, 2, 4, 8)
RDEC_ROWS = 128  # weight rows per rdec CTA (two consumer warpgroups of 64)
RDEC_MAX_SLOTS = 12
RDEC_MIN_CTAS = 100  # rdec takes the fewest K splits that give this many CTAs
RDEC_MIN_KT = 4  # ... while each split keeps at least this many K tiles of 64


@dataclass(frozen=True)
class RDec(Kernel):
    """The weights decoded in registers (weight-only layers; MXFP8 x MXFP8 after tileq): tilea's / tileq's
    permuted bf16 tiles of `na` rows x the fragment tiles (grouped by 8), each warp of two consumer
    warpgroups decoding its 16 weight rows into the A operand of wgmma m64nNAk16 (A from registers: no
    shared-memory round trip), one producer thread feeding a ring of stages by bulk copies; K split s ways
    across CTAs (s > 1: partial sums to `ws` [s, M, N], reduced by `dsum`)."""

    kind = "rdec"
    threads = 384  # a producer and two consumer warpgroups
    w_format: str = ""
    na: int = 128
    s: int = 1
    bias: bool = False  # s = 1 only (with splits the bias is dsum's)

    @property
    def name(self):
        return f"mxc_rdec_{self.w_format}_n{self.na}_s{self.s}" + ("_bias" if self.bias else "")

    def bindings(self):
        ins = ["a", *_weights(self.w_format, self.bias and self.s == 1)]
        dtype = {"a": "bf16", "w_tensor_scale": "f32", "bias": "f32"}
        return [Binding(n, False, dtype.get(n, "i8")) for n in ins] + [Binding("y" if self.s == 1 else "ws", True, "f32")]

    def outputs(self, m, n, k, ops=INT):
        return {"y": [m, n]} if self.s == 1 else {"ws": [self.s, m, n]}

    def grid(self, m, n, k, ops=INT):
        return (ops.cdiv(n, RDEC_ROWS), ops.cdiv(m, self.na), self.s)

    def weight_layout(self):
        return Fragments.of(self.w_format, group=RDEC_ROWS // 16)

    @property
    def _stage(self) -> int:
        """Bytes of one K tile (64) in the ring: activations, codes, scales (RdecSmem::STAGE)."""
        f = get_format(self.w_format)
        return self.na * PF_K * 2 + 8 * 32 * 32 * f.element.bits // 8 + 8 * 16 * (PF_K // f.block_size)

    @property
    def slots(self) -> int:
        """The ring's stages: as many as shared memory holds beside the decode's table (1 KB, IF4's and NVINT4's 4 KB:
        DecLut), at most RDEC_MAX_SLOTS."""
        table = 4096 if fast_tab4(self.w_format) else 2048 if fast_int8(self.w_format) else 1024
        return min(RDEC_MAX_SLOTS, (SMEM_MAX - table - 16 * RDEC_MAX_SLOTS) // self._stage)

    @property
    def smem(self):
        return self.slots * (self._stage + 16)

    def call(self):
        ts = "w_tensor_scale" if get_format(self.w_format).tensor_scale else "nullptr"
        bias = self.bias and self.s == 1
        return (f"mxc::rdec<F_{self.w_format}, {self.na}, {self.slots}, {self.s}, {str(bias).lower()}>(a, w, "
                f"w_scales, {ts}, {'bias' if bias else 'nullptr'}, {'y' if self.s == 1 else 'ws'}, M, N, K, epi);")

    @property
    def path(self):
        return "decode: weights to bf16 in registers, warp-specialized wgmma with A from registers (HGMMA)"


def rdec_na(m: int) -> int:
    """rdec's rows of x per CTA for M = m: the smallest of RDEC_NA holding m (the largest past it)."""
    return next((v for v in RDEC_NA if v >= m), RDEC_NA[-1])


def rdec_splits(m: int, n: int, k: int) -> int:
    """rdec's K splits for an [m, k] x [n, k]^T layer: the fewest of RDEC_SPLITS giving RDEC_MIN_CTAS
    CTAs, each split keeping RDEC_MIN_KT K tiles; 1 when K is too short to split. (Measured on an H100,
    `bench_cuda rdec` at 8192^2, 14336 x 4096 and 4096 x 14336: the rule picks the fastest split in all 15
    NVFP4 cells of M = 128-4096 and all 48 MXFP4 / IF4 / MXFP6 / MXFP8 cells of M = 512-4096; e.g. 8192^2
    at M = 1024, 256 CTAs: 1 split 208 us, 2 254.)"""
    ctas, kt = -(-n // RDEC_ROWS) * -(-m // rdec_na(m)), -(-k // PF_K)
    fits = [s for s in RDEC_SPLITS if s == 1 or kt // s >= RDEC_MIN_KT]
    return next((s for s in fits if ctas * s >= RDEC_MIN_CTAS), fits[-1])


def rdec_kernels(w_format: str, bias: bool, m: int, n: int, k: int, a_format: str | None = None) -> list[Kernel]:
    """tilea (weight-only) or tileq (MXFP8 activations), permuted, na rows; rdec [, dsum] for an [m, k] x
    [n, k]^T layer."""
    na, s = rdec_na(m), rdec_splits(m, n, k)
    act = TileA(rows=na, perm=True) if a_format is None else TileQ(a_format=a_format, rows=na, perm=True)
    ks: list[Kernel] = [act, RDec(w_format=w_format, na=na, s=s, bias=bias and s == 1)]
    return ks + ([DSum(s=s, bias=bias)] if s > 1 else [])


# ---------------------------------------------------------------- the block-scaled skeleton
def _nv(a_format: str) -> bool:
    return a_format in ("nvfp4", "nvfp4_4over6")


@dataclass(frozen=True)
class Amax(Kernel):
    """The NV activations' tensor scale: AMAX_CTAS partial maxima, reduced by their readers."""

    kind = "amax"
    threads = 512
    a_format: str = ""
    arch: str = "sm_90a"

    @property
    def name(self):
        return f"mxc_amax_{self.a_format}"

    def bindings(self):
        return [Binding("x", False, "f32"), Binding("a_tensor_scale", True, "f32")]

    def constants(self):
        return ["M", "K"]

    def outputs(self, m, n, k, ops=INT):
        return {"a_tensor_scale": [AMAX_CTAS]}

    def grid(self, m, n, k, ops=INT):
        return (AMAX_CTAS, 1, 1)

    def call(self):
        return "mxc::bs::amax(x, a_tensor_scale, M, K);"


@dataclass(frozen=True)
class BsQ(Kernel):
    """Activations to the skeleton's tiles: codes in 16-byte units of `unit` elements + 128x4 scale
    chunks (or bf16 tiles for `a_format="bf16"`)."""

    kind = "bsq"
    ctas_per_sm = 2
    a_format: str = ""
    unit: int = 0  # elements per 16-byte unit of the tiles it writes
    arch: str = "sm_90a"

    @property
    def rounding(self):
        return "bf16 activations" if self.a_format == "bf16" else None

    @property
    def name(self):
        return f"mxc_bsq_{self.a_format}" + (f"_u{self.unit}" if self.a_format != "bf16" else "")

    def bindings(self):
        if self.a_format == "bf16":
            return [Binding("x", False, "f32"), Binding("a", True, "i8")]
        ts = [Binding("a_tensor_scale", False, "f32")] if _nv(self.a_format) else []
        return [Binding("x", False, "f32"), *ts, Binding("a", True, "i8"), Binding("a_scales", True, "i8")]

    def constants(self):
        return ["M", "K"]

    def outputs(self, m, n, k, ops=INT):
        codes, scales = tiled_sizes(self.a_format, self.unit or 8, m, k, ops)
        return {"a": [codes]} | ({"a_scales": [scales]} if scales else {})

    def grid(self, m, n, k, ops=INT):
        per = 8 if self.a_format == "bf16" else get_format(self.a_format).block_size  # items per row
        mp = ops.mul(ops.cdiv(m, BS_TILE), BS_TILE)
        kp = ops.mul(ops.cdiv(k, BS_TILE), BS_TILE)
        return (ops.cdiv(ops.mul(mp, ops.div(kp, per)), self.threads), 1, 1)

    def call(self):
        if self.a_format == "bf16":
            return "mxc::bs::bsq_bf16(x, a, M, K);"
        ats = "a_tensor_scale" if _nv(self.a_format) else "nullptr"
        return f"mxc::bs::bsq<Q_{self.a_format}, F_{self.a_format}, {self.unit}>(x, a, a_scales, {ats}, M, K);"


@dataclass(frozen=True)
class _BsGemm(Kernel):
    """The skeleton's GEMM: 128 x 128 tiles, BS_STAGES bulk-copy slots, weights in tiles."""

    w_format: str = ""
    bias: bool = False
    arch: str = "sm_90a"

    a_operand: ClassVar[str] = ""

    @property
    def decodes(self) -> bool:
        """Whether the skeleton decodes operands to bf16 (the sm_90a twin; the sm_100a decode path)."""
        raise NotImplementedError

    def units(self) -> tuple[int, int]:
        """Elements per 16-byte unit of the operands (activations, weights)."""
        raise NotImplementedError

    def act_format(self) -> str:
        raise NotImplementedError

    def outputs(self, m, n, k, ops=INT):
        return {"y": [m, n]}

    def grid(self, m, n, k, ops=INT):
        return _tiles(m, n, ops)

    def weight_layout(self):
        return Tiles(self.units()[1])

    @property
    def smem(self):  # a stage: one 128 x 128 tile and its scales per operand
        fmts = (self.act_format(), self.w_format)
        stage = sum(sum(tiled_sizes(f, ue, BS_TILE, BS_TILE)) for f, ue in zip(fmts, self.units()))
        return BS_STAGES * stage + (2 * BS_TILE * 256 if self.decodes else 0) + 128

    def _call(self, fa: str, a_scales: str, ats: str) -> str:
        ua, uw = self.units()
        ts = "w_tensor_scale" if get_format(self.w_format).tensor_scale else "nullptr"
        return (f"mxc::bs::gemm<mxc::bs::Atom, {fa}, {ua}, F_{self.w_format}, {uw}, {str(self.bias).lower()}>"
                f"(a, {a_scales}, {ats}, w, w_scales, {ts}, {'bias' if self.bias else 'nullptr'}, y, M, N, K, epi);")


@dataclass(frozen=True)
class BsMma(_BsGemm):
    """Block-scaled codes x codes: tcgen05.mma kind::mxf8f6f4 / mxf4 / mxf4nvf4 (sm_100a), or the
    twin that decodes both operands to bf16 for wgmma (sm_90a)."""

    kind = "bsmma"
    a_format: str = ""

    @property
    def name(self):
        return f"mxc_bsmma_{self.a_format}_{self.w_format}" + ("_bias" if self.bias else "")

    @property
    def decodes(self):
        return self.arch == "sm_90a"

    def act_format(self):
        return self.a_format

    def units(self):
        kind = pair_kind(self.a_format, self.w_format)
        return unit_elements(self.a_format, kind), unit_elements(self.w_format, kind)

    def bindings(self):
        ins = ["a", "a_scales"] + (["a_tensor_scale"] if _nv(self.a_format) else [])
        return _gemm_bindings(ins + _weights(self.w_format, self.bias), {"a_tensor_scale", "w_tensor_scale"})

    def call(self):
        return self._call(f"F_{self.a_format}", "a_scales", "a_tensor_scale" if _nv(self.a_format) else "nullptr")

    @property
    def path(self):
        kind = tc.KIND_NAMES[pair_kind(self.a_format, self.w_format)]
        if self.arch == "sm_100a":
            return f"native: tcgen05.mma kind::{kind}.block_scale"
        return f"twin of kind::{kind}: decoded to bf16, wgmma"


@dataclass(frozen=True)
class BsDec(_BsGemm):
    """Weight-only on the skeleton: bf16 activation tiles x weights decoded to bf16 (kind::f16)."""

    kind = "bsdec"
    decodes = True

    @property
    def name(self):
        return f"mxc_bsdec_{self.w_format}" + ("_bias" if self.bias else "")

    def act_format(self):
        return "bf16"

    def units(self):
        return 8, unit_elements(self.w_format, None)

    def bindings(self):
        return _gemm_bindings(["a", *_weights(self.w_format, self.bias)], {"w_tensor_scale"})

    def call(self):
        return self._call("mxc::bs::BF16", "nullptr", "nullptr")

    @property
    def path(self):
        return "decode: weights to bf16 in shared memory, tcgen05.mma kind::f16"


KINDS: dict[str, type[Kernel]] = {c.kind: c for c in (Gemv, Dec, Dec1B, DecSplit, DSum, TileA, TileQ, RDec,
                                                       Amax, BsQ, BsMma, BsDec)}
SM90_ONLY = (TileA, TileQ, RDec, Dec1B)  # mxc_sm90_prefill.cuh's kernels (wgmma, bulk copies): no sm_100a build
