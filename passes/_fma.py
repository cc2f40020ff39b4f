"""Packed float32 GEMM kernels for the CPU target's contractions (`contraction=fma`, any x86-64 with AVX2+FMA).

IREE's llvm-cpu code for a float32 matmul ran at 50-70 GFLOP/s on the two cores of an AMD EPYC (Zen 4)
test machine, where torch (MKL) gets 80-106 and the FMA units ~165 (measured in README "Measurements"):
its 8 x 16 register tile spills and its matmul with a [N, K] weight reduces along the vector. This kernel is
the classic register-blocked micro-kernel instead: C[M, N] = A[M, K] . B[N, K]^T with B packed in panels of
NR = 24 columns, [N/24, K, 24] (hoisted to load time for a constant weight, like every weight decode), and
each micro-tile of MR = 4 rows x 24 columns held in 12 vector registers over all of K: per K step three
loads of B, four broadcasts of A and twelve fused multiply-adds (`llvm.intr.fma` on vector<8xf32>).

Every product and sum is a float32 operation of the contraction; what differs from IREE's float32
contraction is the order of the sums and that a*b+c rounds once (as torch's MKL kernels do), within the
float32 accumulation-order tolerance every lowering is tested to.

A workgroup takes `row_block` rows (workgroup x, so consecutive workgroups read the same B panels from the
cache) and `col_panels` panels of 24 columns (workgroup y), a batch entry per workgroup z. M is padded to a
multiple of MR and N to a multiple of NR with zeros (`pad2`); K is any size.
"""

from __future__ import annotations

import dataclasses

from torch_mlir import ir
from torch_mlir.dialects import tensor

from ._amx import dispatch, kernel_prologue, pad2
from ._linalg import F32, empty, generic, shape_of, ttype

W = 8  # float32 lanes of a vector (ymm)
MR, NR = 4, 3 * W  # a micro-tile: 4 rows x 24 columns, 12 accumulators
KC = 256  # the largest K block
EXECUTABLE = "mxc_fma"


