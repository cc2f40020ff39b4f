"""How far one ulp moves a quantized model's reference output: is a compare failure a flip cascade?

    python -m mxc.tools.ulp_sensitivity ARTIFACT

Recomputes the artifact's fake-quant reference (mxc.numerics quantizing the
operands mxc quantized) after multiplying every norm weight by (1 +- 2^-23), with
SEEDS random sign patterns, and prints rel_l2(perturbed, reference) for each. One
seed is not enough: whether a perturbation happens to push an activation across a
rounding tie is luck (the 4-layer Llama at [1, 128] in NVFP4 moves by 1.7e-7 with
seed 0 and by 0.145 with seed 1). When the largest move is as large as a compiled
artifact's distance from the reference, that difference is explained by float32
noise upstream of an activation quantizer (an element, a block's scale or choice
flipping), not by its kernels; `python -m mxc.tools.layer_diff ARTIFACT` then
finds the flipped block.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

SEEDS = 8


def sensitivity(artifact: str | Path, seed: int = 0) -> float:
    from mxc.compiler.frontend import load_model_file
    from mxc.runtime.reference import fake_quant_forward

    manifest = json.loads((Path(artifact) / "manifest.json").read_text())
    spec = load_model_file(manifest["model"])
    base = fake_quant_forward(spec.model, spec.example_inputs, manifest)[0].double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in spec.model.named_parameters():
            if "norm" in name:
                p.mul_(1 + 2.0**-23 * torch.randn(p.shape, generator=g).sign())
    pert = fake_quant_forward(spec.model, spec.example_inputs, manifest)[0].double()
    return float((pert - base).norm() / base.norm())


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    moves = [sensitivity(argv[0], seed) for seed in range(SEEDS)]
    print(f"rel_l2 of the reference after one-ulp changes to the norm weights, {SEEDS} seeds: "
          f"{', '.join(f'{m:.3g}' for m in moves)} (max {max(moves):.3g})")
    print("a flip cascade: compiled distances up to the max are float32 noise" if max(moves) > 1e-3 else
          "no seed flipped an activation rounding: a large compiled distance is not explained by float32 noise")
    return 0


if __name__ == "__main__":
    sys.exit(main())
