"""AMX bf16 tile kernels for the CPU target's contractions (lower-mxq-to-linalg, `contraction=amx`).

Intel AMX (`amx_bf16`, Sapphire Rapids and later) multiplies 16 x 32 bf16 tiles into 16 x 16 float32
tiles (`tdpbf16ps`): every product of two bf16 values is exact in float32 and is added in float32, so a
contraction of operands that are *exactly* bf16 computes what the float32 contraction computes, up to
the order of the float32 sums. mxc's dequantized operands are exact in bf16 for every format whose
element significand and block-scale significand together fit bf16's 8 bits (`bf16_exact`), once the NV
tensor scale (an arbitrary float32) is taken out and applied to the output; float32 activations of
weight-only layers are split into three bf16 parts whose sum is the activation (`split3`) and all three go through the same accumulators; a float32 matmul (a layer kept in
high precision) splits both operands and accumulates the six part products that matter.

What differs from the float32 contraction, besides the order of the sums: AMX treats bf16 inputs below
2^-126 in magnitude as zero (it has no bf16 subnormals), so an operand that small, which only MX blocks
with a scale near 2^-127 or activations below ~2^-110 (the third part of the split) produce, counts as 0.

IREE has no AMX code generation, so each kernel is written here: a `hal.executable.source` whose export
`mxc_amx_<M>x<N>x<K>_p<P>[x<Q>]` computes C[M, N] (float32) = the sum over `AmxGemm.pairs` of
A_i[M, K] . B_j^T, with P parts of A and Q (1 or P) of B stored as AMX reads them, in 1 KB tiles of
16 rows x 64 bytes: A's [P, M/16, K/32, 16, 32] (bf16 rows), B's [Q, N/16, K/32, 16, 16, 2] (pairs of
K interleaved: tile row r, column 2c + t holds W[16 j + c, 32 kb + 2 r + t]). A workgroup takes 32 rows
of C and `col_blocks` blocks of 32 columns (workgroup x: the rows, so consecutive workgroups reuse B's
tiles from the cache), 2 x 2 accumulator tiles (tiles 0-3; A in tiles 4-5, B in 6-7), K in steps of 32.
The body is LLVM's AMX intrinsics (`ldtilecfg`, `tileloadd64`, `tdpbf16ps`, `tilestored64`) on the
bindings' addresses, which IREE's llvm-cpu backend compiles as written (the host's `+amx-bf16` from
`--iree-llvmcpu-target-cpu=host`). M, N and K are multiples of 32 (the lowering pads with zeros).

A process must ask Linux for the AMX tile state before its first tile instruction (`mxc.runtime.amx`,
done by mxc's runtime when it loads such an artifact); without it the instruction faults (SIGILL).
"""

from __future__ import annotations

import dataclasses

from torch_mlir import ir
from torch_mlir.dialects import arith, math, tensor

from mxc.numerics.formats import Format

from ._linalg import F32, I32, Scalar as S, dynamic_sizes, empty, generic, shape_of, static_sizes, ttype

TILE = 32  # a workgroup's block of C and the K step: 2 x 2 tiles of 16 x 16, A tiles of 16 x 32
EXECUTABLE = "mxc_amx"


def _layout(inputs: int) -> str:
    """`inputs` read-only bindings, then the output's."""
    ro = "#hal.pipeline.binding<storage_buffer, ReadOnly>, " * inputs
    return f"#hal.pipeline.layout<bindings = [{ro}#hal.pipeline.binding<storage_buffer>]>"


def significand_bits(fmt: Format) -> tuple[int, int]:
    """(element, block scale) significand bits of `fmt`'s values (an int element: its magnitude bits)."""
    e = fmt.element
    elem = e.bits - 1 if e.kind == "int" else e.mbits + 1
    scale = 1 if fmt.scale.name == "e8m0" else fmt.scale.element.mbits + 1
    return elem, scale


def bf16_exact(fmt: Format) -> bool:
    """Whether every element x block-scale product of `fmt` is a bf16 value (the NV tensor scale apart).

    True when the two significands fit bf16's 8 bits. IF4's INT blocks mean code x 6/7 x scale, which
    is not a short binary fraction, so IF4 is not."""
    if fmt.choice == "if4":
        return False
    elem, scale = significand_bits(fmt)
    return elem + scale <= 8


