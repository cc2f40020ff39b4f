"""Float32 kernels for the CPU target's contractions (`contraction=fma`, any x86-64 with AVX2 + FMA).

IREE's llvm-cpu code for a float32 matmul ran at 45-60 GFLOP/s on the two cores of an AMD EPYC (Zen 4)
test machine (`profile_cpu` of a `--contraction decomposed` SmolLM2 artifact: 15.2 ms per 512 x 1536 x
576; one-off timings of a lone matmul: 12.8 ms with a [K, N] weight, 17.7 ms with the [N, K] layout
mxc's layers have), where the FMA units' peak is ~165 GFLOP/s (2 cores x 2 x 8-lane FMAs per cycle at
~2.6 GHz): its 8 x 16 register tile spills. `FmaGemm` is the classic register-blocked micro-kernel
instead: C[M, N] = A[M, K] . B[N, K]^T with B packed in panels of NR = 24 columns, [N/24, K, 24] (hoisted
to load time for a constant weight, like every weight decode), each micro-tile of MR = 4 rows x 24
columns held in 12 vector<8xf32> accumulators over a K block of at most 256 (so the panel's block stays
in L1 over the workgroup's rows): per K step three loads of B, four broadcasts of A and twelve
`vector.fma`s. A layer whose N padded to 24 would waste a third of the work (N = 16 or 32) takes panels of
16 (or 8) columns and 8 (4) accumulators instead (`panel_vectors`). Memref + vector ops: IREE's llvm-cpu
pipeline lowers them as written.

Every product and sum is a float32 operation of the contraction; what differs from IREE's float32
contraction is the order of the sums and that a*b+c rounds once (as torch's MKL kernels do), within the
float32 accumulation-order tolerance every lowering is tested to.

A workgroup takes `row_block` rows (workgroup x, so consecutive workgroups read the same B panels from the
cache) and `col_panels` panels (workgroup y), a batch entry per workgroup z. M is padded to a multiple of
MR and N to a multiple of the panel width with zeros (`pad2`); K is any size.

`FmaGemm(bf16=True)` (`contraction=dpbf16`, a CPU with AVX512-BF16): the same micro-kernel on bf16 operands
that are *exact* (values a format's decode gives: `_amx.bf16_exact`), K taken in pairs: B packed [N/nr, K/2,
nr, 2] (`b_panels(bf16=True)`), A's pair (a[k], a[k+1]) broadcast as one 32-bit word, and each step one
`vdpbf16ps` per accumulator (LLVM's `llvm.x86.avx512bf16.dpbf16ps.256`): acc += a[k+1] b[k+1] + a[k] b[k],
each product exact in float32 and each addition one float32 rounding, so what it computes is the float32
contraction up to the order of the sums; twice the multiply-adds of an FMA per instruction (on the 2-core
Zen 4 test machine 412 vs 198 GFLOP/s for a 512 x 1536 x 576 GEMM: `python -m mxc.tools.bench_cpu_kernels`).
Like AMX, the instruction treats bf16 inputs below 2^-126 and float32 results below 2^-126 as zero (only
MX blocks with scales near 2^-127 make such values).

For causal attention (decompose-attention{fma=true}): `FmaCausalAttention`, one dispatch, per block of 8
query rows the three steps below with the block's scores in a stack buffer; past IREE's stack limit (more
than 2048 keys) the three as dispatches of their own: `FmaGemm(causal="out")` writes q . k^T with the
causal mask applied (-inf past the diagonal, tiles above it skipped), `FmaSoftmax` its softmax row by row
(up to the diagonal), `FmaGemm(causal="lhs")` the probabilities times the values (K up to the diagonal).
"""

from __future__ import annotations

import dataclasses

from torch_mlir import ir
from torch_mlir.dialects import arith, scf, tensor

from ._amx import dispatch, kernel_prologue, pad2, to_bf16
from ._linalg import DYN, F32, empty, generic, shape_of, ttype

W = 8  # float32 lanes of a vector (ymm)
MR, NR = 4, 3 * W  # a micro-tile: 4 rows x 24 columns, 12 accumulators (narrow: 16 or 8 columns; bf16: 8 rows)
KC = 256  # the largest K block
# each micro-tile's instructions per K step, per fused multiply-add: nv loads of B + 4 broadcasts + 4 nv FMAs
_STEP_COST = {nv: (5 * nv + 4) / (4 * nv) for nv in (1, 2, 3)}
EXECUTABLE = "mxc_fma"


