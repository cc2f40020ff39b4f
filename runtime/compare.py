"""`mxc run --compare`: the artifact against the fake-quant reference and torch float32."""

from __future__ import annotations

import math

import torch

from mxc.compiler.frontend import load_model_file

from .artifact import Artifact
from .reference import eager_forward, fake_quant_forward

# Tolerance of compiled vs fake-quant reference (see README "Tolerance"): both
# compute the same dequantized products; they differ only in float32 summation
# order, bounded per dot product by gamma_K * sum|a_i b_i| with
# gamma_K = K u / (1 - K u), u = 2^-24. We check the whole output against
# RTOL * max|y_ref| with RTOL = 1e-4, which covers K up to ~16k with depth, and
# report the measured errors so a regression shows long before it fails.
RTOL = 1e-4


def errors(y: torch.Tensor, ref: torch.Tensor) -> dict:
    """max abs error, relative L2 error and SQNR (dB) of y against ref."""
    y, ref = y.double(), ref.double()
    diff = y - ref
    noise = float((diff * diff).sum())
    signal = float((ref * ref).sum())
    return {
        "max_abs_error": float(diff.abs().max()) if diff.numel() else 0.0,
        "rel_l2_error": math.sqrt(noise / signal) if signal else math.sqrt(noise),
        "sqnr_db": (10 * math.log10(signal / noise)) if noise else math.inf,
    }


def compare(artifact: Artifact, outputs: list[torch.Tensor], inputs: tuple) -> dict:
    """Errors of `outputs` vs the fake-quant reference and vs torch eager float32 (first output)."""
    spec = load_model_file(artifact.manifest["model"])
    fq = fake_quant_forward(spec.model, inputs, artifact.manifest)
    eager = eager_forward(spec.model, inputs)
    vs_ref = errors(outputs[0], fq[0])
    tol = RTOL * float(fq[0].abs().max())
    return {
        "vs_reference": {**vs_ref, "tolerance": tol, "within_tolerance": vs_ref["max_abs_error"] <= tol},
        "vs_torch": errors(outputs[0], eager[0]),
        "reference_vs_torch": errors(fq[0], eager[0]),
    }
