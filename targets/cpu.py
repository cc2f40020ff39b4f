"""`cpu`: IREE llvm-cpu, every format emulated bit-exactly in linalg (lower-mxq-to-linalg)."""

from __future__ import annotations

from mxc.numerics.formats import Format

from .base import Target


class Cpu(Target):
    name = "cpu"
    help = "IREE llvm-cpu, bit-exact emulation of every format"
    device = "cpu"
    driver = "local-task"
    # --iree-opt-const-eval=false: IREE's compile-time evaluation of hoisted constant expressions failed
    # ("jit global source initialization order invalid") on an AMX operand built from a constant (an LSTM's
    # zero initial state); they are evaluated when the program loads instead, like the weights' decode
    iree_flags = ("--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
                  "--iree-llvmcpu-target-cpu=host", "--iree-opt-const-expr-max-size-increase-threshold=4294967296",
                  "--iree-opt-const-eval=false")
    lowering_phases = ("lower-cpu", "decompose-attention")

    def lowering(self, options, weights, libraries=None):
        from mxc.passes import REGISTRY

        if options.contraction == "amx":
            from mxc.options import OptionsError
            from mxc.runtime.amx import host_has_amx

            if not host_has_amx():  # the program is compiled for this host's CPU (--iree-llvmcpu-target-cpu=host)
                raise OptionsError("--contraction amx needs a CPU with AMX bf16 tiles (the /proc/cpuinfo flags "
                                   "amx_tile and amx_bf16: Intel Sapphire Rapids or later) and this one has "
                                   "none: use --contraction decomposed")
        if options.contraction == "fma":
            from mxc.options import OptionsError
            from mxc.runtime.amx import host_has_fma

            if not host_has_fma():
                raise OptionsError("--contraction fma needs a CPU with AVX2 and FMA (x86-64, the /proc/cpuinfo "
                                   "flags avx2 and fma) and this one lacks them: use --contraction decomposed")
        if options.contraction == "dpbf16":
            from mxc.options import OptionsError
            from mxc.runtime.amx import host_has_dpbf16

            if not host_has_dpbf16():
                raise OptionsError("--contraction dpbf16 needs a CPU with AVX512-BF16 (the /proc/cpuinfo flags "
                                   "avx512_bf16 and avx512vl, with avx2 and fma: Intel Cooper Lake or Sapphire "
                                   "Rapids, AMD Zen 4 or later) and this one lacks them: use --contraction fma")
        lower = REGISTRY["lower-mxq-to-linalg"](contraction=options.contraction, act_dtype=options.act_dtype)
        # IREE's fused attention op is slow on the CPU (decompose_attention.py): torch's math form instead
        # (the compile driver gives it max_queries, from torch.export's ranges)
        return [("lower-cpu", lower), ("decompose-attention", REGISTRY["decompose-attention"](
            amx=options.contraction == "amx", fma=options.contraction in ("fma", "dpbf16")))]

    def format_path(self, fmt: Format) -> str:
        return "emulated (bit-exact)"


TARGET = Cpu()
