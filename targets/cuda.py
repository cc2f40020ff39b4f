"""What the CUDA targets share: mxc's kernels as IREE custom dispatches in an IREE CUDA program.

Phases after fusion: `legalize-cuda` (mxq-legalize-cuda: each layer's kernels, chosen by the
target's `select`), `lower-cuda` (lower-mxq-to-cuda: one cubin, a `flow.dispatch` per launch) and
`lower-linalg` (lower-mxq-to-linalg: what is left of mxq, as float32 linalg for IREE's codegen).
IREE 3.13 knows no sm_90 or sm_100: its own dispatches are built for sm_80 (the driver JITs that
PTX for Hopper / Blackwell); mxc's kernels come as an sm_90a / sm_100a cubin object.
"""

from __future__ import annotations

from mxc.kernels.launches import layer_path
from mxc.numerics.formats import Format
from mxc.numerics.options import FormatSpec

from .base import GemmLayer, Target

REPRESENTATIVE_M = 4096  # the prefill shape `format_path` describes


class CudaTarget(Target):
    arch = ""  # what the kernel library is assembled for
    # aggressive fusion: a residual add joins the RMS norm that reads it (2 fewer dispatches per decoder layer)
    iree_flags = ("--iree-hal-target-device=cuda", "--iree-cuda-target=sm_80",
                  "--iree-dispatch-creation-enable-aggressive-fusion")
    lowering_phases = ("legalize-cuda", "lower-cuda", "lower-linalg")
    annotating_phases = ("legalize-cuda",)

    @property
    def kernel_stem(self) -> str:
        """File stem of the kernel library in artifacts and dumps: mxc_sm90a, mxc_sm100a."""
        return "mxc_" + self.arch.replace("_", "")

    def lowering(self, options, weights, libraries=None):
        from mxc.passes import REGISTRY

        return [("legalize-cuda", REGISTRY["mxq-legalize-cuda"](target=self.name)),
                ("lower-cuda", REGISTRY["lower-mxq-to-cuda"](target=self.name, weights=weights, libraries=libraries)),
                ("lower-linalg", REGISTRY["lower-mxq-to-linalg"]())]

    def select(self, layer: GemmLayer):
        """The kernels of `layer`, or why there are none (activation quantizer options, then pairs)."""
        if layer.a_format is not None:
            why = self.act_unsupported(layer)
            if why:
                return why
        return self.kernels(layer)

    def kernels(self, layer: GemmLayer):
        raise NotImplementedError

    def act_unsupported(self, layer: GemmLayer) -> str | None:
        """Why the activation quantizers cannot take the layer's activation options, or None."""
        o = layer.acts.options
        if o.scale_rule != "floor" or o.rounding != "rne":
            return f"the {self.name} activation quantizer implements scale_rule=floor, rounding=rne (not {layer.acts})"
        if layer.a_format == "nvfp4_4over6" and o.error_metric != "mse":
            return f"the {self.name} Four Over Six activation quantizer implements error_metric=mse (not {layer.acts})"
        return None

    def format_path(self, fmt: Format) -> str:
        """The path of a prefill layer with weights and activations in `fmt`, or its weight-only path."""
        spec = FormatSpec(fmt)
        ks = self.select(GemmLayer("", REPRESENTATIVE_M, spec, spec, False))
        if not isinstance(ks, str):
            return layer_path(ks)
        weight_only = self.select(GemmLayer("", REPRESENTATIVE_M, spec, None, False))
        return f"decode path, weight-only: {layer_path(weight_only).removeprefix('decode: ')}"
