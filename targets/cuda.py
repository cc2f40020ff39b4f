"""What the CUDA targets share: mxc's kernels as IREE custom dispatches in an IREE CUDA program.

Phases after fusion: `legalize-cuda` (mxq-legalize-cuda: each layer's kernels, chosen by the
target's `select`), `lower-cuda` (lower-mxq-to-cuda: one cubin, a `flow.dispatch` per launch) and
`lower-linalg` (lower-mxq-to-linalg: what is left of mxq, as float32 linalg for IREE's codegen).
IREE 3.13 knows no sm_90 or sm_100: its own dispatches are built for sm_80 (the driver JITs that
PTX for Hopper / Blackwell); mxc's kernels come as an sm_90a / sm_100a cubin object.
"""

from __future__ import annotations

import dataclasses

from mxc.kernels.launches import layer_path
from mxc.numerics.formats import Format
from mxc.numerics.options import FormatSpec

from .base import GemmLayer, Target

REPRESENTATIVE_M = 4096  # the prefill shape `format_path` describes
UNBOUNDED_M = 1 << 20  # where a dynamic layer with no known largest row count chooses its last bucket's kernels


class CudaTarget(Target):
    arch = ""  # what the kernel library is assembled for
    # aggressive fusion: a residual add joins the RMS norm that reads it (2 fewer dispatches per decoder layer)
    iree_flags = ("--iree-hal-target-device=cuda", "--iree-cuda-target=sm_80",
                  "--iree-dispatch-creation-enable-aggressive-fusion")
    lowering_phases = ("legalize-cuda", "lower-cuda", "lower-linalg", "decompose-attention")
    annotating_phases = ("legalize-cuda",)

    @property
    def kernel_stem(self) -> str:
        """File stem of the kernel library in artifacts and dumps: mxc_sm90a, mxc_sm100a."""
        return "mxc_" + self.arch.replace("_", "")

    def lowering(self, options, weights, libraries=None):
        from mxc.passes import REGISTRY

        return [("legalize-cuda", REGISTRY["mxq-legalize-cuda"](target=self.name)),
                ("lower-cuda", REGISTRY["lower-mxq-to-cuda"](target=self.name, weights=weights, libraries=libraries)),
                ("lower-linalg", REGISTRY["lower-mxq-to-linalg"]()),
                # an attention with a dynamic query count (--generate's prefill), padded to the cache's length and
                # decomposed: IREE's CUDA attention dispatch is slow (pad_attention_queries.py); the compile
                # driver gives it max_queries
                ("decompose-attention", REGISTRY["decompose-attention"](padded_only=True))]

    def select(self, layer: GemmLayer):
        """The kernels of `layer`, or why there are none (activation quantizer options, then pairs)."""
        if layer.a_format is not None:
            why = self.act_unsupported(layer)
            if why:
                return why
        return self.kernels(layer)

    def kernels(self, layer: GemmLayer):
        raise NotImplementedError

    # Row counts at which the target's choice of kernels changes (each kernel runs any M: these are for speed).
    m_breakpoints: tuple[int, ...] = ()

    def buckets(self, layer: GemmLayer, max_rows: int | None = None):
        """A layer with a dynamic row count: its kernels by row count, [(m_max, kernels)] with m_max ascending,
        each bucket's kernels what `select` chooses at its m_max (kernels guard their rows: they are correct for
        any M, the choice is for speed); the last bucket's m_max is `max_rows`, or None when unbounded (chosen
        at UNBOUNDED_M). Adjacent buckets with the same kernels are merged. Or why there are none (str)."""
        tops = [b for b in self.m_breakpoints if max_rows is None or b < max_rows] + [max_rows]
        out: list = []
        for top in tops:
            ks = self.select(dataclasses.replace(layer, m=top or UNBOUNDED_M))
            if isinstance(ks, str):
                return ks
            if out and out[-1][1] == ks:
                out[-1] = (top, ks)
            else:
                out.append((top, ks))
        return out

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
