"""The kernel launches of one layer: which buffers each kernel reads and writes, its constants.

One function for everything that runs a layer's kernels: lower-mxq-to-cuda turns each Launch
into a `flow.dispatch`, the GPU runner (`mxc.runtime.cuda`) into a `cuLaunchKernel`. Buffers are
named as the kinds name them (`kinds.py`): the layer provides `x`, `w`, `w_scales`,
`w_tensor_scale` and `bias` (for the block-scaled skeleton's GEMMs, `w` and `w_scales` are the
weights re-packed into the layout `weight_layout` names), and the last launch writes `y`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kinds import EPILOGUES, Kernel
from .operands import INT, WeightLayout


@dataclass(frozen=True)
class Output:
    """A buffer a launch writes: name, shape (a size may be an IR value: a dynamic row count), element type
    ('f32', 'bf16', 'i8')."""

    name: str
    shape: tuple
    dtype: str


@dataclass(frozen=True)
class Launch:
    """One kernel launch of a layer: the buffers it reads (by name, binding order), the buffers
    it writes, its i32 constants and its grid."""

    kernel: Kernel
    reads: tuple[str, ...]
    writes: tuple[Output, ...]
    constants: tuple
    grid: tuple


def gemm_kernel(ks: list[Kernel]) -> Kernel | None:
    """The layer's GEMM: the kernel that reads the weights `w` (decs before its dsum, rdec after tilea)."""
    return next((k for k in ks if any(b.name == "w" for b in k.bindings())), None)


def layer_path(ks: list[Kernel]) -> str:
    """How a layer runs, in words (`mxq.path`, the manifest's `path`): its GEMM's path (rdec's before a
    dsum, which adds its K split), prefixed by what tileq does to the activations."""
    main = next((k for k in reversed(ks) if k.path and k.kind != "dsum"), ks[-1])
    path = main.path or ""
    if main is not ks[-1] and ks[-1].kind == "dsum":
        path += ", K split across CTAs (dsum adds the partial sums)"
    if ks[0].kind == "tileq":
        path = (f"{ks[0].a_format} activations quantized, held as bf16 tiles (exact); "
                + path.removeprefix("decode: "))
    return path


def weight_layout(ks: list[Kernel]) -> WeightLayout | None:
    """The layout the layer's GEMM reads its weights in, or None when it reads them as stored."""
    return gemm_kernel(ks).weight_layout()


def layer_launches(ks: list[Kernel], m, n: int, k: int, epilogue: str = "none", ops=INT) -> list[Launch]:
    """The launches of a layer [m, k] x [n, k]^T whose kernels (a target's selection) are `ks`; `ops` the
    arithmetic of sizes and grids (lower-mxq-to-cuda's IR ops where m is a dynamic row count)."""
    values = {"M": m, "N": n, "K": k, "epi": EPILOGUES[epilogue]}
    launches, have = [], {"x", "w", "w_scales", "w_tensor_scale", "bias"}
    for kern in ks:
        reads = tuple(b.name for b in kern.bindings() if not b.writes)
        missing = [r for r in reads if r not in have]
        if missing:
            raise ValueError(f"{kern.name} reads {missing}, which no earlier kernel of {[x.name for x in ks]} writes")
        shapes = kern.outputs(m, n, k, ops)
        writes = tuple(Output(b.name, tuple(shapes[b.name]), b.dtype) for b in kern.bindings() if b.writes)
        have |= {o.name for o in writes}
        consts = tuple(values[c] for c in kern.constants())
        launches.append(Launch(kern, reads, writes, consts, kern.grid(m, n, k, ops)))
    return launches