def operands_exact(w: Format, act: Format | None, act_dtype: str = "f32") -> bool:
    """Whether a fused matmul's two operands are bf16 values: the weight format's decode (NV tensor scale
    apart) and the activations' (quantized in `act`, or weight-only float32 rounded to bf16 by act_dtype)."""
    return bf16_exact(w) and (bf16_exact(act) if act is not None else act_dtype == "bf16")


def pad32(v: int) -> int:
    return -(-v // TILE) * TILE


@dataclasses.dataclass(frozen=True)
class AmxGemm:
    """C[m, n] = sum over `pairs` (i, j) of A_i[m, k] . B_j^T on AMX tiles; m, n, k multiples of 32.

    `parts` A operands and `b_parts` B operands: with one B part, every A part against it (the split of
    float32 activations against exact bf16 weights); with three of each, the six pairs i + j <= 2 of two
    float32 operands split in three bf16 parts each (round to nearest: |part 1| < 2^-8 |x|, |part 2| <
    2^-16 |x|), whose three dropped pairs weigh less than ~2^-23 of each product, about one float32
    rounding: float32-accurate."""

    m: int
    n: int
    k: int
    parts: int = 1
    b_parts: int = 1
    batch: int = 1  # independent GEMMs of these shapes, operands stacked (workgroup z)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """(A part, B part) products accumulated, grouped by B part (each B tile loaded once per K step)."""
        if self.b_parts == 1:
            return [(i, 0) for i in range(self.parts)]
        return [(i, j) for j in range(self.b_parts) for i in range(self.parts) if i + j <= 2]

    @property
    def col_blocks(self) -> int:
        """32-column blocks of C per workgroup (one tile configuration and call serve them all)."""
        return next(c for c in (4, 2, 1) if self.n % (TILE * c) == 0)

    def __post_init__(self):
        if (self.m % TILE or self.n % TILE or self.k % TILE or not 1 <= self.parts <= 3
                or self.b_parts not in (1, self.parts) or self.batch < 1):
            raise ValueError(f"AmxGemm needs m, n, k multiples of {TILE}, 1-3 A parts and 1 B part or as many "
                             f"as A: {self}")

    @property
    def name(self) -> str:
        parts = f"{self.parts}x{self.b_parts}" if self.b_parts > 1 else f"{self.parts}"
        return f"mxc_amx_{f'{self.batch}x' if self.batch > 1 else ''}{self.m}x{self.n}x{self.k}_p{parts}"

    @property
    def inputs(self) -> int:
        """Read-only bindings: A's parts, then B's (bf16 tiles); C (float32) is the last binding."""
        return self.parts + self.b_parts

    @property
    def grid(self) -> tuple[int, int, int]:
        """Workgroups (x: 32-row blocks, y: groups of `col_blocks` column blocks, z: the batch)."""
        return self.m // TILE, self.n // (TILE * self.col_blocks), self.batch

    def func(self) -> str:
        """The workgroup function: 32 rows x `col_blocks` 32-column blocks of C, each over all of K."""
        m, n, k, bt = self.m, self.n, self.k, self.batch
        lines = kernel_prologue(
            self.name, [(f"a{i}", f"memref<{bt * m * k}xbf16>", 2 * m * k) for i in range(self.parts)]
            + [(f"b{j}", f"memref<{bt * n * k}xbf16>", 2 * n * k) for j in range(self.b_parts)]
            + [("c", f"memref<{bt * m * n}xf32>", 4 * m * n)])
        kt = k // TILE  # K tiles
        consts = {"i32one": (1, "i32"), "pal": (1, "i8"), "cols": (64, "i16"), "rows": (16, "i8"),
                  "s_t": (64, "i64"), "s_c": (4 * n, "i64"), "tile": (1024, "i64"), "rowblk": (1024 * kt, "i64"),
                  "two_rowblk": (2048 * kt, "i64"), "blk_c": (4 * n * TILE, "i64"), "half_c": (4 * n * 16, "i64"),
                  "w_c": (4 * TILE, "i64"), "c64": (64, "i64")}
        consts.update({f"t{t}": (t, "i8") for t in range(8)})
        lines += [f"  %{name} = llvm.mlir.constant({v} : {t}) : {t}" for name, (v, t) in consts.items()]
        # the tile configuration: palette 1, tiles 0-7 of 16 rows x 64 bytes
        lines += ["  %cfg = llvm.alloca %i32one x !llvm.array<64 x i8> {alignment = 64 : i64} : (i32) -> !llvm.ptr",
                  "  %cfg0 = llvm.mlir.zero : !llvm.array<64 x i8>",
                  "  llvm.store %cfg0, %cfg : !llvm.array<64 x i8>, !llvm.ptr",
                  "  llvm.store %pal, %cfg : i8, !llvm.ptr"]
        for t in range(8):
            lines += [f"  %colp{t} = llvm.getelementptr %cfg[{16 + 2 * t}] : (!llvm.ptr) -> !llvm.ptr, i8",
                      f"  llvm.store %cols, %colp{t} : i16, !llvm.ptr",
                      f"  %rowp{t} = llvm.getelementptr %cfg[{48 + t}] : (!llvm.ptr) -> !llvm.ptr, i8",
                      f"  llvm.store %rows, %rowp{t} : i8, !llvm.ptr"]
        lines.append('  llvm.call_intrinsic "llvm.x86.ldtilecfg"(%cfg) : (!llvm.ptr) -> ()')
        # A and B are stored tile by tile (1 KB each, rows of 64 bytes): a part's 16-row block i, K tile kk
        # at (i * kt + kk) KB of its binding; B's 16-column blocks likewise
        lines.append("  %ya = llvm.mul %wgx, %two_rowblk : i64")
        for i in range(self.parts):  # part i's two 16-row blocks of this workgroup's rows
            lines += [f"  %a{i}r0 = llvm.add %a{i}, %ya : i64", f"  %a{i}r1 = llvm.add %a{i}r0, %rowblk : i64"]
        lines += [f"  %cbn = arith.constant {self.col_blocks} : index",
                  f"  %cb = llvm.mlir.constant({self.col_blocks} : i64) : i64",
                  f"  %kn = arith.constant {kt} : index", "  %one = arith.constant 1 : index",
                  "  %wxc = llvm.mul %wgy, %cb : i64",
                  "  scf.for %j = %c0 to %cbn step %one {",  # this workgroup's column blocks
                  "  %j64 = arith.index_cast %j : index to i64",
                  "  %col = llvm.add %wxc, %j64 : i64"]
        lines += [f'  llvm.call_intrinsic "llvm.x86.tilezero"(%t{t}) : (i8) -> ()' for t in range(4)]
        lines.append("  %xb = llvm.mul %col, %two_rowblk : i64")
        for j in range(self.b_parts):
            lines += [f"  %b{j}c0 = llvm.add %b{j}, %xb : i64", f"  %b{j}c1 = llvm.add %b{j}c0, %rowblk : i64"]
        lines += ["  scf.for %kk = %c0 to %kn step %one {",
                  "    %k64 = arith.index_cast %kk : index to i64",
                  "    %off = llvm.mul %k64, %tile : i64"]

        def load(tile: int, addr: str, name: str) -> None:
            lines.extend([f"    {name}p = llvm.inttoptr {addr} : i64 to !llvm.ptr",
                          f'    llvm.call_intrinsic "llvm.x86.tileloadd64"(%t{tile}, {name}p, %s_t) : '
                          "(i8, !llvm.ptr, i64) -> ()"])

        def mul(acc: int, ia: int, ib: int) -> None:
            lines.append(f'    llvm.call_intrinsic "llvm.x86.tdpbf16ps"(%t{acc}, %t{ia}, %t{ib}) : (i8, i8, i8) -> ()')

        # each load as late as its first use, so that the next loads overlap the last multiplies
        for j in range(self.b_parts):
            lines += [f"    %pb{j}0 = llvm.add %b{j}c0, %off : i64", f"    %pb{j}1 = llvm.add %b{j}c1, %off : i64"]
            for first, (i, _) in enumerate(pr for pr in self.pairs if pr[1] == j):
                lines += [f"    %pa{i}{j}0 = llvm.add %a{i}r0, %off : i64",
                          f"    %pa{i}{j}1 = llvm.add %a{i}r1, %off : i64"]
                load(4, f"%pa{i}{j}0", f"%la{i}{j}0")
                if first == 0:
                    load(6, f"%pb{j}0", f"%lb{j}0")
                mul(0, 4, 6)
                if first == 0:
                    load(7, f"%pb{j}1", f"%lb{j}1")
                mul(1, 4, 7)
                load(5, f"%pa{i}{j}1", f"%la{i}{j}1")
                mul(2, 5, 6)
                mul(3, 5, 7)
        lines += ["  }",
                  "  %yc = llvm.mul %wgx, %blk_c : i64", "  %xc = llvm.mul %col, %w_c : i64",
                  "  %c00 = llvm.add %c, %yc : i64", "  %c00x = llvm.add %c00, %xc : i64",
                  "  %c01x = llvm.add %c00x, %c64 : i64", "  %c10x = llvm.add %c00x, %half_c : i64",
                  "  %c11x = llvm.add %c10x, %c64 : i64"]
        for t, name in enumerate(("c00x", "c01x", "c10x", "c11x")):
            lines += [f"  %pc{t} = llvm.inttoptr %{name} : i64 to !llvm.ptr",
                      f'  llvm.call_intrinsic "llvm.x86.tilestored64"(%t{t}, %pc{t}, %s_c) : (i8, !llvm.ptr, i64) -> ()']
        lines += ["  }", '  llvm.call_intrinsic "llvm.x86.tilerelease"() : () -> ()', "  return", "}"]
        return "\n".join(lines) + "\n"


def kernel_prologue(name: str, operands: list[tuple[str, str, int]]) -> list[str]:
    """The head of a kernel's workgroup function: every operand (name, memref type, bytes per batch entry;
    inputs first, the output last) bound and its address for this workgroup's batch entry (workgroup z) in
    the i64 `%<name>`; `%c0` (index 0), `%wgx` and `%wgy` (workgroup x and y, i64)."""
    layout = _layout(len(operands) - 1)
    lines = [f"func.func @{name}() {{", "  %c0 = arith.constant 0 : index",
             '  %wzi = "hal.interface.workgroup.id"() <{dimension = 2 : index}> : () -> index',
             "  %wz = arith.index_cast %wzi : index to i64"]
    for b, (op, mem, size) in enumerate(operands):
        lines += [
            f'  %{op}m = "hal.interface.binding.subspan"(%c0) <{{alignment = 64 : index, binding = {b} : '
            f"index, layout = {layout}, operandSegmentSizes = array<i32: 1, 0>}}> : (index) -> {mem}",
            f"  %{op}i = memref.extract_aligned_pointer_as_index %{op}m : {mem} -> index",
            f"  %{op}_base = arith.index_cast %{op}i : index to i64",
            f"  %{op}s = llvm.mlir.constant({size} : i64) : i64", f"  %{op}z = llvm.mul %wz, %{op}s : i64",
            f"  %{op} = llvm.add %{op}_base, %{op}z : i64"]
    for d, wg in ((0, "wgx"), (1, "wgy")):
        lines += [f'  %{wg}i = "hal.interface.workgroup.id"() <{{dimension = {d} : index}}> : () -> index',
                  f"  %{wg} = arith.index_cast %{wg}i : index to i64"]
    return lines


def _export(kernel, ordinal: int) -> str:
    """The kernel's `hal.executable.export`: its bindings and its workgroup count (`kernel.grid`)."""
    x, y, z = kernel.grid
    return (f'"hal.executable.export"() <{{layout = {_layout(kernel.inputs)}, ordinal = {ordinal} : index, '
            f'sym_name = "{kernel.name}", sym_visibility = "public"}}> ({{\n'
            f"^bb0(%device: !hal.device):\n"
            f"  %x = arith.constant {x} : index\n  %y = arith.constant {y} : index\n"
            f"  %z = arith.constant {z} : index\n"
            f'  "hal.return"(%x, %y, %z) : (index, index, index) -> ()\n'
            f"}}, {{\n}}) : () -> ()\n")


def executable(kernels: list, name: str = EXECUTABLE) -> str:
    """The `hal.executable.source` `name` holding every kernel (AmxGemm, _fma.FmaGemm; generic form for
    IREE's ops)."""
    exports = "".join(_export(g, i) for i, g in enumerate(kernels))
    funcs = "".join(g.func() for g in kernels)
    return (f'"hal.executable.source"() <{{sym_name = "{name}", sym_visibility = "private"}}> ({{\n'
            f"{exports}builtin.module {{\n{funcs}}}\n"
            '"hal.executable.source_end"() : () -> ()\n}) : () -> ()\n')


# ----------------------------------------------------------------------------- IR: operands and the dispatch
# (lower-mxq-to-linalg's contractions and decompose-attention's matmuls build their AMX operands here)


def pad2(v: ir.Value, rows: int, cols: int) -> ir.Value:
    """Zero-pad the last two dims of a float32 tensor (either may be dynamic) to [rows, cols] (tensor.pad: a zero-filled tensor with
    an insert_slice, hoisted with a constant weight, broke IREE's ordering of hoisted globals)."""
    s = shape_of(v)
    if s[-2:] == [rows, cols]:
        return v
    r = len(s)
    high = [size - d if isinstance(d, int) else arith.SubIOp(arith.constant(ir.IndexType.get(), size), d).result
            for size, d in ((rows, s[-2]), (cols, s[-1]))]  # a dynamic source size: a dynamic padding
    pad = tensor.PadOp(ttype([*s[:-2], rows, cols], F32()), v, [], dynamic_sizes(high), [0] * r,
                       [0] * (r - 2) + static_sizes(high))
    block = pad.region.blocks.append(*[ir.IndexType.get()] * r)
    with ir.InsertionPoint(block):
        tensor.YieldOp(arith.ConstantOp(F32(), ir.FloatAttr.get(F32(), 0.0)).result)
    return pad.result


def b_tiles(w: ir.Value, parts: int, body, transposed: bool = False) -> list[ir.Value]:
    """float32 w [(Bt,) N, K] (`transposed`: [(Bt,) K, N]) -> `parts` bf16 tensors as AMX's B operand reads
    them, N and K zero-padded to multiples of 32: [(Bt,) N/16, K/32, 16, 16, 2],
    out_p[j, kb, r, c, t] = body(w[16 j + c, 32 kb + 2 r + t])[p] (each 1 KB tile holds 16 columns of W
    as 16 rows of K pairs); one generic computes all parts."""
    *bt, n, k = shape_of(w)
    if transposed:
        k, n = n, k
    n2, k2 = pad32(n), pad32(k)
    lead = list(range(len(bt)))
    o = len(bt)  # loops: (batch..., j, kb, r, c, t)
    j, kb, r, c, t = (o + d for d in range(5))
    if transposed:  # w[.., 32 kb + 2 r + t, 16 j + c]: [.., K/32, 16, 2, N/16, 16]
        wp = tensor.ExpandShapeOp(ttype([*bt, k2 // 32, 16, 2, n2 // 16, 16], F32()), pad2(w, k2, n2),
                                  [[d] for d in lead] + [[o, o + 1, o + 2], [o + 3, o + 4]], [],
                                  [*bt, k2 // 32, 16, 2, n2 // 16, 16]).result
        in_map = [*lead, kb, r, t, j, c]
    else:  # w[.., 16 j + c, 32 kb + 2 r + t]: [.., N/16, 16, K/32, 16, 2]
        wp = tensor.ExpandShapeOp(ttype([*bt, n2 // 16, 16, k2 // 32, 16, 2], F32()), pad2(w, n2, k2),
                                  [[d] for d in lead] + [[o, o + 1], [o + 2, o + 3, o + 4]], [],
                                  [*bt, n2 // 16, 16, k2 // 32, 16, 2]).result
        in_map = [*lead, j, c, kb, r, t]
    outs = [empty([*bt, n2 // 16, k2 // 32, 16, 16, 2], ir.BF16Type.get()) for _ in range(parts)]
    loops = o + 5
    return generic([wp], outs, [in_map] + [list(range(loops))] * parts, ["parallel"] * loops, body)


def a_tiles(x: ir.Value, rows: int, cols: int, parts: int, body) -> list[ir.Value]:
    """float32 x [(Bt,) M, K] -> `parts` bf16 tensors as AMX's A operand reads them, [(Bt,) M/16, K/32, 16,
    32] with out_p[i, kb, r, c] = body(x[16 i + r, 32 kb + c])[p], M and K zero-padded to rows, cols; one
    generic computes all parts (a fused producer of x runs once per element)."""
    bt = shape_of(x)[:-2]
    lead = list(range(len(bt)))
    o = len(bt)  # loops: (batch..., i, kb, r, c)
    xp = tensor.ExpandShapeOp(ttype([*bt, rows // 16, 16, cols // 32, 32], F32()), pad2(x, rows, cols),
                              [[d] for d in lead] + [[o, o + 1], [o + 2, o + 3]], [],
                              [*bt, rows // 16, 16, cols // 32, 32]).result
    outs = [empty([*bt, rows // 16, cols // 32, 16, 32], ir.BF16Type.get()) for _ in range(parts)]
    loops = o + 4
    return generic([xp], outs, [[*lead, o, o + 2, o + 1, o + 3]] + [list(range(loops))] * parts,
                   ["parallel"] * loops, body)


def to_bf16(v, *_) -> list:
    """A generic body: v (a bf16 value held in float32) as bf16."""
    return [arith.TruncFOp(ir.BF16Type.get(), v).result]


def split3(v, *_) -> list:
    """A generic body: float32 v = hi + mid + lo, each a bf16 value (the three parts, as bf16).

    hi = v rounded to bf16 (to nearest, ties to even, by integer ops on the bits; v truncated to its top 8
    significand bits where that rounding would overflow), mid = the remainder rounded likewise, lo = what
    is left: each subtraction is exact and lo has at most 8 significand bits, so the sum is v exactly (in
    bf16's normal range) and truncf only changes the parts' type; |mid| < 2^-8 |v|, |lo| < 2^-16 |v|.
    A NaN or infinite v goes whole into hi."""
    bf = ir.BF16Type.get()

    def rne(x):  # to nearest bf16, ties to even, on the bits (IREE folds extf(truncf(x)) into x)
        bits = arith.BitcastOp(I32(), x).result
        odd = arith.AndIOp(arith.ShRUIOp(bits, S.i(16)).result, S.i(1)).result
        up = arith.AddIOp(bits, arith.AddIOp(S.i(0x7FFF), odd).result).result
        return arith.BitcastOp(F32(), arith.AndIOp(up, S.i(-65536)).result).result

    inf = S.f(float("inf"))
    finite = S.cmpf("olt", math.AbsFOp(v).result, inf)
    trunc = arith.BitcastOp(F32(), arith.AndIOp(arith.BitcastOp(I32(), v).result, S.i(-65536)).result).result
    hi = rne(v)
    hi = S.select(S.cmpf("olt", math.AbsFOp(hi).result, inf), hi, trunc)
    r1 = arith.SubFOp(v, hi).result
    mid = rne(r1)
    lo = arith.SubFOp(r1, mid).result
    parts = [S.select(finite, hi, v), S.select(finite, mid, S.f(0.0)), S.select(finite, lo, S.f(0.0))]
    return [arith.TruncFOp(bf, x).result for x in parts]


def _flat(v: ir.Value) -> ir.Value:
    s = shape_of(v)
    size = 1
    for d in s:
        size *= d
    return tensor.CollapseShapeOp(ttype([size], ir.RankedTensorType(v.type).element_type), v,
                                  [list(range(len(s)))]).result


def dispatch(kernel, operands: list[ir.Value], shape: list[int], out_shape: list[int], executable: str) -> ir.Value:
    """One `flow.dispatch` of `executable`'s `kernel` on `operands` (flattened): its float32 result viewed
    as `shape`, sliced to `out_shape` (the padding dropped)."""
    operands = [_flat(v) for v in operands]
    size = 1
    for d in shape:
        size *= d
    out = ir.Operation.create(
        "flow.dispatch", results=[ttype([size], F32())], operands=operands,
        attributes={
            "entry_points": ir.ArrayAttr.get([ir.SymbolRefAttr.get([executable, kernel.name])]),
            "operandSegmentSizes": ir.DenseI32ArrayAttr.get([0, len(operands), 0, 0]),
            "tied_operands": ir.ArrayAttr.get([ir.IntegerAttr.get(ir.IndexType.get(), -1)]),
        }).results[0]
    y = tensor.ExpandShapeOp(ttype(shape, F32()), out, [list(range(len(shape)))], [], shape).result
    if out_shape != shape:
        r = len(shape)
        y = tensor.ExtractSliceOp(ttype(out_shape, F32()), y, [], [], [], [0] * r, out_shape, [1] * r).result
    return y


def contract(a: list[ir.Value], b: list[ir.Value], m: int, n: int, kernels: dict,
             executable: str = EXECUTABLE) -> ir.Value:
    """A's parts (tiles [(Bt,) M2/16, K2/32, 16, 32]) x B's parts (tiles [(Bt,) N2/16, K2/32, 16, 16, 2]) ->
    float32 [(Bt,) m, n], the sum of AmxGemm.pairs' products, one AMX dispatch of `executable`'s kernel."""
    *bt, mt, kt = shape_of(a[0])[:-2]
    m2, k2, n2 = mt * 16, kt * 32, shape_of(b[0])[len(bt)] * 16
    g = AmxGemm(m2, n2, k2, len(a), len(b), bt[0] if bt else 1)
    kernels.setdefault(g.name, g)
    return dispatch(g, [*a, *b], [*bt, m2, n2], [*bt, m, n], executable)
