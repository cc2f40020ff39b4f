"""WeightStore: the weights of a compilation, held outside the IR.

The frontend puts every parameter and buffer here and references it from the
IR by name (`mxq.param`); passes add quantized weights; the IREE hand-off
writes them all into an `.irpa` parameter archive. Weights never travel as MLIR
text, so compile time and memory grow with weight bytes, not with printing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

PARAMETER_SCOPE = "model"


@dataclass
class WeightStore:
    """name -> tensor, in insertion order."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    # name -> how to compute the tensor again from model.py's parameters (JSON; None: it cannot be, e.g. a
    # GPTQ-calibrated weight): what `mxc write-weights` evaluates (mxc.runtime.weights_writer)
    recipes: dict[str, dict | None] = field(default_factory=dict)

    def add(self, name: str, value: torch.Tensor, recipe: dict | None = None) -> str:
        """Store `value` under a unique name derived from `name`; return that name."""
        unique, i = name, 1
        while unique in self.tensors:
            unique, i = f"{name}.{i}", i + 1
        self.tensors[unique] = value.detach().contiguous()
        self.recipes[unique] = recipe
        return unique

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def nbytes(self, names=None) -> int:
        """Bytes of the named tensors (default: all)."""
        names = self.tensors if names is None else names
        return sum(self.tensors[n].numel() * self.tensors[n].element_size() for n in names)

    def write_irpa(self, path, names=None) -> None:
        """Write the named tensors (default: all) as raw bytes into an IREE parameter archive."""
        from iree import runtime as rt

        index = rt.ParameterIndex()
        for name in names if names is not None else self.tensors:
            index.add_buffer(name, self.tensors[name].reshape(-1).view(torch.uint8).numpy())
        index.create_archive_file(str(path))
