"""`cpu`: IREE llvm-cpu, every format emulated bit-exactly in linalg (lower-mxq-to-linalg)."""

from __future__ import annotations

from mxc.numerics.formats import Format

from .base import Target


class Cpu(Target):
    name = "cpu"
    help = "IREE llvm-cpu, bit-exact emulation of every format"
    device = "cpu"
    driver = "local-task"
    iree_flags = ("--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
                  "--iree-llvmcpu-target-cpu=host", "--iree-opt-const-expr-max-size-increase-threshold=4294967296")
    lowering_phases = ("lower-cpu", "decompose-attention")

    def lowering(self, options, weights, libraries=None):
        from mxc.passes import REGISTRY

        lower = REGISTRY["lower-mxq-to-linalg"](contraction=options.contraction, act_dtype=options.act_dtype)
        # IREE's fused attention op is slow on the CPU (decompose_attention.py): torch's math form instead
        return [("lower-cpu", lower), ("decompose-attention", REGISTRY["decompose-attention"]())]

    def format_path(self, fmt: Format) -> str:
        return "emulated (bit-exact)"


TARGET = Cpu()
