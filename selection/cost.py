"""The estimated GEMM time of one layer's candidate on a target: what `--auto speedup=` and `time=` budget.

    cuda-sm90   measured: mxc/targets/data/cuda-sm90-gemm.json, written on an H200 by
                `python3 -m mxc.tools.bench_cuda cost-table DIR` (every kernel path the target runs,
                and IREE's own f32/bf16 matmul for a layer kept in high precision, over N x K x M
                grids; cuBLAS rows for reference).
                Per path and table M, piecewise linear in N * K through the table's shapes
                (below the smallest, its time: the launch-bound floor; above the largest, the
                last segment extended); between two table M, linear in M (the table has M = 16
                and 17, so no interpolation mixes the decode kernels with the GEMMs); above the
                largest M, in proportion to M.
    cuda-sm100  the roofline (`mxc.targets.roofline`: max(FLOPs / peak of the path, bytes /
                bandwidth) on a B200's peak rates); high precision on the bf16 tensor cores.

A Hadamard rotation adds the activations' rotation, a separate pass over them (read and write in
float32 at the device's bandwidth; not in the table). The estimate covers the GEMM layers' kernels
only: attention, norms and the rest of the forward pass are the same for every choice and are left
out, as are the launch gaps between kernels.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from mxc.policy import Choice
from mxc.targets import GemmLayer, Target

from .budget import AutoError
from .candidates import LayerInfo

TABLE_VERSION = 1
TABLES = Path(__file__).resolve().parent.parent / "targets" / "data"
H200_BANDWIDTH = 4.8e12  # bytes/s: the activation rotation on cuda-sm90 (the table's device)


def kind_key(weights: str | None, acts: str | None, dtype_bits: int = 32) -> str:
    """The table's name of a kernel path: `w=nvfp4`, `w=mxfp8,a=mxfp8`; `f32` / `bf16` in high precision."""
    if weights is None:
        return "f32" if dtype_bits == 32 else "bf16"
    return f"w={weights}" if acts is None else f"w={weights},a={acts}"


class CostModel:
    """Seconds of one layer's GEMM under a candidate choice, on one target."""

    source: str = ""

    def seconds(self, layer: LayerInfo, choice: Choice) -> float:
        raise NotImplementedError

    def record(self) -> dict:
        return {"source": self.source}


class MeasuredCost(CostModel):
    """cuda-sm90: the measured table, interpolated (see the module docstring)."""

    def __init__(self, table: dict, path: Path | None = None):
        if table.get("version") != TABLE_VERSION:
            raise AutoError(f"{path}: cost table version {table.get('version')} (mxc reads {TABLE_VERSION}); "
                            "regenerate it with python3 -m mxc.tools.bench_cuda cost-table DIR on the GPU")
        self.table = table
        self.source = (f"measured on {table['device']} ({table['date']}, torch {table['torch']}; "
                       f"{path.name if path else 'table'}): {table['method']}")
        points: dict[str, dict[int, list[tuple[int, float]]]] = {}
        for r in table["rows"]:
            points.setdefault(r["kind"], {}).setdefault(r["m"], []).append((r["n"] * r["k"], r["s"]))
        self.lines = {kind: {m: _curve(pts) for m, pts in sorted(by_m.items())} for kind, by_m in points.items()}

    def kind_seconds(self, kind: str, m: int, n: int, k: int) -> float:
        lines = self.lines.get(kind)
        if lines is None:
            raise AutoError(f"the {self.table['target']} cost table has no timings for {kind} (it was measured "
                            "before that path existed): regenerate it with python3 -m mxc.tools.bench_cuda "
                            "cost-table DIR on the GPU")
        ms = list(lines)
        at = lambda mm: _along(lines[mm], n * k)  # noqa: E731
        if m <= ms[0]:
            return at(ms[0])
        if m >= ms[-1]:
            return at(ms[-1]) * m / ms[-1]
        hi = next(i for i, mm in enumerate(ms) if mm >= m)
        m0, m1 = ms[hi - 1], ms[hi]
        return at(m0) + (at(m1) - at(m0)) * (m - m0) / (m1 - m0)

    def seconds(self, layer: LayerInfo, choice: Choice) -> float:
        w, a = choice.weight, choice.act
        t = self.kind_seconds(kind_key(w and w.name, a and a.name, layer.dtype_bits), layer.m, layer.n, layer.k)
        return t + _rotation(layer, choice, H200_BANDWIDTH)

    def record(self) -> dict:
        return {"source": self.source, "device": self.table["device"], "date": self.table["date"]}


class RooflineCost(CostModel):
    """cuda-sm100: the target's roofline."""

    def __init__(self, target: Target):
        self.target = target
        r = target.roofline
        self.source = (f"roofline of a {r.device} ({r.bf16 / 1e15:g} PF bf16, {r.fp8 / 1e15:g} PF FP8/FP6, "
                       f"{r.fp4 / 1e15:g} PF FP4, {r.bandwidth / 1e12:g} TB/s): an estimate, not measured")

    def seconds(self, layer: LayerInfo, choice: Choice) -> float:
        from mxc.targets.roofline import high_precision_estimate, layer_estimate

        if choice.weight is None:
            return high_precision_estimate(self.target, layer.m, layer.n, layer.k, layer.dtype_bits)
        g = GemmLayer(layer.name, layer.m, choice.weight, choice.act, layer.bias)
        e = layer_estimate(self.target, g, layer.n, layer.k, choice.weight.format.bits_per_element)
        if e.peak == 0.0:
            raise AutoError(f"{layer.name}: {e.path}")
        return e.seconds + _rotation(layer, choice, self.target.roofline.bandwidth)


def _rotation(layer: LayerInfo, choice: Choice, bandwidth: float) -> float:
    h = choice.weight is not None and choice.weight.options.hadamard
    return 8.0 * layer.m * layer.k / bandwidth if h else 0.0


def _curve(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """(N * K, seconds) sorted, one point per size (the mean of shapes of one size)."""
    by: dict[int, list[float]] = {}
    for x, y in points:
        by.setdefault(x, []).append(y)
    return [(x, sum(ys) / len(ys)) for x, ys in sorted(by.items())]


def _along(curve: list[tuple[int, float]], x: int) -> float:
    """The curve at x: its first value below it, linear between points, the last segment extended above."""
    if len(curve) == 1 or x <= curve[0][0]:
        return curve[0][1]
    i = next((i for i, (xi, _) in enumerate(curve) if xi >= x), len(curve) - 1)
    (x0, y0), (x1, y1) = curve[i - 1], curve[i]
    return max(y0 + (y1 - y0) * (x - x0) / (x1 - x0), 0.0)


@cache
def _table(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise AutoError(f"cannot read the cost table {path}: {e}") from None


def cost_model(target: Target) -> CostModel:
    """The target's cost model, or an error naming the targets that have one."""
    if target.name == "cuda-sm90":
        path = TABLES / "cuda-sm90-gemm.json"
        return MeasuredCost(_table(path), path)
    if getattr(target, "roofline", None) is not None:
        return RooflineCost(target)
    raise AutoError(f"speed budgets (speedup=, time=) need a GPU target's cost model: --target cuda-sm90 "
                    f"(measured kernel times) or --target cuda-sm100 (a roofline); {target.name} has none. "
                    "Use bits=B for this target")