def pad_to(v: int, m: int) -> int:
    return -(-v // m) * m


@dataclasses.dataclass(frozen=True)
class FmaGemm:
    """C[m, n] = A[m, k] . B^T with B packed [n/NR, k, NR]; m a multiple of MR, n of NR."""

    m: int
    n: int
    k: int
    batch: int = 1  # independent GEMMs of these shapes, operands stacked (workgroup z)

    def __post_init__(self):
        if self.m % MR or self.n % NR or self.k < 1 or self.batch < 1:
            raise ValueError(f"FmaGemm needs m a multiple of {MR}, n of {NR}: {self}")

    @property
    def row_block(self) -> int:
        return next(r for r in (64, 32, 16, 8, 4) if self.m % r == 0)

    @property
    def col_panels(self) -> int:
        return next(c for c in (4, 3, 2, 1) if (self.n // NR) % c == 0)

    @property
    def name(self) -> str:
        return f"mxc_fma_{f'{self.batch}x' if self.batch > 1 else ''}{self.m}x{self.n}x{self.k}"

    inputs = 2  # read-only bindings: A, B (packed); C is the last

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.m // self.row_block, self.n // (NR * self.col_panels), self.batch

    @property
    def kc(self) -> int:
        """The K block: B's [kc, 24] sub-panel (24 KB at most) stays in L1 over the workgroup's row tiles."""
        return next((d for d in range(min(self.k, KC), 31, -1) if self.k % d == 0), self.k)

    def func(self) -> str:
        """The workgroup function: for each of its panels, K block by K block, every 4-row micro-tile of
        its rows (accumulators from zero in the first K block, from C in the others). Memref + vector ops
        (loads and stores aligned to the element: the textual llvm.load alignment does not survive
        torch-mlir's printer into IREE's parser)."""
        m, n, k, bt, kc = self.m, self.n, self.k, self.batch, self.kc
        mem = {"a": (f"memref<{bt * m * k}xf32>", m * k), "b": (f"memref<{bt * n * k}xf32>", n * k),
               "c": (f"memref<{bt * m * n}xf32>", m * n)}
        lines = kernel_prologue(self.name, [(x, t, 4 * size) for x, (t, size) in mem.items()])
        v = f"vector<{W}xf32>"
        consts = {"rowb": self.row_block, "cp": self.col_panels, "k_i": k, "n_i": n, "panel": k * NR,
                  "nr": NR, "mr": MR, "kc_i": kc, "npan": self.col_panels, "nrow": self.row_block // MR,
                  "nkb": k // kc, "one": 1, **{f"ci{i}": i for i in range(MR)}, **{f"cw{j}": j * W for j in range(3)}}
        lines += [f"  %{name} = arith.constant {val} : index" for name, val in consts.items()]
        for x, (_, size) in mem.items():  # this batch entry's first element of each operand
            lines += [f"  %{x}sz = arith.constant {size} : index", f"  %{x}_at = arith.muli %wzi, %{x}sz : index"]
        lines += [f"  %zero = arith.constant dense<0.0> : {v}",
                  "  %row_base = arith.muli %wgxi, %rowb : index", "  %pan_base = arith.muli %wgyi, %cp : index",
                  "  scf.for %p = %c0 to %npan step %one {",
                  "  %pan = arith.addi %pan_base, %p : index",
                  "  %boffp = arith.muli %pan, %panel : index",
                  "  %bpan = arith.addi %b_at, %boffp : index",
                  "  %ccol = arith.muli %pan, %nr : index",
                  "  %ccolb = arith.addi %c_at, %ccol : index"]
        accs = [f"%acc{i}{j}" for i in range(MR) for j in range(3)]
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
            init = []
            for i in range(MR):
                lines.extend([f"  %row{i}{t} = arith.addi %rowt{t}, %ci{i} : index",
                              f"  %aoff{i}{t}a = arith.muli %row{i}{t}, %k_i : index",
                              f"  %arow{i}{t} = arith.addi %aoff{i}{t}a, %ablk{t} : index",
                              f"  %coff{i}{t}a = arith.muli %row{i}{t}, %n_i : index",
                              f"  %crow{i}{t} = arith.addi %coff{i}{t}a, %ccolb : index"])
                for j in range(3):
                    lines.append(f"  %cq{i}{j}{t} = arith.addi %crow{i}{t}, %cw{j} : index")
                    if first:
                        init.append("%zero")
                    else:
                        lines.append(f"  %c{i}{j}{t} = vector.load %cm[%cq{i}{j}{t}] : {mem['c'][0]}, {v}")
                        init.append(f"%c{i}{j}{t}")
            lines.append(f"  %res{t}:{len(accs)} = scf.for %kk = %c0 to %kc_i step %one iter_args("
                         + ", ".join(f"{a} = {x}" for a, x in zip(accs, init)) + f") -> ({types}) {{")
            lines.extend(["    %kb = arith.muli %kk, %nr : index", f"    %brow = arith.addi %bblk{t}, %kb : index"])
            for j in range(3):
                lines.extend([f"    %bq{j} = arith.addi %brow, %cw{j} : index",
                              f"    %b{j} = vector.load %bm[%bq{j}] : {mem['b'][0]}, {v}"])
            new = []
            for i in range(MR):
                lines.extend([f"    %aq{i} = arith.addi %arow{i}{t}, %kk : index",
                              f"    %as{i} = memref.load %am[%aq{i}] : {mem['a'][0]}",
                              f"    %a{i} = vector.broadcast %as{i} : f32 to {v}"])
                for j in range(3):
                    lines.append(f"    %n{i}{j} = vector.fma %a{i}, %b{j}, %acc{i}{j} : {v}")
                    new.append(f"%n{i}{j}")
            lines.extend([f"    scf.yield {', '.join(new)} : {types}", "  }"])
            for i in range(MR):
                for j in range(3):
                    lines.append(f"  vector.store %res{t}#{i * 3 + j}, %cm[%cq{i}{j}{t}] : {mem['c'][0]}, {v}")
            lines.append("  }")

        micro_tiles("%c0", True)
        if k > kc:
            lines.append("  scf.for %kbi = %one to %nkb step %one {")
            micro_tiles("%kbi", False)
            lines.append("  }")
        lines += ["  }", "  return", "}"]
        return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- IR: operands and the dispatch


def b_panels(w: ir.Value, transposed: bool = False) -> ir.Value:
    """float32 w [(Bt,) N, K] (`transposed`: [(Bt,) K, N]) -> B packed [(Bt,) N2/NR, K, NR] (N2: N padded to
    NR with zeros), out[p, kk, j] = w[NR p + j, kk]."""
    *bt, n, k = shape_of(w)
    if transposed:
        k, n = n, k
    n2 = pad_to(n, NR)
    lead = list(range(len(bt)))
    o = len(bt)  # loops: (batch..., p, kk, j)
    p, kk, j = o, o + 1, o + 2
    if transposed:  # w[.., kk, NR p + j]: [.., K, N2/NR, NR]
        wp = tensor.ExpandShapeOp(ttype([*bt, k, n2 // NR, NR], F32()), pad2(w, k, n2),
                                  [[d] for d in lead] + [[o], [o + 1, o + 2]], [], [*bt, k, n2 // NR, NR]).result
        in_map = [*lead, kk, p, j]
    else:  # w[.., NR p + j, kk]: [.., N2/NR, NR, K]
        wp = tensor.ExpandShapeOp(ttype([*bt, n2 // NR, NR, k], F32()), pad2(w, n2, k),
                                  [[d] for d in lead] + [[o, o + 1], [o + 2]], [], [*bt, n2 // NR, NR, k]).result
        in_map = [*lead, p, j, kk]
    out = empty([*bt, n2 // NR, k, NR], F32())
    return generic([wp], [out], [in_map, list(range(o + 3))], ["parallel"] * (o + 3), lambda x, _: [x])[0]


def contract(a: ir.Value, b: ir.Value, n: int, kernels: dict, executable: str = EXECUTABLE) -> ir.Value:
    """a [(Bt,) M, K] x B (`b_panels`) -> float32 [(Bt,) M, n], one dispatch of `executable`'s kernel."""
    *bt, m, k = shape_of(a)
    m2, n2 = pad_to(m, MR), shape_of(b)[len(bt)] * NR
    g = FmaGemm(m2, n2, k, bt[0] if bt else 1)
    kernels.setdefault(g.name, g)
    return dispatch(g, [pad2(a, m2, k), b], [*bt, m2, n2], [*bt, m, n], executable)
