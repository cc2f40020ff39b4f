"""mxc's passes, one per file, registered by their kebab-case name.

The registry imports pass modules lazily so `mxc --help` stays fast.
"""

from __future__ import annotations

import importlib

from .base import Pass, PassOptionError, parse_pipeline, run_pass

_PASSES = {
    "convert-torch-to-mxq": ("convert_torch_to_mxq", "ConvertTorchToMxq"),
    "mxq-select-formats": ("mxq_select_formats", "MxqSelectFormats"),
    "mxq-calibrate-weights": ("mxq_calibrate_weights", "MxqCalibrateWeights"),
    "mxq-quantize-weights": ("mxq_quantize_weights", "MxqQuantizeWeights"),
    "mxq-fuse": ("mxq_fuse", "MxqFuse"),
    "lower-mxq-to-linalg": ("lower_mxq_to_linalg", "LowerMxqToLinalg"),
    "mxq-legalize-cuda": ("mxq_legalize_cuda", "MxqLegalizeCuda"),
    "lower-mxq-to-cuda": ("lower_mxq_to_cuda", "LowerMxqToCuda"),
    "decompose-attention": ("decompose_attention", "DecomposeAttention"),
    "pad-attention-queries": ("pad_attention_queries", "PadAttentionQueries"),
}


class _Registry(dict):
    """name -> Pass class, importing each pass module on first use."""

    def __missing__(self, name):
        if name not in _PASSES:
            raise KeyError(name)
        module, cls = _PASSES[name]
        self[name] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
        return self[name]

    def __contains__(self, name):
        return name in _PASSES

    def __iter__(self):
        return iter(_PASSES)

    def keys(self):
        return _PASSES.keys()


REGISTRY = _Registry()


def parse(text: str) -> list[Pass]:
    """Parse a pipeline string such as 'mxq-select-formats{format=mxfp4},mxq-fuse'."""
    return parse_pipeline(text, REGISTRY)


__all__ = ["REGISTRY", "Pass", "PassOptionError", "parse", "run_pass"]
