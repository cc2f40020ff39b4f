"""The ordered phases of `mxc compile`, readable top to bottom.

    import            torch.export -> torch dialect (frontend.py)
    mxq               convert-torch-to-mxq
    formats           mxq-select-formats
    quantize-weights  mxq-quantize-weights
    fuse              mxq-fuse
    lower-cpu         lower-mxq-to-linalg                       (--target cpu)
    legalize-cuda     mxq-legalize-cuda: each layer's kernels   (--target cuda-sm90)
    lower-cuda        lower-mxq-to-cuda: flow.dispatch of mxc's sm_90a kernels, the rest linalg
    iree-input        mxq.param -> util.global parameters (iree_backend.py)
    vmfb              iree-compile: llvm-cpu, or CUDA (IREE codegen at sm_80 + the embedded cubin)

`--compile-to PHASE` stops after a phase; dumps are `<stem>.<N>.<phase>.mlir`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mxc.passes import Pass
from mxc.passes.convert_torch_to_mxq import ConvertTorchToMxq
from mxc.passes.lower_mxq_to_cuda import LowerMxqToCuda, MxqLegalizeCuda
from mxc.passes.lower_mxq_to_linalg import LowerMxqToLinalg
from mxc.passes.mxq_fuse import MxqFuse
from mxc.passes.mxq_quantize_weights import MxqQuantizeWeights
from mxc.passes.mxq_select_formats import MxqSelectFormats
from mxc.weights import WeightStore

PHASES = ("import", "mxq", "formats", "quantize-weights", "fuse", "lower-cpu", "iree-input", "vmfb")
CUDA_PHASES = ("import", "mxq", "formats", "quantize-weights", "fuse", "legalize-cuda", "lower-cuda", "iree-input",
               "vmfb")
TARGETS = ("cpu", "cuda-sm90", "cuda-sm100")


def phases(target: str) -> tuple[str, ...]:
    """The phases of `mxc compile --target TARGET`, in order."""
    return CUDA_PHASES if target.startswith("cuda") else PHASES


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


def pass_phases(opts: Options, weights: WeightStore) -> list[tuple[str, Pass]]:
    """(phase name, pass) for the MLIR-pass part of the pipeline, in order."""
    return [
        ("mxq", ConvertTorchToMxq()),
        ("formats", MxqSelectFormats(format=opts.format, weights_only=opts.weights_only, policy=opts.policy,
                                     act_format=opts.act_format, scale_rule=opts.scale_rule,
                                     rounding=opts.rounding, seed=opts.seed, error_metric=opts.error_metric,
                                     hadamard=opts.hadamard, weights=weights)),
        ("quantize-weights", MxqQuantizeWeights(weights=weights)),
        ("fuse", MxqFuse()),
    ] + ([("legalize-cuda", MxqLegalizeCuda(target=opts.target)), ("lower-cuda", LowerMxqToCuda(target=opts.target, weights=weights))]
         if opts.target.startswith("cuda")
         else [("lower-cpu", LowerMxqToLinalg(contraction=opts.contraction))])
