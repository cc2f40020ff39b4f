"""Which hardware path each format takes on each target (for `mxc formats`, the manifest, policies).

Data, not code paths (tests check it against `mxc.kernels.select`): the CPU
target emulates every format bit-exactly; Hopper (sm_90a) has FP8 tensor cores
only: MXFP8 x MXFP8 runs on them, the other block-scaled pairs on the block-scaled
skeleton's twin (operands decoded to bf16 for wgmma); Blackwell (sm_100a) runs
the OCP formats and NVFP4 natively in block-scaled `tcgen05.mma`. IF4, MXINT8,
NVINT4 and UE5M3 scales are native nowhere: they take the decode path (weights
decoded to bf16 in shared memory, or in registers at M <= 16; activations high
precision), on both CUDA targets.
"""

from __future__ import annotations

from .formats import FORMATS, get_format

TARGETS = ("cpu", "cuda-sm90", "cuda-sm100")

_SM90 = {  # mxc.kernels: weight-only gemv for M <= 16 (f32), wgmma (HGMMA, bf16) above
    "fp8": "QGMMA x MXFP8 acts; weight-only: decoded",
    "fp4/fp6": "twin: decoded to bf16, HGMMA (w+a)",
    "other": "decode path, weight-only (gemv / HGMMA)",
}
_SM100 = {
    "mxf8f6f4": "native: tcgen05.mma kind::mxf8f6f4",
    "mxf4": "native: tcgen05.mma kind::mxf4 (or mxf8f6f4)",
    "mxf4nvf4": "native: tcgen05.mma kind::mxf4nvf4 (UE4M3 scales, block 16)",
    "other": "decode path, weight-only (gemv / kind::f16)",
}
_SM100_KIND = {
    "mxfp8": "mxf8f6f4", "mxfp8_e5m2": "mxf8f6f4", "mxfp6_e2m3": "mxf8f6f4", "mxfp6_e3m2": "mxf8f6f4",
    "mxfp4": "mxf4", "nvfp4": "mxf4nvf4", "nvfp4_4over6": "mxf4nvf4",
}


class UnknownTargetError(ValueError):
    """A target name mxc does not know; the message lists the valid ones."""


def native_path(format_name: str, target: str) -> str:
    """How `target` runs `format_name`: 'emulated', 'native: ...' or 'decoded ...'."""
    fmt = get_format(format_name)
    if target not in TARGETS:
        raise UnknownTargetError(f"unknown target '{target}': valid targets are {', '.join(TARGETS)}")
    if target == "cpu":
        return "emulated (bit-exact)"
    if target == "cuda-sm100":
        return _SM100[_SM100_KIND.get(fmt.name, "other")]
    if fmt.family == "mx" and fmt.element.kind == "float" and fmt.element.bits == 8:
        return _SM90["fp8"]
    if fmt.family == "mx" and fmt.element.kind == "float" or fmt.name in ("nvfp4", "nvfp4_4over6"):
        return _SM90["fp4/fp6"]
    return _SM90["other"]


def support_table() -> list[dict]:
    """One row per format: name, element, block, scale, bits per element, path per target."""
    return [
        {**f.to_dict(), "paths": {t: native_path(f.name, t) for t in TARGETS}}
        for f in FORMATS.values()
    ]
