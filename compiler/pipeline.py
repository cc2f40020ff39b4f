"""The ordered phases of `mxc compile`, readable top to bottom.

    import            torch.export -> torch dialect (frontend.py, importer.py)
    mxq               convert-torch-to-mxq
    formats           mxq-select-formats
    calibrate         mxq-calibrate-weights (GPTQ / MR-GPTQ with --calibrate; nothing without)
    quantize-weights  mxq-quantize-weights
    fuse              mxq-fuse
    ...               the target's own phases (mxc.targets), e.g.
                        cpu:        lower-cpu      lower-mxq-to-linalg
                                    decompose-attention  sdpa -> matmul, softmax, matmul
                        cuda-sm*:   legalize-cuda  mxq-legalize-cuda: each layer's kernels
                                    lower-cuda     lower-mxq-to-cuda: flow.dispatch of mxc's kernels
                                    lower-linalg   lower-mxq-to-linalg: the rest of mxq
    iree-input        mxq.param -> util.global parameters (iree_backend.py)
    vmfb              iree-compile with the target's flags

`--compile-to PHASE` stops after a phase; dumps are `<stem>.<N>.<phase>.mlir`.
"""

from __future__ import annotations

from mxc.options import Options
from mxc.passes import Pass
from mxc.passes.convert_torch_to_mxq import ConvertTorchToMxq
from mxc.passes.mxq_calibrate_weights import MxqCalibrateWeights
from mxc.passes.mxq_fuse import MxqFuse
from mxc.passes.mxq_quantize_weights import MxqQuantizeWeights
from mxc.passes.mxq_select_formats import MxqSelectFormats
from mxc.targets import get_target
from mxc.weights import WeightStore

FRONT = ("import", "mxq", "formats", "calibrate", "quantize-weights", "fuse")  # every target's
BACK = ("iree-input", "vmfb")


def phases(target: str) -> tuple[str, ...]:
    """The phases of `mxc compile --target TARGET`, in order."""
    return FRONT + get_target(target).lowering_phases + BACK


def pass_phases(opts: Options, weights: WeightStore, libraries: list | None = None) -> list[tuple[str, Pass]]:
    """(phase name, pass) for the MLIR-pass part of the pipeline, in order."""
    return [
        ("mxq", ConvertTorchToMxq()),
        ("formats", MxqSelectFormats.from_compile_options(opts, weights)),
        ("calibrate", MxqCalibrateWeights(weights=weights)),  # the driver gives it the calibration's results
        ("quantize-weights", MxqQuantizeWeights(weights=weights)),
        ("fuse", MxqFuse()),
    ] + get_target(opts.target).lowering(opts, weights, libraries)
