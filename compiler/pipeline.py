"""The ordered phases of `mxc compile`, readable top to bottom.

    import            torch.export -> torch dialect (frontend.py)
    mxq               convert-torch-to-mxq
    formats           mxq-select-formats
    quantize-weights  mxq-quantize-weights
    fuse              mxq-fuse
    lower-cpu         lower-mxq-to-linalg
    iree-input        mxq.param -> util.global parameters (iree_backend.py)
    vmfb              iree-compile, llvm-cpu

`--compile-to PHASE` stops after a phase; dumps are `<stem>.<N>.<phase>.mlir`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mxc.passes import Pass
from mxc.passes.convert_torch_to_mxq import ConvertTorchToMxq
from mxc.passes.lower_mxq_to_linalg import LowerMxqToLinalg
from mxc.passes.mxq_fuse import MxqFuse
from mxc.passes.mxq_quantize_weights import MxqQuantizeWeights
from mxc.passes.mxq_select_formats import MxqSelectFormats

PHASES = ("import", "mxq", "formats", "quantize-weights", "fuse", "lower-cpu", "iree-input", "vmfb")


@dataclass(frozen=True)
class Options:
    """What the user chose on the command line."""

    target: str = "cpu"
    format: str = "mxfp4"
    policy: str = ""
    weights_only: bool = False
    contraction: str = "decomposed"
    act_format: str = ""  # activations' format when it differs from the weights'
    scale_rule: str = "floor"
    rounding: str = "rne"
    seed: int = 0
    error_metric: str = "mse"
    hadamard: int = 0  # 0: no rotation


def pass_phases(opts: Options) -> list[tuple[str, Pass]]:
    """(phase name, pass) for the MLIR-pass part of the pipeline, in order."""
    return [
        ("mxq", ConvertTorchToMxq()),
        ("formats", MxqSelectFormats(format=opts.format, weights_only=opts.weights_only, policy=opts.policy,
                                     act_format=opts.act_format, scale_rule=opts.scale_rule,
                                     rounding=opts.rounding, seed=opts.seed, error_metric=opts.error_metric,
                                     hadamard=opts.hadamard)),
        ("quantize-weights", MxqQuantizeWeights()),
        ("fuse", MxqFuse()),
        ("lower-cpu", LowerMxqToLinalg(contraction=opts.contraction)),
    ]