def pad_to(v: int, m: int) -> int:
    return -(-v // m) * m


def panel_vectors(n: int) -> int:
    """Vectors per micro-tile row (panel width 8 nv) for a contraction with n output columns: 3 (24 columns,
    the most work per load) unless N padded to 24 costs over 10 % more FMA-kernel steps than a narrower
    panel (N = 16 or 32: 24 and 48 columns, a third of them zeros)."""
    cost = {nv: pad_to(n, nv * W) * _STEP_COST[nv] for nv in (3, 2, 1)}
    best = min(cost, key=cost.get)
    return best if cost[best] < 0.9 * cost[3] else 3


def micro_rows(m: int, bf16: bool) -> int:
    """Rows of the micro-tile for m rows: 8 for the bf16 dot kernel past 4 rows (24 accumulators: vdpbf16ps's
    latency of ~6 cycles at two per cycle wants more than 12 in flight; SmolLM2's 512 x 1536 x 576 GEMM ran
    at 324 vs 286 GFLOP/s with 8 rows vs 4 on the 2-core Zen 4, medians of `python -m
    mxc.tools.bench_cpu_kernels gemm`), else 4 (the float32 FMAs, 4 cycles at two per cycle, measured no
    faster with 8)."""
    return 8 if bf16 and m > MR else MR


@dataclasses.dataclass(frozen=True)
class FmaGemm:
    """C[m, n] = A[m, k] . B^T with B packed [n/nr, k, nr] (nr = 8 nv columns); m a multiple of MR, n of nr."""

    m: int
    n: int
    k: int
    batch: int = 1  # independent GEMMs of these shapes, operands stacked (workgroup z)
    # causal attention (top-left aligned, key j <= query i): "out" skips the micro-tiles of C above the
    # diagonal and writes -inf at every column past the row (q . k^T with the causal mask applied), "lhs"
    # stops each row tile's K at its last row (A is 0 past it: the probabilities times the values)
    causal: str = ""
    nv: int = 3  # vectors per micro-tile row: panels of 8 nv columns, MR x nv accumulators
    bf16: bool = False  # exact bf16 operands, K in pairs, vdpbf16ps (A [m, k] bf16, B [n/nr, k/2, nr, 2])
    mr: int = MR  # rows of a micro-tile (8: 24 accumulators, AVX-512's 32 vector registers)

    def __post_init__(self):
        if (self.nv not in (1, 2, 3) or self.mr not in (4, 8) or self.m % self.mr or self.n % (self.nv * W)
                or self.k < 1 or self.batch < 1 or self.causal not in ("", "out", "lhs")
                or (self.bf16 and (self.k % 2 or self.causal))):
            raise ValueError(f"FmaGemm needs nv 1-3, mr 4 or 8, m a multiple of mr = {self.mr}, n of {self.nv * W} "
                             f"(8 nv), causal '', 'out' or 'lhs' (bf16: an even k, not causal): {self}")

    @property
    def nr(self) -> int:
        return self.nv * W

    @property
    def row_block(self) -> int:
        return next(r for r in (64, 32, 16, 8, 4) if self.m % r == 0 and r % self.mr == 0)

    @property
    def col_panels(self) -> int:
        return next(c for c in (4, 3, 2, 1) if (self.n // self.nr) % c == 0)

    @property
    def name(self) -> str:
        tail = ({"": "", "out": "_tril", "lhs": "_trila"}[self.causal] + (f"_p{self.nr}" if self.nv != 3 else "")
                + (f"_r{self.mr}" if self.mr != MR else "") + ("_bf16" if self.bf16 else ""))
        return f"mxc_fma_{f'{self.batch}x' if self.batch > 1 else ''}{self.m}x{self.n}x{self.k}{tail}"

    inputs = 2  # read-only bindings: A, B (packed); C is the last

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.m // self.row_block, self.n // (self.nr * self.col_panels), self.batch

    @property
    def ks(self) -> int:
        """K steps: k (float32), or k / 2 pairs of bf16 (each a 32-bit word of A and of B's panel rows)."""
        return self.k // 2 if self.bf16 else self.k

    @property
    def kc(self) -> int:
        """The K block, in steps: B's [kc, nr] sub-panel of 32-bit words (24 KB at most) stays in L1 over the
        workgroup's row tiles."""
        ks = self.ks
        return next((d for d in range(min(ks, KC), 31, -1) if ks % d == 0), ks)

    def func(self) -> str:
        """The workgroup function: for each of its panels, K block by K block, every mr-row micro-tile of
        its rows (accumulators from zero in the first K block, from C in the others). Memref + vector ops
        (loads and stores aligned to the element: the textual llvm.load alignment does not survive
        torch-mlir's printer into IREE's parser)."""
        m, n, k, bt, kc, nv, nr, mr = self.m, self.n, self.ks, self.batch, self.kc, self.nv, self.nr, self.mr
        word = "i32" if self.bf16 else "f32"  # A's and B's 32-bit words: float32, or two bf16 of K
        mem = {"a": (f"memref<{bt * m * k}x{word}>", m * k), "b": (f"memref<{bt * n * k}x{word}>", n * k),
               "c": (f"memref<{bt * m * n}xf32>", m * n)}
        lines = kernel_prologue(self.name, [(x, t, 4 * size) for x, (t, size) in mem.items()])
        v = f"vector<{W}xf32>"
        consts = {"rowb": self.row_block, "cp": self.col_panels, "k_i": k, "n_i": n, "panel": k * nr,
                  "nr": nr, "mr": mr, "kc_i": kc, "npan": self.col_panels, "nrow": self.row_block // mr,
                  "nkb": k // kc, "one": 1, **{f"ci{i}": i for i in range(mr)}, **{f"cw{j}": j * W for j in range(nv)}}
        lines += [f"  %{name} = arith.constant {val} : index" for name, val in consts.items()]
        for x, (_, size) in mem.items():  # this batch entry's first element of each operand
            lines += [f"  %{x}sz = arith.constant {size} : index", f"  %{x}_at = arith.muli %wzi, %{x}sz : index"]
        lines += [f"  %zero = arith.constant dense<0.0> : {v}", f"  %ninf = arith.constant dense<0xFF800000> : {v}",
                  f"  %iota = arith.constant dense<[{', '.join(map(str, range(W)))}]> : vector<{W}xi32>",
                  "  %row_base = arith.muli %wgxi, %rowb : index", "  %pan_base = arith.muli %wgyi, %cp : index",
                  "  scf.for %p = %c0 to %npan step %one {",
                  "  %pan = arith.addi %pan_base, %p : index",
                  "  %boffp = arith.muli %pan, %panel : index",
                  "  %bpan = arith.addi %b_at, %boffp : index",
                  "  %ccol = arith.muli %pan, %nr : index",
                  "  %ccolb = arith.addi %c_at, %ccol : index"]
        accs = [f"%acc{i}{j}" for i in range(mr) for j in range(nv)]
        types = ", ".join([v] * len(accs))

        def micro_tiles(kb: str, first: bool) -> None:
            """Every micro-tile of the workgroup's rows over K block `kb` (an index SSA name)."""
            t = "f" if first else "n"  # SSA names unique to each copy
            lines.extend([f"  %k0{t} = arith.muli {kb}, %kc_i : index",
                          f"  %kb0{t} = arith.muli %k0{t}, %nr : index",
                          f"  %bblk{t} = arith.addi %bpan, %kb0{t} : index",
                          f"  %ablk{t} = arith.addi %a_at, %k0{t} : index",
                          f"  scf.for %r{t} = %c0 to %nrow step %one {{",
                          f"  %rr{t} = arith.muli %r{t}, %mr : index",
                          f"  %rowt{t} = arith.addi %row_base, %rr{t} : index"])
            hi = "%kc_i"  # the K loop's end in this block
            if self.causal == "lhs":  # A[i, j] = 0 for j past the tile's last row: K up to it
                lines.extend([f"  %rend{t} = arith.addi %rowt{t}, %mr : index",
                              f"  %lim{t} = arith.subi %rend{t}, %k0{t} : index",
                              f"  %lim0{t} = arith.maxsi %lim{t}, %c0 : index",
                              f"  %hi{t} = arith.minsi %lim0{t}, %kc_i : index"])
                hi = f"%hi{t}"
            elif self.causal == "out":  # a tile wholly above the diagonal: no K steps (C = 0)
                lines.extend([f"  %rlast{t} = arith.addi %rowt{t}, %ci{mr - 1} : index",
                              f"  %need{t} = arith.cmpi sle, %ccol, %rlast{t} : index",
                              f"  %hi{t} = arith.select %need{t}, %kc_i, %c0 : index"])
                hi = f"%hi{t}"
            init = []
            for i in range(mr):
                lines.extend([f"  %row{i}{t} = arith.addi %rowt{t}, %ci{i} : index",
                              f"  %aoff{i}{t}a = arith.muli %row{i}{t}, %k_i : index",
                              f"  %arow{i}{t} = arith.addi %aoff{i}{t}a, %ablk{t} : index",
                              f"  %coff{i}{t}a = arith.muli %row{i}{t}, %n_i : index",
                              f"  %crow{i}{t} = arith.addi %coff{i}{t}a, %ccolb : index"])
                for j in range(nv):
                    lines.append(f"  %cq{i}{j}{t} = arith.addi %crow{i}{t}, %cw{j} : index")
                    if first:
                        init.append("%zero")
                    else:
                        lines.append(f"  %c{i}{j}{t} = vector.load %cm[%cq{i}{j}{t}] : {mem['c'][0]}, {v}")
                        init.append(f"%c{i}{j}{t}")
            lines.append(f"  %res{t}:{len(accs)} = scf.for %kk = %c0 to {hi} step %one iter_args("
                         + ", ".join(f"{a} = {x}" for a, x in zip(accs, init)) + f") -> ({types}) {{")
            lines.extend(["    %kb = arith.muli %kk, %nr : index", f"    %brow = arith.addi %bblk{t}, %kb : index"])
            vw, vb = f"vector<{W}x{word}>", f"vector<{2 * W}xbf16>"
            for j in range(nv):
                lines.extend([f"    %bq{j} = arith.addi %brow, %cw{j} : index",
                              f"    %b{j}{'w' if self.bf16 else ''} = vector.load %bm[%bq{j}] : {mem['b'][0]}, {vw}"])
                if self.bf16:
                    lines.append(f"    %b{j} = vector.bitcast %b{j}w : {vw} to {vb}")
            new = []
            for i in range(mr):
                lines.extend([f"    %aq{i} = arith.addi %arow{i}{t}, %kk : index",
                              f"    %as{i} = memref.load %am[%aq{i}] : {mem['a'][0]}",
                              f"    %a{i}{'w' if self.bf16 else ''} = vector.broadcast %as{i} : {word} to {vw}"])
                if self.bf16:
                    lines.append(f"    %a{i} = vector.bitcast %a{i}w : {vw} to {vb}")
                for j in range(nv):
                    if self.bf16:  # acc += a[2k+1] b[2k+1] + a[2k] b[2k], lane by lane
                        lines.append(f'    %n{i}{j} = llvm.call_intrinsic "llvm.x86.avx512bf16.dpbf16ps.256"'
                                     f"(%acc{i}{j}, %a{i}, %b{j}) : ({v}, {vb}, {vb}) -> {v}")
                    else:
                        lines.append(f"    %n{i}{j} = vector.fma %a{i}, %b{j}, %acc{i}{j} : {v}")
                    new.append(f"%n{i}{j}")
            lines.extend([f"    scf.yield {', '.join(new)} : {types}", "  }"])
            if self.causal == "out":  # the causal mask itself: -inf where column > row
                for j in range(nv):  # the columns of each accumulator vector
                    lines.extend([f"  %colj{j}{t} = arith.addi %ccol, %cw{j} : index",
                                  f"  %colji{j}{t} = arith.index_cast %colj{j}{t} : index to i32",
                                  f"  %colv{j}{t}a = vector.broadcast %colji{j}{t} : i32 to vector<{W}xi32>",
                                  f"  %colv{j}{t} = arith.addi %colv{j}{t}a, %iota : vector<{W}xi32>"])
            for i in range(mr):
                if self.causal == "out":
                    lines.extend([f"  %rowi{i}{t} = arith.index_cast %row{i}{t} : index to i32",
                                  f"  %rowv{i}{t} = vector.broadcast %rowi{i}{t} : i32 to vector<{W}xi32>"])
                for j in range(nv):
                    res = f"%res{t}#{i * nv + j}"
                    if self.causal == "out":
                        lines.extend([f"  %above{i}{j}{t} = arith.cmpi sgt, %colv{j}{t}, %rowv{i}{t} : vector<{W}xi32>",
                                      f"  %masked{i}{j}{t} = arith.select %above{i}{j}{t}, %ninf, {res} : "
                                      f"vector<{W}xi1>, {v}"])
                        res = f"%masked{i}{j}{t}"
                    lines.append(f"  vector.store {res}, %cm[%cq{i}{j}{t}] : {mem['c'][0]}, {v}")
            lines.append("  }")

        micro_tiles("%c0", True)
        if k > kc:
            lines.append("  scf.for %kbi = %one to %nkb step %one {")
            micro_tiles("%kbi", False)
            lines.append("  }")
        lines += ["  }", "  return", "}"]
        return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- IR: operands and the dispatch


def b_panels(w: ir.Value, transposed: bool = False, k_to: int = 0, bf16: bool = False) -> ir.Value:
    """float32 w [(Bt,) N, K] (`transposed`: [(Bt,) K, N]) -> B packed [(Bt,) N2/nr, K2, nr] (nr = 8 x
    `panel_vectors(N)` columns; N2: N padded to nr with zeros, K2: K padded to `k_to` if larger),
    out[p, kk, j] = w[nr p + j, kk]. `bf16` (w's values exact in bf16; not transposed): bf16
    [(Bt,) N2/nr, K2/2, nr, 2] (K2 also padded to even), out[p, kk, j, t] = w[nr p + j, 2 kk + t]."""
    *bt, n, k = shape_of(w)
    if transposed:
        k, n = n, k
    nr = panel_vectors(n) * W
    n2, k = pad_to(n, nr), max(k, k_to)
    lead = list(range(len(bt)))
    o = len(bt)  # loops: (batch..., p, kk, j[, t])
    p, kk, j = o, o + 1, o + 2
    if bf16:
        if transposed:
            raise ValueError("b_panels: bf16 panels of a transposed operand are not built")
        k = pad_to(k, 2)
        wp = tensor.ExpandShapeOp(ttype([*bt, n2 // nr, nr, k // 2, 2], F32()), pad2(w, n2, k),
                                  [[d] for d in lead] + [[o, o + 1], [o + 2, o + 3]], [],
                                  [*bt, n2 // nr, nr, k // 2, 2]).result
        out = empty([*bt, n2 // nr, k // 2, nr, 2], ir.BF16Type.get())
        return generic([wp], [out], [[*lead, p, j, kk, o + 3], list(range(o + 4))], ["parallel"] * (o + 4),
                       to_bf16)[0]
    if transposed:  # w[.., kk, nr p + j]: [.., K, N2/nr, nr]
        wp = tensor.ExpandShapeOp(ttype([*bt, k, n2 // nr, nr], F32()), pad2(w, k, n2),
                                  [[d] for d in lead] + [[o], [o + 1, o + 2]], [], [*bt, k, n2 // nr, nr]).result
        in_map = [*lead, kk, p, j]
    else:  # w[.., nr p + j, kk]: [.., N2/nr, nr, K]
        wp = tensor.ExpandShapeOp(ttype([*bt, n2 // nr, nr, k], F32()), pad2(w, n2, k),
                                  [[d] for d in lead] + [[o, o + 1], [o + 2]], [], [*bt, n2 // nr, nr, k]).result
        in_map = [*lead, p, j, kk]
    out = empty([*bt, n2 // nr, k, nr], F32())
    return generic([wp], [out], [in_map, list(range(o + 3))], ["parallel"] * (o + 3), lambda x, _: [x])[0]


def _panel_shape(b: ir.Value) -> tuple[int, int, bool]:
    """(panels, nr, bf16) of a `b_panels` operand."""
    bf16 = isinstance(ir.RankedTensorType(b.type).element_type, ir.BF16Type)
    *_, panels, _, nr = shape_of(b)[:-1] if bf16 else shape_of(b)
    return panels, nr, bf16


def a_bf16(a: ir.Value, rows: int, cols: int) -> ir.Value:
    """float32 a [(Bt,) M, K] whose values are exact in bf16 -> bf16 [(Bt,) rows, cols], zero-padded (the A
    operand of an `FmaGemm(bf16=True)`)."""
    a = pad2(a, rows, cols)
    r = len(shape_of(a))
    return generic([a], [empty(shape_of(a), ir.BF16Type.get())], [list(range(r))] * 2, ["parallel"] * r,
                   to_bf16)[0]


CHUNK = 64  # the rows of one dispatch of a contraction whose row count is dynamic


def _contract_rows(a: ir.Value, b: ir.Value, n: int, kernels: dict, executable: str) -> ir.Value:
    """a [M, K] with M dynamic x B -> float32 [M, n]: an scf.for over blocks of CHUNK rows, each one
    dispatch of the static FmaGemm(CHUNK, N2, K) on the block zero-padded to CHUNK rows."""
    m, k = shape_of(a)
    panels, nr, bf16 = _panel_shape(b)
    k = pad_to(k, 2) if bf16 else k
    g = FmaGemm(CHUNK, panels * nr, k, 1, "", nr // W, bf16, micro_rows(CHUNK, bf16))
    kernels.setdefault(g.name, g)
    idx = ir.IndexType.get()
    c0, chunk = arith.ConstantOp(idx, 0).result, arith.ConstantOp(idx, CHUNK).result
    loop = scf.ForOp(c0, m, chunk, [empty([m, n], F32())])
    with ir.InsertionPoint(loop.body):
        i, acc = loop.induction_variable, loop.inner_iter_args[0]
        rows = arith.MinSIOp(chunk, arith.SubIOp(m, i).result).result
        block = tensor.ExtractSliceOp(ttype([DYN, k], F32()), a, [i], [rows], [], [DYN, 0], [DYN, k], [1, 1]).result
        block = a_bf16(block, CHUNK, k) if bf16 else pad2(block, CHUNK, k)
        c = dispatch(g, [block, b], [CHUNK, panels * nr], [CHUNK, n], executable)
        c = tensor.ExtractSliceOp(ttype([DYN, n], F32()), c, [], [rows], [], [0, 0], [DYN, n], [1, 1]).result
        acc = tensor.InsertSliceOp(c, acc, [i], [rows], [], [DYN, 0], [DYN, n], [1, 1]).result
        scf.YieldOp([acc])
    return loop.results[0]


def contract(a: ir.Value, b: ir.Value, n: int, kernels: dict, executable: str = EXECUTABLE,
             causal: str = "", padded: bool = False) -> ir.Value:
    """a [(Bt,) M, K] x B (`b_panels`) -> float32 [(Bt,) M, n] (`padded`: the whole [(Bt,) M2, N2]), one
    dispatch of `executable`'s kernel (`causal`: FmaGemm's; bf16 panels: the bf16 dot kernel, a's values
    exact in bf16); a dynamic M (2-D a): `_contract_rows`."""
    if not ir.RankedTensorType(a.type).has_static_shape:
        return _contract_rows(a, b, n, kernels, executable)
    *bt, m, k = shape_of(a)
    panels, nr, bf16 = _panel_shape(b)
    mr = micro_rows(m, bf16)
    m2, n2, k2 = pad_to(m, mr), panels * nr, pad_to(k, 2) if bf16 else k
    g = FmaGemm(m2, n2, k2, bt[0] if bt else 1, causal, nr // W, bf16, mr)
    kernels.setdefault(g.name, g)
    full = [*bt, m2, n2]
    a = a_bf16(a, m2, k2) if bf16 else pad2(a, m2, k)
    return dispatch(g, [a, b], full, full if padded else [*bt, m, n], executable)


def causal_softmax(scores: ir.Value, kernels: dict, executable: str = EXECUTABLE) -> ir.Value:
    """softmax over the last dim of causal scores [Bt, M2, N2] (FmaGemm causal="out": -inf past the
    diagonal), one dispatch of `FmaSoftmax`; row i is written up to column i + 3 (rounded up to a vector),
    which is all that a causal="lhs" product reads."""
    bt, m2, n2 = shape_of(scores)
    g = FmaSoftmax(m2, n2, bt)
    kernels.setdefault(g.name, g)
    return dispatch(g, [scores], [bt, m2, n2], [bt, m2, n2], executable)


# exp(x) = 2^n * p(r), n = round(x log2 e), r = x - n ln 2 (ln 2 in two parts), p Cephes' expf polynomial
_LOG2E, _LN2_HI, _LN2_LO = 1.44269504088896341, 0.693359375, -2.12194440e-4
_EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
_EXP_MIN = -87.3  # below: 0 (2^n stays a normal float32 down to here)


@dataclasses.dataclass(frozen=True)
class FmaSoftmax:
    """P[b, i, :] = softmax(S[b, i, :]) for causal scores (-inf past the diagonal), in float32 vectors:
    per row the max, exp(x - max) and their sum, then the scale by 1 / sum; only the first
    ceil((i + 4) / 8) vectors of row i (what a causal product reads), the rest of P left unwritten. A row
    whose scores are all -inf gives 0. exp: range reduction by ln 2 and a degree-6 polynomial (Cephes'
    expf, within 2 ulp), x < -87.3 gives 0."""

    m: int
    n: int
    batch: int = 1
    inputs = 1

    def __post_init__(self):
        if self.m % MR or self.n % W or self.batch < 1:
            raise ValueError(f"FmaSoftmax needs m a multiple of {MR} and n of {W}: {self}")

    @property
    def row_block(self) -> int:
        return next(r for r in (32, 16, 8, 4) if self.m % r == 0)

    @property
    def name(self) -> str:
        return f"mxc_fma_softmax_{self.batch}x{self.m}x{self.n}_tril"

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.m // self.row_block, 1, self.batch

    def func(self) -> str:
        m, n, bt = self.m, self.n, self.batch
        mem = f"memref<{bt * m * n}xf32>"
        lines = kernel_prologue(self.name, [("s", mem, 4 * m * n), ("p", mem, 4 * m * n)])
        consts = {"rowb": self.row_block, "n_i": n, "one": 1, "mn": m * n}
        lines += [f"  %{name} = arith.constant {val} : index" for name, val in consts.items()]
        lines += _softmax_consts(n)
        lines += ["  %at = arith.muli %wzi, %mn : index", "  %row_base = arith.muli %wgxi, %rowb : index",
                  "  scf.for %r = %c0 to %rowb step %one {",
                  "  %row = arith.addi %row_base, %r : index",
                  "  %roff = arith.muli %row, %n_i : index",
                  "  %base = arith.addi %at, %roff : index"]
        lines += _softmax_row("%sm", "%pm", mem, mem, "%base", "%base", "%row")
        lines += ["  }", "  return", "}"]
        return "\n".join(lines) + "\n"


def _softmax_consts(n: int) -> list[str]:
    """The constants `_softmax_row` reads (n: the scores' row length, a multiple of W)."""
    v, vi = f"vector<{W}xf32>", f"vector<{W}xi32>"
    lines = [f"  %sm_{name} = arith.constant {val} : index" for name, val in
             {"w": W, "nv": n // W, "pad": MR + W - 1, "one": 1}.items()]
    lines += [f"  %sm_ninf = arith.constant dense<0xFF800000> : {v}", f"  %sm_zero = arith.constant dense<0.0> : {v}",
              "  %sm_ninf_s = arith.constant 0xFF800000 : f32", "  %sm_zero_s = arith.constant 0.0 : f32",
              "  %sm_one_s = arith.constant 1.0 : f32", f"  %sm_bias = arith.constant dense<127> : {vi}",
              f"  %sm_sh = arith.constant dense<23> : {vi}"]
    for name, val in (("log2e", _LOG2E), ("ln2hi", _LN2_HI), ("ln2lo", _LN2_LO), ("half", 0.5),
                      ("onev", 1.0), ("xmin", _EXP_MIN)):
        lines.append(f"  %sm_{name} = arith.constant dense<{val!r}> : {v}")
    lines += [f"  %sm_p{i} = arith.constant dense<{c!r}> : {v}" for i, c in enumerate(_EXP_P)]
    return lines


def _softmax_row(src: str, dst: str, src_t: str, dst_t: str, sbase: str, dbase: str, row: str) -> list[str]:
    """Lines of one causal row's softmax (FmaSoftmax's): the scores at src[sbase ..] (row `row` of the
    causal product: -inf past column `row`), the probabilities to dst[dbase ..], each only in the first
    ceil((row + 4) / 8) vectors; `_softmax_consts` before. Nested in a loop body (names `%sm_..` local)."""
    v, vi = f"vector<{W}xf32>", f"vector<{W}xi32>"
    lines = [f"  %sm_lim = arith.addi {row}, %sm_pad : index",  # vectors covering columns 0 .. row + 3
             "  %sm_nvr = arith.divui %sm_lim, %sm_w : index",
             "  %sm_nvrow = arith.minui %sm_nvr, %sm_nv : index",
             f"  %sm_mx = scf.for %j = %c0 to %sm_nvrow step %sm_one iter_args(%acc = %sm_ninf) -> ({v}) {{",
             "    %jw = arith.muli %j, %sm_w : index", f"    %ix = arith.addi {sbase}, %jw : index",
             f"    %x = vector.load {src}[%ix] : {src_t}, {v}",
             f"    %gt = arith.cmpf ogt, %x, %acc : {v}",
             f"    %nacc = arith.select %gt, %x, %acc : vector<{W}xi1>, {v}",
             f"    scf.yield %nacc : {v}", "  }",
             f"  %sm_mxr = vector.reduction <maxnumf>, %sm_mx : {v} into f32",
             "  %sm_allinf = arith.cmpf oeq, %sm_mxr, %sm_ninf_s : f32",
             "  %sm_mxs = arith.select %sm_allinf, %sm_zero_s, %sm_mxr : f32",
             f"  %sm_mxb = vector.broadcast %sm_mxs : f32 to {v}",
             f"  %sm_sum = scf.for %j = %c0 to %sm_nvrow step %sm_one iter_args(%acc = %sm_zero) -> ({v}) {{",
             "    %jw = arith.muli %j, %sm_w : index", f"    %ix = arith.addi {sbase}, %jw : index",
             f"    %ox = arith.addi {dbase}, %jw : index",
             f"    %x0 = vector.load {src}[%ix] : {src_t}, {v}",
             f"    %x = arith.subf %x0, %sm_mxb : {v}",
             f"    %low = arith.cmpf olt, %x, %sm_xmin : {v}",
             f"    %xc = arith.select %low, %sm_xmin, %x : vector<{W}xi1>, {v}",
             f"    %t = arith.mulf %xc, %sm_log2e : {v}",
             f"    %th = arith.addf %t, %sm_half : {v}",
             f"    %nf = math.floor %th : {v}",
             f"    %a1 = arith.mulf %nf, %sm_ln2hi : {v}", f"    %r1 = arith.subf %xc, %a1 : {v}",
             f"    %a2 = arith.mulf %nf, %sm_ln2lo : {v}", f"    %rr = arith.subf %r1, %a2 : {v}",
             f"    %q0 = arith.mulf %sm_p0, %rr : {v}"]
    prev = "q0"
    for i in range(1, len(_EXP_P)):
        lines += [f"    %q{i}a = arith.addf %{prev}, %sm_p{i} : {v}", f"    %q{i} = arith.mulf %q{i}a, %rr : {v}"]
        prev = f"q{i}"
    # p = q * r + r + 1 (q holds the polynomial times r: (..) r^2 overall)
    lines += [f"    %qr = arith.mulf %{prev}, %rr : {v}", f"    %pr = arith.addf %qr, %rr : {v}",
              f"    %pp = arith.addf %pr, %sm_onev : {v}",
              f"    %ni = arith.fptosi %nf : {v} to {vi}", f"    %nb = arith.addi %ni, %sm_bias : {vi}",
              f"    %ns = arith.shli %nb, %sm_sh : {vi}", f"    %scale = arith.bitcast %ns : {vi} to {v}",
              f"    %e0 = arith.mulf %pp, %scale : {v}",
              f"    %e = arith.select %low, %sm_zero, %e0 : vector<{W}xi1>, {v}",
              f"    vector.store %e, {dst}[%ox] : {dst_t}, {v}",
              f"    %nacc = arith.addf %acc, %e : {v}",
              f"    scf.yield %nacc : {v}", "  }",
              f"  %sm_tot = vector.reduction <add>, %sm_sum : {v} into f32",
              "  %sm_pos = arith.cmpf ogt, %sm_tot, %sm_zero_s : f32",
              "  %sm_inv0 = arith.divf %sm_one_s, %sm_tot : f32",
              "  %sm_inv = arith.select %sm_pos, %sm_inv0, %sm_zero_s : f32",
              f"  %sm_invb = vector.broadcast %sm_inv : f32 to {v}",
              "  scf.for %j = %c0 to %sm_nvrow step %sm_one {",
              "    %jw = arith.muli %j, %sm_w : index", f"    %ox = arith.addi {dbase}, %jw : index",
              f"    %e = vector.load {dst}[%ox] : {dst_t}, {v}",
              f"    %y = arith.mulf %e, %sm_invb : {v}",
              f"    vector.store %y, {dst}[%ox] : {dst_t}, {v}", "  }"]
    return lines


ATTN_ROWS = 8  # query rows per workgroup of FmaCausalAttention (its scores: 8 x S2 float32 on the stack)
STACK_LIMIT = 32768  # bytes: IREE's llvm-cpu limit on a dispatch's stack allocations (its default)


@dataclasses.dataclass(frozen=True)
class FmaCausalAttention:
    """O[b] = softmax(causal(Q[b] . K[b]^T)) . V[b] in one dispatch, the three kernels of the unfused causal
    path (FmaGemm(causal="out"), FmaSoftmax, FmaGemm(causal="lhs")) run per block of `rows` query rows with
    the block's scores in a stack buffer (rows x s floats, in L1) instead of a [B, M, S] tensor in memory:
    the same operations in the same order, so the same bits, without writing and reading the scores
    (SmolLM2 at 512 tokens: 9 x 512 x 528 floats per layer, three passes). Q [b, m, e] (scaled), K packed
    [b, s/nrk, e, nrk] (`b_panels`), V packed [b, ev/nrv, s, nrv] (`b_panels(transposed, k_to=s)`); m a
    multiple of `rows`, s of nrk (and of W), ev of nrv; O [b, m, ev]."""

    m: int
    s: int
    e: int
    ev: int
    batch: int = 1
    nvk: int = 3  # vectors per row of the keys' panels (nrk = 8 nvk)
    nvv: int = 3  # of the values'
    rows: int = ATTN_ROWS
    inputs = 3

    def __post_init__(self):
        if (self.m % self.rows or self.rows % MR or self.s % (8 * self.nvk) or self.ev % (8 * self.nvv)
                or self.e < 1 or self.batch < 1 or 4 * self.rows * self.s > STACK_LIMIT):
            raise ValueError(f"FmaCausalAttention needs m a multiple of rows (a multiple of {MR}), s of 8 nvk, ev "
                             f"of 8 nvv and rows x s floats within {STACK_LIMIT} bytes: {self}")

    @property
    def name(self) -> str:
        tail = "".join(f"_{x}{8 * nv}" for x, nv in (("k", self.nvk), ("v", self.nvv)) if nv != 3)
        return f"mxc_fma_attn_{self.batch}x{self.m}x{self.s}x{self.e}x{self.ev}_tril{tail}"

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.m // self.rows, 1, self.batch

    def func(self) -> str:
        m, s, e, ev, bt, rows = self.m, self.s, self.e, self.ev, self.batch, self.rows
        nrk, nrv = 8 * self.nvk, 8 * self.nvv
        mem = {"q": (f"memref<{bt * m * e}xf32>", m * e), "k": (f"memref<{bt * s * e}xf32>", s * e),
               "v": (f"memref<{bt * s * ev}xf32>", s * ev), "o": (f"memref<{bt * m * ev}xf32>", m * ev)}
        lines = kernel_prologue(self.name, [(x, t, 4 * size) for x, (t, size) in mem.items()])
        v = f"vector<{W}xf32>"
        scratch = f"memref<{rows * s}xf32>"
        consts = {"rowb": rows, "e_i": e, "s_i": s, "ev_i": ev, "nrk": nrk, "nrv": nrv, "kpanel": e * nrk,
                  "vpanel": s * nrv, "npk": s // nrk, "npv": ev // nrv, "mr": MR, "nrow": rows // MR, "one": 1,
                  **{f"ci{i}": i for i in range(MR)}, **{f"cw{j}": j * W for j in range(max(self.nvk, self.nvv))}}
        lines += [f"  %{name} = arith.constant {val} : index" for name, val in consts.items()]
        for x, (_, size) in mem.items():
            lines += [f"  %{x}sz = arith.constant {size} : index", f"  %{x}_at = arith.muli %wzi, %{x}sz : index"]
        lines += [f"  %zero = arith.constant dense<0.0> : {v}", f"  %ninf = arith.constant dense<0xFF800000> : {v}",
                  f"  %iota = arith.constant dense<[{', '.join(map(str, range(W)))}]> : vector<{W}xi32>",
                  f"  %sc = memref.alloca() : {scratch}",
                  "  %row_base = arith.muli %wgxi, %rowb : index"]
        lines += _softmax_consts(s)

        def tile(tag: str, nv: str, a_mem: str, a_t: str, arow, b_mem: str, b_t: str, bpan: str, hi: str,
                 init_zero: bool = True) -> list[str]:
            """The micro-tile loop: MR rows (A's row starts `arow(i)`), nv vectors of B's panel at `bpan`, K
            from 0 to `hi`; returns lines, the results named %{tag}res#.."""
            nvn = int(nv)
            accs = [f"%{tag}acc{i}{j}" for i in range(MR) for j in range(nvn)]
            types = ", ".join([v] * len(accs))
            out = [f"  %{tag}res:{len(accs)} = scf.for %kk = %c0 to {hi} step %one iter_args("
                   + ", ".join(f"{a} = %zero" for a in accs) + f") -> ({types}) {{",
                   f"    %kb = arith.muli %kk, %{'nrk' if tag == 's' else 'nrv'} : index",
                   f"    %brow = arith.addi {bpan}, %kb : index"]
            for j in range(nvn):
                out += [f"    %bq{j} = arith.addi %brow, %cw{j} : index",
                        f"    %b{j} = vector.load {b_mem}[%bq{j}] : {b_t}, {v}"]
            new = []
            for i in range(MR):
                out += [f"    %aq{i} = arith.addi {arow(i)}, %kk : index",
                        f"    %as{i} = memref.load {a_mem}[%aq{i}] : {a_t}",
                        f"    %a{i} = vector.broadcast %as{i} : f32 to {v}"]
                for j in range(nvn):
                    out.append(f"    %n{i}{j} = vector.fma %a{i}, %b{j}, %{tag}acc{i}{j} : {v}")
                    new.append(f"%n{i}{j}")
            out += [f"    scf.yield {', '.join(new)} : {types}", "  }"]
            return out

        # 1. the scores of the block's rows, q . k^T with the causal mask (FmaGemm causal="out", one K block)
        lines += ["  scf.for %r = %c0 to %nrow step %one {",
                  "  %rr = arith.muli %r, %mr : index",
                  "  %rowt = arith.addi %row_base, %rr : index",
                  f"  %rlast = arith.addi %rowt, %ci{MR - 1} : index"]
        for i in range(MR):
            lines += [f"  %row{i} = arith.addi %rowt, %ci{i} : index",
                      f"  %aoff{i} = arith.muli %row{i}, %e_i : index",
                      f"  %arow{i} = arith.addi %aoff{i}, %q_at : index",
                      f"  %lrow{i} = arith.addi %rr, %ci{i} : index",
                      f"  %soff{i} = arith.muli %lrow{i}, %s_i : index",
                      f"  %rowi{i} = arith.index_cast %row{i} : index to i32",
                      f"  %rowv{i} = vector.broadcast %rowi{i} : i32 to vector<{W}xi32>"]
        lines += ["  scf.for %p = %c0 to %npk step %one {",
                  "  %boffp = arith.muli %p, %kpanel : index",
                  "  %bpan = arith.addi %k_at, %boffp : index",
                  "  %ccol = arith.muli %p, %nrk : index",
                  "  %need = arith.cmpi sle, %ccol, %rlast : index",
                  "  %hi = arith.select %need, %e_i, %c0 : index"]
        lines += tile("s", str(self.nvk), "%qm", mem["q"][0], lambda i: f"%arow{i}", "%km", mem["k"][0], "%bpan",
                      "%hi")
        for j in range(self.nvk):
            lines += [f"  %colj{j} = arith.addi %ccol, %cw{j} : index",
                      f"  %colji{j} = arith.index_cast %colj{j} : index to i32",
                      f"  %colv{j}a = vector.broadcast %colji{j} : i32 to vector<{W}xi32>",
                      f"  %colv{j} = arith.addi %colv{j}a, %iota : vector<{W}xi32>"]
        for i in range(MR):
            for j in range(self.nvk):
                lines += [f"  %above{i}{j} = arith.cmpi sgt, %colv{j}, %rowv{i} : vector<{W}xi32>",
                          f"  %masked{i}{j} = arith.select %above{i}{j}, %ninf, %sres#{i * self.nvk + j} : "
                          f"vector<{W}xi1>, {v}",
                          f"  %sq{i}{j}a = arith.addi %soff{i}, %ccol : index",
                          f"  %sq{i}{j} = arith.addi %sq{i}{j}a, %cw{j} : index",
                          f"  vector.store %masked{i}{j}, %sc[%sq{i}{j}] : {scratch}, {v}"]
        lines += ["  }", "  }"]
        # 2. each row's softmax, in place in the stack buffer (FmaSoftmax's operations)
        lines += ["  scf.for %xr = %c0 to %rowb step %one {",
                  "  %xrow = arith.addi %row_base, %xr : index",
                  "  %xbase = arith.muli %xr, %s_i : index"]
        lines += _softmax_row("%sc", "%sc", scratch, scratch, "%xbase", "%xbase", "%xrow")
        lines += ["  }"]
        # 3. the probabilities times the values (FmaGemm causal="lhs": each tile's K up to its last row)
        lines += ["  scf.for %vr = %c0 to %nrow step %one {",
                  "  %vrr = arith.muli %vr, %mr : index",
                  "  %vrowt = arith.addi %row_base, %vrr : index",
                  "  %vrend = arith.addi %vrowt, %mr : index",
                  "  %vhi = arith.minsi %vrend, %s_i : index"]
        for i in range(MR):
            lines += [f"  %vl{i} = arith.addi %vrr, %ci{i} : index",
                      f"  %varow{i} = arith.muli %vl{i}, %s_i : index",
                      f"  %vrow{i} = arith.addi %vrowt, %ci{i} : index",
                      f"  %voff{i} = arith.muli %vrow{i}, %ev_i : index",
                      f"  %vorow{i} = arith.addi %voff{i}, %o_at : index"]
        lines += ["  scf.for %pv = %c0 to %npv step %one {",
                  "  %vboff = arith.muli %pv, %vpanel : index",
                  "  %vbpan = arith.addi %v_at, %vboff : index",
                  "  %vcol = arith.muli %pv, %nrv : index"]
        lines += tile("v", str(self.nvv), "%sc", scratch, lambda i: f"%varow{i}", "%vm", mem["v"][0], "%vbpan",
                      "%vhi")
        for i in range(MR):
            for j in range(self.nvv):
                lines += [f"  %oq{i}{j}a = arith.addi %vorow{i}, %vcol : index",
                          f"  %oq{i}{j} = arith.addi %oq{i}{j}a, %cw{j} : index",
                          f"  vector.store %vres#{i * self.nvv + j}, %om[%oq{i}{j}] : {mem['o'][0]}, {v}"]
        lines += ["  }", "  }", "  return", "}"]
        return "\n".join(lines) + "\n"


def causal_attention(q: ir.Value, k: ir.Value, v: ir.Value, kernels: dict, executable: str) -> ir.Value | None:
    """softmax(causal(q . k^T)) . v for q [Bt, L, E] (already scaled), k [Bt, S, E], v [Bt, S, Ev] (float32,
    L <= S) -> [Bt, L, Ev], one dispatch of `FmaCausalAttention`; None where its block of scores would not fit
    the stack limit (long sequences: the caller keeps the three-kernel path)."""
    bt, l_, _ = shape_of(q)
    s_ = shape_of(k)[1]
    nrk = panel_vectors(s_) * W  # the keys' panels (b_panels), known before any IR is built
    s2 = pad_to(s_, nrk)
    rows = next((r for r in (ATTN_ROWS, MR) if 4 * r * s2 <= STACK_LIMIT), None)
    if rows is None:
        return None
    kp, vp = b_panels(k), b_panels(v, transposed=True, k_to=s2)
    _, npv, _, nrv = shape_of(vp)
    ev = shape_of(v)[2]
    m2 = pad_to(l_, rows)
    g = FmaCausalAttention(m2, s2, shape_of(q)[2], npv * nrv, bt, nrk // W, nrv // W, rows)
    kernels.setdefault(g.name, g)
    return dispatch(g, [pad2(q, m2, shape_of(q)[2]), kp, vp], [bt, m2, npv * nrv], [bt, l_, ev], executable)
