"""`mxc formats --error-table`: quantization MSE and SQNR of every format on standard samples.

Distributions: Gaussian, Laplace and Student-t (df 3), with a fixed seed, plus
an optional weight tensor the user names. Rows are formats (and Hadamard-rotated
variants of the 4- and 6-bit ones); one run, one table. Quantization is along
the last axis, the GEMM's K axis for a [N, K] weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from mxc.errors import MxcError
from mxc.numerics import FORMATS, FormatSpec, QuantOptions, fake_quantize

ROTATED = tuple(FormatSpec(FORMATS[name], QuantOptions(hadamard=n))
                for name, n in (("mxfp4", 32), ("mxfp6_e2m3", 32), ("nvfp4", 16), ("if4", 16)))


@dataclass(frozen=True)
class Cell:
    mse: float
    sqnr_db: float


def samples(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """The three synthetic [n, 1024] float32 samples."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, 1024)
    u = torch.rand(shape, generator=g) - 0.5
    z = torch.randn(shape, generator=g)
    chi2 = sum(torch.randn(shape, generator=g) ** 2 for _ in range(3))
    return {
        "gaussian": torch.randn(shape, generator=g),
        "laplace": -torch.sign(u) * torch.log1p(-2 * u.abs()),
        "student_t3": z / torch.sqrt(chi2 / 3),
    }


def load_weight(spec: str) -> torch.Tensor:
    """A weight from FILE.pt[:KEY] (a tensor or a state dict entry) or MODEL.py:param.name."""
    path, _, key = spec.partition(":")
    if not Path(path).is_file():
        raise MxcError(f"--weight {spec}: no file {path}")
    if path.endswith(".py"):
        from mxc.compiler.frontend import load_model_file

        params = dict(load_model_file(path).model.named_parameters())
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        params = obj if isinstance(obj, dict) else {"": obj}
    if key not in params:
        raise MxcError(f"--weight {spec}: no tensor '{key}' in {path} (has: {', '.join(list(params)[:8])} ...)")
    w = params[key].detach().to(torch.float32)
    return w if w.dim() >= 2 else w.unsqueeze(0)


def measure(x: torch.Tensor, spec: FormatSpec) -> Cell:
    d = fake_quantize(x, spec).double() - x.double()
    mse = float((d * d).mean())
    signal = float((x.double() ** 2).mean())
    return Cell(mse, math.inf if mse == 0 else 10 * math.log10(signal / mse))


def error_table(n: int = 1024, weight: str | None = None) -> tuple[list[str], dict[str, dict[str, Cell]]]:
    """(column names, {format spec: {column: Cell}}) for every format and the rotated variants."""
    data = samples(n)
    if weight:
        data[f"weight {weight}"] = load_weight(weight)
    specs = (*(FormatSpec(f) for f in FORMATS.values()), *ROTATED)
    rows = {str(spec): {name: measure(x, spec) for name, x in data.items()} for spec in specs}
    return list(data), rows


def print_table(columns: list[str], rows: dict[str, dict[str, Cell]], n: int) -> None:
    print(f"quantization error per format: MSE / SQNR dB (synthetic samples {n}x1024, seed 0)")
    head = f"{'format':26s}" + "".join(f" {c[:22]:>22s}" for c in columns)
    print(head)
    print("-" * len(head))
    for spec, cells in rows.items():
        print(f"{spec:26s}" + "".join(f" {cells[c].mse:11.3e} {cells[c].sqnr_db:6.2f} dB" for c in columns))


def write_png(columns: list[str], rows: dict[str, dict[str, Cell]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MxcError("--png needs matplotlib: pip install matplotlib") from None
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.9), 4.5))
    width = 0.8 / len(columns)
    for i, c in enumerate(columns):
        ax.bar([j + i * width for j in range(len(rows))], [rows[s][c].sqnr_db for s in rows], width, label=c)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))], list(rows), rotation=45, ha="right")
    ax.set_ylabel("SQNR (dB)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
